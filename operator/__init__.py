"""Mixtura's control side: resource models, the reconcile state machine, executors, stores and the CLI."""
