"""One module per step; each exposes `run(ctx, args)` and is idempotent (a finished step is a no-op)."""
