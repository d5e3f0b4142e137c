"""The spec's `models.*` as the model backends take them."""

from __future__ import annotations

from typing import Literal

from mixtura_jobs.steps.context import StepContext
from mixtura_jobs.training.backends import ModelRef

Role = Literal["embedding", "proxy", "target"]


def model_ref(ctx: StepContext, role: Role) -> ModelRef:
    """`spec.models.<role>`; a tiny VLM without a preset gets its role's (the target model is the target preset)."""
    spec = ctx.search.spec
    model = getattr(spec.models, role)
    config = dict(model.config)
    if model.backend == "tiny" and role != "embedding":
        config.setdefault("preset", role)
    return ModelRef(model.backend, model.path, config, f"spec.models.{role}", spec.artifacts.endpoint_url)
