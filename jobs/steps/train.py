"""proxy-train (one trial's mixture, proxy model) and final-train (the chosen mixture, target model)."""

from __future__ import annotations

import argparse
import json

from mixtura_jobs.choose import final_mixture
from mixtura_jobs.context import StepContext
from mixtura_jobs.steps.propose import observations
from mixtura_jobs.trainer import train_on_mixture
from mixtura_operator import layout


def _train(ctx: StepContext, weights: dict[str, float], model: dict, steps: int, seed: int) -> dict:
    spec = ctx.search.spec
    # Every domain is read, weighted or not: held-out loss is measured on all of them.
    domains = {name: ctx.read_domain(name) for name in ctx.domain_names}
    augment = None
    if spec.training.augmentation.type == "mergemix":
        from mixtura_jobs.mergemix import MergeMixConfig, make_mergemix_augment

        settings = spec.training.augmentation.mergemix
        augment = make_mergemix_augment(MergeMixConfig(enabled=True, **settings.model_dump()))
    config = {"model": model, "steps": steps}
    metrics = train_on_mixture(domains, weights, config, seed=seed, augment=augment)
    metrics["augmentation"] = spec.training.augmentation.type
    return metrics


def run_proxy(ctx: StepContext, args: argparse.Namespace) -> None:
    step_key = f"trial/{args.trial}"
    if ctx.is_done(step_key):
        return
    spec = ctx.search.spec
    if spec.models.proxy.config.get("failTrials") and args.trial in spec.models.proxy.config["failTrials"]:
        raise SystemExit(f"trial {args.trial}: failure injected by models.proxy.config.failTrials")
    weights = ctx.store.get_json(layout.trial_mixture(args.trial))["weights"]
    metrics = _train(ctx, weights, spec.models.proxy.config, spec.budget.proxy_steps, ctx.seed * 1000 + int(args.trial))
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
    ids, x, y = observations(ctx)
    weights, provenance = final_mixture(
        spec.method, manual=manual, madmix=madmix, trials_x=x, trials_loss=-y, seed=ctx.seed, d=len(domains)
    )
    if "index" in provenance:
        provenance["trial"] = ids[provenance.pop("index")]
    mixture = {"weights": ctx.as_weights(weights), **provenance}
    ctx.store.put_json(layout.FINAL_MIXTURE, mixture)
    metrics = _train(ctx, mixture["weights"], spec.models.target.config, spec.final_training.steps, ctx.seed)
    ctx.store.put_json(layout.FINAL_METRICS, metrics)
    print(f"final {json.dumps(mixture)} objective={metrics['objective']:.4f}", flush=True)
    ctx.mark_done("final")
