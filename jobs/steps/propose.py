"""propose: the mixtures of one round's trials, from every finished trial so far."""

from __future__ import annotations

import argparse

import numpy as np

from mixtura_jobs import gp_ucb
from mixtura_jobs.context import StepContext
from mixtura_jobs.regmix import regression_batch
from mixtura_jobs.shards import count_samples
from mixtura_jobs.simplex import random_batch
from mixtura_operator import layout


def natural_weights(ctx: StepContext) -> np.ndarray:
    """Size-proportional weights: the prior the searches centre on without MaD-Mix."""
    sizes = np.array(
        [
            d.samples if d.samples is not None else max(count_samples(ctx.domain_path(d.name)).values())
            for d in ctx.domainset.spec.domains
        ],
        dtype=float,
    )
    return sizes / sizes.sum()


def observations(ctx: StepContext) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Finished trials: ids, weights (n, d) and the objective to maximise (minus the held-out loss)."""
    ids = sorted(key.split("/")[1] for key in ctx.store.list("trials") if key.endswith("/_SUCCESS"))
    x = np.array([ctx.vector(ctx.store.get_json(layout.trial_mixture(t))["weights"]) for t in ids])
    y = np.array([-float(ctx.store.get_json(layout.trial_metrics(t))["objective"]) for t in ids])
    return ids, x.reshape(len(ids), len(ctx.domain_names)), y


def run(ctx: StepContext, args: argparse.Namespace) -> None:
    step_key = f"propose/{args.round}"
    if ctx.is_done(step_key):
        return
    spec = ctx.search.spec
    trial_ids = args.trials.split(",")
    q, seed = len(trial_ids), ctx.seed + 7919 * args.round
    _, x, y = observations(ctx)
    madmix = ctx.vector(ctx.store.get_json(layout.MADMIX)["weights"]) if spec.method == "madmix+mixatlas" else None
    center = madmix if madmix is not None else natural_weights(ctx)
    mean = std = None
    first_round = spec.budget.parallel_trials
    if spec.method == "random" or (spec.method == "regression" and len(y) < first_round):
        weights, source = random_batch(q, len(center), seed, center), "random"
    elif spec.method == "regression":
        weights, source = regression_batch(x, y, q, seed=seed, center=center), "regression"
    else:
        beta = "srinivas" if spec.search.beta_schedule == "srinivas" else spec.search.beta
        proposal = gp_ucb.propose_batch(x, y, q, seed=seed, beta=beta, prior_center=center, n_initial=first_round)
        weights, mean, std = proposal.weights, proposal.predicted_mean, proposal.predicted_std
        source = "initial-design" if mean is None else "gp-ucb"
    for index, (tid, w) in enumerate(zip(trial_ids, weights, strict=True)):
        record = {"weights": ctx.as_weights(w), "round": args.round, "source": source}
        if mean is not None and std is not None:
            record["predicted"] = {"objective": -float(mean[index]), "std": float(std[index])}
        ctx.store.put_json(layout.trial_mixture(tid), record)
    ctx.store.put_json(
        layout.proposal(args.round),
        {"round": args.round, "source": source, "observations": len(y), "trials": trial_ids},
    )
    print(f"proposed round={args.round} trials={','.join(trial_ids)} source={source}", flush=True)
    ctx.mark_done(step_key)
