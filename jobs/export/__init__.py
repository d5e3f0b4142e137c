"""Mixtures in the forms other trainers take (`mixtura export`)."""
