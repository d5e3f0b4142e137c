"""The job steps, one module each and thin: read inputs from the store, call `search/`, `training/` and
`data/`, write outputs and `_SUCCESS` last. Each exposes `run(ctx, args)` and is idempotent (a finished step
is a no-op); `context.StepContext` is what every step reads its search through."""
