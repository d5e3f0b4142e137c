"""proxy-train (one trial's mixture, proxy model) and final-train (the chosen mixture, target model)."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mixtura_jobs.search.final_pick import final_mixture
from mixtura_jobs.steps.context import StepContext
from mixtura_jobs.steps.models import Role, model_ref
from mixtura_jobs.steps.propose import load_space, measured_noise, observations
from mixtura_jobs.training.backends import VLMBackend
from mixtura_jobs.training.device import select_placement
from mixtura_jobs.training.distributed import current_world
from mixtura_jobs.training.trainer import DEFAULT_CONFIG, train_on_mixture
from mixtura_jobs.training.trainer_run import ProgressLog
from mixtura_operator import layout
from mixtura_operator.api.plan import final_baselines
from mixtura_operator.objective import label, objective_value, score
from mixtura_operator.trainer_contract import trial_seed


def upload_model(ctx: StepContext, backend: VLMBackend, weights: dict | None) -> None:
    """The trained model at `layout.final_model`: tiny's `final/model.pt`, hf's save_pretrained `final/model/`."""
    with tempfile.TemporaryDirectory() as directory:
        backend.save(Path(directory), weights)
        ctx.store.upload_dir(Path(directory), layout.FINAL_DIR)


def _train(
    ctx: StepContext,
    mixture: dict,
    role: Role,
    steps: int,
    seed: int,
    on_trained: Callable[[VLMBackend, dict | None], None] | None = None,
    eval_every: int = 0,
    checkpoints: str | None = None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
) -> dict:
    """Train on a mixture record: by its cell weights when it has them, else by its domain weights;
    `eval_every` > 0 records the held-out objective every that many steps. The final training (`checkpoints`:
    its checkpoint prefix) runs by spec.finalTraining's strategy, accumulation and checkpoints; a trial in one
    micro-batch per step, without checkpoints."""
    spec = ctx.search.spec
    model = model_ref(ctx, role)
    # Every domain is read, weighted or not: held-out loss is measured on all of them.
    domains = {name: ctx.domain_data(name) for name in ctx.domain_names}
    augment = None
    if spec.training.augmentation.type == "mergemix":
        from mixtura_jobs.training.mergemix import MergeMixConfig, make_mergemix_augment

        settings = spec.training.augmentation.mergemix
        augment = make_mergemix_augment(MergeMixConfig(enabled=True, **settings.model_dump()))
    config = {**spec.training.trainer_config(), "steps": steps, "eval_every": eval_every}
    final = spec.final_training
    if checkpoints is not None:
        config |= {
            "strategy": final.strategy,
            "gradient_accumulation": final.gradient_accumulation,
            "checkpoint_every": final.checkpoint_every,
            "keep_checkpoints": final.keep_checkpoints,
        }
    by_cells = "cells" in mixture
    metrics = train_on_mixture(
        domains,
        mixture["cells"] if by_cells else mixture["weights"],
        config,
        seed=seed,
        augment=augment,
        groups=ctx.cell_groups() if by_cells else None,
        on_trained=on_trained,
        model=model,
        placement=select_placement(),
        checkpoint_store=None if checkpoints is None else ctx.store.child(checkpoints),
        on_eval=on_eval,
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
    seed, steps = trial_seed(ctx.seed, args.repeat), spec.budget.proxy_steps
    stopping = spec.search.early_stopping
    if stopping is None:
        metrics = _train(ctx, mixture, "proxy", steps, seed)
    else:
        report = _progress_reporter(ctx, args.trial) if current_world().is_main else None
        every = stopping.evaluation_interval(steps)
        metrics = _train(ctx, mixture, "proxy", steps, seed, eval_every=every, on_eval=report)
    if current_world().is_main:
        ctx.store.put_json(layout.trial_metrics(args.trial), {**metrics, "seed": seed})
        print(f"trial={args.trial} {_objective_line(ctx, metrics)}", flush=True)
        ctx.mark_done(step_key)


def _progress_reporter(ctx: StepContext, tid: str) -> Callable[[int, dict[str, float]], None]:
    """Writes the objective at each checkpoint to the trial's progress.json, for early stopping (not step 0,
    before any training)."""
    log = ProgressLog(ctx.store, layout.trial_progress(tid), ctx.search.spec.objective)

    def report(step: int, heldout_loss: dict[str, float]) -> None:
        if step > 0:
            log.report(step, {"heldout_loss": heldout_loss})

    return report


def baseline_mixture(ctx: StepContext, baseline: str) -> dict:
    """The domain weights of a finalTraining.compareWith baseline."""
    domains = ctx.domainset.spec.domains
    if baseline == "uniform":
        weights = np.full(len(domains), 1.0 / len(domains))
    elif baseline == "manual":
        weights = ctx.vector({d.name: d.weight or 0.0 for d in domains})
        weights = weights / weights.sum()
    else:
        weights = ctx.vector(ctx.store.get_json(layout.MADMIX)["weights"])
    return {"weights": ctx.as_weights(weights), "source": baseline}


def _objective_line(ctx: StepContext, metrics: dict) -> str:
    objective = ctx.search.spec.objective
    return f"objective={objective_value(metrics, objective):.4f} ({label(objective)})"


def pick_final(ctx: StepContext) -> dict:
    """The final mixture, chosen once (`final/mixture.json`): a user's trainer reads it, so `final-pick` runs
    before it; the built-in final training picks and trains in one step."""
    if ctx.store.exists(layout.FINAL_MIXTURE):
        return ctx.store.get_json(layout.FINAL_MIXTURE)
    spec = ctx.search.spec
    domains = ctx.domainset.spec.domains
    manual = ctx.vector({d.name: d.weight or 0.0 for d in domains}) if spec.method == "manual" else None
    madmix = ctx.vector(ctx.store.get_json(layout.MADMIX)["weights"]) if spec.method == "madmix" else None
    space = load_space(ctx)
    ids, x, y, _ = observations(ctx, space)
    noise = measured_noise(ctx, ids, y)
    point, provenance = final_mixture(
        spec.method,
        manual=manual,
        madmix=madmix,
        trials_x=x,
        trials_score=y,
        seed=ctx.seed,
        d=len(domains),
        space=space.geometry,
        noise=None if noise is None else noise.variance,
    )
    if "index" in provenance:
        provenance["trial"] = ids[provenance.pop("index")]
    if "posterior_score" in provenance:  # back in the objective's own units (`score` is its own inverse)
        provenance["posterior_objective"] = score(provenance.pop("posterior_score"), spec.objective)
    mixture = {**space.record(point), **provenance}
    ctx.store.put_json(layout.FINAL_MIXTURE, mixture)
    print(f"final mixture {json.dumps(mixture)}", flush=True)
    return mixture


def run_pick(ctx: StepContext, args: argparse.Namespace) -> None:
    if not ctx.is_done("final"):
        pick_final(ctx)


def run_final(ctx: StepContext, args: argparse.Namespace) -> None:
    """The target model on the chosen mixture (`final`), or on a baseline (`final/<baseline>`): same steps,
    seed and settings, with the held-out objective every log interval for the comparison's curves."""
    baseline = getattr(args, "baseline", None)
    step_key = "final" if baseline is None else f"final/{baseline}"
    if ctx.is_done(step_key):
        return
    spec = ctx.search.spec
    world = current_world()
    # Rank 0 picks (and writes) the mixture, the other ranks train on what it picked.
    mixture = world.from_main(lambda: pick_final(ctx) if baseline is None else _write_baseline(ctx, baseline))
    # Only the chosen mixture's model is kept; curves are recorded when there are baselines to compare with.
    keep = (lambda backend, weights: upload_model(ctx, backend, weights)) if baseline is None else None
    eval_every = DEFAULT_CONFIG["log_every"] if final_baselines(spec) else 0
    steps = spec.final_training.steps
    checkpoints = layout.final_checkpoints(baseline)
    metrics = _train(ctx, mixture, "target", steps, ctx.seed, keep, eval_every, checkpoints)
    if world.is_main:
        ctx.store.put_json(layout.final_metrics(baseline), metrics)
        print(f"{step_key} {_objective_line(ctx, metrics)}", flush=True)
        ctx.mark_done(step_key)


def _write_baseline(ctx: StepContext, baseline: str) -> dict:
    mixture = baseline_mixture(ctx, baseline)
    ctx.store.put_json(layout.final_mixture(baseline), mixture)
    return mixture
