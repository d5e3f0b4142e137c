"""Mixtura's job steps (thin CLIs: read inputs from the store, call the math, write outputs) and the math."""
