"""proxy-train (one trial's mixture, proxy model) and final-train (the chosen mixture, target model)."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable

import torch

from mixtura_jobs.data.streaming import Groups, KeyedGroups
from mixtura_jobs.search.cell_weights import sample_cells
from mixtura_jobs.search.final_pick import final_mixture
from mixtura_jobs.steps.context import StepContext
from mixtura_jobs.steps.propose import load_space, observations
from mixtura_jobs.training.trainer import train_on_mixture
from mixtura_operator import layout


def cell_groups(ctx: StepContext) -> dict[str, Groups]:
    """Each sample's concept x task cell by its key, from the cells step's assignments; samples without an
    image (every sample of a domain without images) are in the domain's task's no-concept cell."""
    groups: dict[str, Groups] = {}
    for d in ctx.domainset.spec.domains:
        no_image = str(sample_cells(d.task_type, None, 1)[0])
        if "image" in d.modalities:
            labels = ctx.store.get_array(layout.assignments(d.name))
            keys = ctx.store.get_array(layout.assignment_keys(d.name)).tolist()
            cells = sample_cells(d.task_type, labels, len(labels)).tolist()
            groups[d.name] = KeyedGroups(dict(zip(keys, cells, strict=True)), no_image)
        else:
            groups[d.name] = no_image
    return groups


def checkpoint_bytes(model: torch.nn.Module, config: dict) -> bytes:
    """A torch.save file: the model config (for tiny_vlm.build_vlm) and the trained weights."""
    buffer = io.BytesIO()
    torch.save({"config": config, "state_dict": model.state_dict()}, buffer)
    return buffer.getvalue()


def _train(
    ctx: StepContext,
    mixture: dict,
    model: dict,
    steps: int,
    seed: int,
    on_trained: Callable[[torch.nn.Module], None] | None = None,
) -> dict:
    """Train on a mixture record: by its cell weights when it has them, else by its domain weights."""
    spec = ctx.search.spec
    # Every domain is read, weighted or not: held-out loss is measured on all of them.
    domains = {name: ctx.domain_data(name) for name in ctx.domain_names}
    augment = None
    if spec.training.augmentation.type == "mergemix":
        from mixtura_jobs.training.mergemix import MergeMixConfig, make_mergemix_augment

        settings = spec.training.augmentation.mergemix
        augment = make_mergemix_augment(MergeMixConfig(enabled=True, **settings.model_dump()))
    config = {"model": model, "steps": steps}
    by_cells = "cells" in mixture
    metrics = train_on_mixture(
        domains,
        mixture["cells"] if by_cells else mixture["weights"],
        config,
        seed=seed,
        augment=augment,
        groups=cell_groups(ctx) if by_cells else None,
        on_trained=on_trained,
    )
    metrics["augmentation"] = spec.training.augmentation.type
    return metrics


def run_proxy(ctx: StepContext, args: argparse.Namespace) -> None:
    step_key = f"trial/{args.trial}"
    if ctx.is_done(step_key):
        return
    spec = ctx.search.spec
    if spec.models.proxy.config.get("failTrials") and args.trial in spec.models.proxy.config["failTrials"]:
        raise SystemExit(f"trial {args.trial}: failure injected by models.proxy.config.failTrials")
    mixture = ctx.store.get_json(layout.trial_mixture(args.trial))
    metrics = _train(ctx, mixture, spec.models.proxy.config, spec.budget.proxy_steps, ctx.seed * 1000 + int(args.trial))
    ctx.store.put_json(layout.trial_metrics(args.trial), metrics)
    print(f"trial={args.trial} objective={metrics['objective']:.4f}", flush=True)
    ctx.mark_done(step_key)


def run_final(ctx: StepContext, args: argparse.Namespace) -> None:
    if ctx.is_done("final"):
        return
    spec = ctx.search.spec
    domains = ctx.domainset.spec.domains
    manual = ctx.vector({d.name: d.weight or 0.0 for d in domains}) if spec.method == "manual" else None
    madmix = ctx.vector(ctx.store.get_json(layout.MADMIX)["weights"]) if spec.method == "madmix" else None
    space = load_space(ctx)
    ids, x, y = observations(ctx, space)
    point, provenance = final_mixture(
        spec.method,
        manual=manual,
        madmix=madmix,
        trials_x=x,
        trials_loss=-y,
        seed=ctx.seed,
        d=len(domains),
        space=space.geometry,
    )
    if "index" in provenance:
        provenance["trial"] = ids[provenance.pop("index")]
    mixture = {**space.record(point), **provenance}
    ctx.store.put_json(layout.FINAL_MIXTURE, mixture)
    config = spec.models.target.config
    metrics = _train(
        ctx,
        mixture,
        config,
        spec.final_training.steps,
        ctx.seed,
        on_trained=lambda model: ctx.store.put_bytes(layout.FINAL_MODEL, checkpoint_bytes(model, config)),
    )
    ctx.store.put_json(layout.FINAL_METRICS, metrics)
    print(f"final {json.dumps(mixture)} objective={metrics['objective']:.4f}", flush=True)
    ctx.mark_done("final")
