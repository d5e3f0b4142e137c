"""propose: the mixtures of one proposal's trials, from every finished trial so far and the running ones (async),
or the mixtures of the best trials again (repeatTop)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np

from mixtura_jobs.data.recorded_runs import Layout, pool_from_text
from mixtura_jobs.search import cell_weights, gp_ucb, seed_noise
from mixtura_jobs.search.mixtures import NamedSpace
from mixtura_jobs.search.regmix import regression_batch
from mixtura_jobs.steps.context import StepContext
from mixtura_operator import layout
from mixtura_operator.api.plan import search_space
from mixtura_operator.objective import objective_parts, score
from mixtura_operator.store import ArtifactNotFound, open_store
from mixtura_operator.trainer_contract import progress_curve


def load_space(ctx: StepContext) -> NamedSpace:
    """The search's space; its natural (size-proportional) mixture is the prior searches centre on without
    MaD-Mix."""
    kind = search_space(ctx.search.spec, ctx.domainset)
    if kind == "domains":
        sizes = ctx.domain_sizes()
        return NamedSpace(kind, tuple(ctx.domain_names), sizes / sizes.sum())
    cells = cell_weights.from_record(ctx.store.get_json(layout.CELLS))
    return NamedSpace(kind, tuple(ctx.domain_names), cells.natural, cells)


PRIOR = "prior:"  # the id prefix of spec.search.priorRuns' rows among the observations


def observations(
    ctx: StepContext, space: NamedSpace, warm_start: Sequence[str] = ()
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray | None]:
    """Finished trials, this search's and those of the `warm_start` searches (root URIs), this search's stopped
    trials and its prior runs: ids, their points in `space` (n, dim), their scores, the objective as the GP
    maximises it (minus its value when the goal is minimize), and the scores' parts (n, M) where the objective
    is a per-domain metric that every observation has for the same M > 1 domains (objective_parts; None
    otherwise). A trial whose metrics lack the objective is left out: the operator counts it as failed. A
    stopped trial is its last reported objective: measured before the end of its training, so worse than it
    would have ended (a penalty), where the rule judged it worse than its peers. Prior runs have ids
    `prior:<row>`. Stopped trials and prior runs have one number each, no parts."""
    ids, points, parts = [], [], []
    objective = ctx.search.spec.objective
    for source in [ctx.store, *(open_store(uri, ctx.search.spec.artifacts.endpoint_url) for uri in warm_start)]:
        for tid in sorted(key.split("/")[1] for key in source.list("trials") if key.endswith("/_SUCCESS")):
            try:
                terms = objective_parts(source.get_json(layout.trial_metrics(tid)), objective)
            except (ValueError, ArtifactNotFound):  # ObjectiveError, or metrics that are not JSON
                continue
            record = source.get_json(layout.trial_mixture(tid))
            if source is not ctx.store:
                _check_same_space(space, record, source.uri)
            ids.append(tid if source is ctx.store else f"{source.uri}#{tid}")
            points.append(space.point(record))
            parts.append(terms)
    for tid, value in stopped_trials(ctx):
        ids.append(tid)
        points.append(space.point(ctx.store.get_json(layout.trial_mixture(tid))))
        parts.append({objective.metric: value})
    for index, (weights, value) in enumerate(prior_runs(ctx)):
        ids.append(f"{PRIOR}{index + 1}")
        points.append(space.center(weights))
        parts.append({objective.metric: value})
    scores = np.array([score(math.fsum(terms.values()), objective) for terms in parts])
    names = {tuple(sorted(terms)) for terms in parts}
    split = len(names) == 1 and len(columns := next(iter(names))) > 1
    matrix = np.array([[score(terms[c], objective) for c in columns] for terms in parts]) if split else None
    return ids, np.array(points).reshape(len(ids), space.geometry.dim), scores, matrix


def stopped_trials(ctx: StepContext) -> list[tuple[str, float]]:
    """This search's trials stopped early, each with its last reported objective."""
    out = []
    for tid in sorted(key.split("/")[1] for key in ctx.store.list("trials") if key.endswith("/_STOPPED")):
        if ctx.is_done(f"trial/{tid}"):  # it finished as it was being stopped: its metrics count
            continue
        curve = progress_curve(ctx.store.get_json(layout.trial_progress(tid)))
        if curve:
            out.append((tid, curve[-1][1]))
    return out


def prior_runs(ctx: StepContext) -> list[tuple[np.ndarray, float]]:
    """spec.search.priorRuns: each recorded run's domain weights (in the DomainSet's order; the operator checked
    that the columns are its domains) and objective."""
    prior = ctx.search.spec.search.prior_runs
    if prior is None:
        return []
    folder, _, name = prior.uri.rpartition("/")
    text = open_store(folder, ctx.search.spec.artifacts.endpoint_url).get_bytes(name).decode()
    columns = prior.columns_for(ctx.domain_names)
    pool = pool_from_text(prior.uri, text, Layout(target=(prior.target,), weight_columns=tuple(columns)))
    order = [pool.domains.index(name) for name in ctx.domain_names]
    return [(weights[order], float(value)) for weights, value in zip(pool.weights, pool.scores, strict=True)]


def _check_same_space(space: NamedSpace, record: dict, uri: str) -> None:
    """An imported trial must be a point of this search's space: the same domains, or the same cells."""
    names = space.cells.ids if space.cells is not None else space.domains
    theirs = record.get("cells") if space.cells is not None else record.get("weights")
    if theirs is None or set(theirs) != set(names):
        what = "cells" if space.cells is not None else "domains"
        raise ValueError(
            f"spec.search.warmStartFrom: the search at {uri} searched other {what} than this one "
            f"({sorted(theirs or [])} against {sorted(names)}): its trials cannot be imported"
        )


def measured_noise(ctx: StepContext, ids: Sequence[str], y: np.ndarray) -> seed_noise.SeedNoise | None:
    """The seed noise of this search's repeats (`repeatOf` in their mixture records) among the observations
    `ids` with scores `y`; None before there are repeats."""
    own = [tid for tid in ids if "#" not in tid and not tid.startswith(PRIOR)]
    repeat_of = {
        tid: r["repeatOf"] for tid in own if "repeatOf" in (r := ctx.store.get_json(layout.trial_mixture(tid)))
    }
    return seed_noise.pooled(y, seed_noise.repeat_groups(ids, repeat_of))


def mixtures(ctx: StepContext, space: NamedSpace, trial_ids: Sequence[str]) -> np.ndarray:
    """The points in `space` of this search's trials `trial_ids` (proposed, running or finished)."""
    points = [space.point(ctx.store.get_json(layout.trial_mixture(tid))) for tid in trial_ids]
    return np.array(points).reshape(len(points), space.geometry.dim)


def repeat(ctx: StepContext, args: argparse.Namespace) -> None:
    """The mixtures of `--repeat-of`, again, as the trials of `--trials` (repeatTop: their seeds differ)."""
    originals, trial_ids = args.repeat_of.split(","), args.trials.split(",")
    for tid, original in zip(trial_ids, originals, strict=True):
        record = ctx.store.get_json(layout.trial_mixture(original))
        rerun = {k: v for k, v in record.items() if k != "predicted"}
        ctx.store.put_json(layout.trial_mixture(tid), {**rerun, "round": args.round, "repeatOf": original})
    summary = {
        "round": args.round,
        "source": "repeat",
        "trials": trial_ids,
        "repeatOf": dict(zip(trial_ids, originals, strict=True)),
    }
    ctx.store.put_json(layout.proposal(args.round), summary)
    print(f"proposed round={args.round} trials={','.join(trial_ids)} source=repeat of={args.repeat_of}", flush=True)
    ctx.mark_done(f"propose/{args.round}")


def previous_fit(ctx: StepContext, round_index: int) -> gp_ucb.Hyperparameters | None:
    """The GP hyperparameters the previous round fitted, if it fitted one: this round's warm start."""
    key = layout.proposal(round_index - 1)
    return ctx.store.get_json(key).get("gp") if round_index > 0 and ctx.store.exists(key) else None


def _write_trials(
    ctx: StepContext,
    space: NamedSpace,
    trial_ids: list[str],
    points: np.ndarray,
    fields: dict,
    mean: np.ndarray | None,
    std: np.ndarray | None,
) -> None:
    """Each trial's mixture record: its point in `space`, the proposal's `fields` and, from a surrogate, the
    predicted objective and its std."""
    for index, (tid, point) in enumerate(zip(trial_ids, points, strict=True)):
        record = {**space.record(point), **fields}
        if mean is not None and std is not None:
            predicted = score(float(mean[index]), ctx.search.spec.objective)  # the score's own inverse
            record["predicted"] = {"objective": predicted, "std": float(std[index])}
        ctx.store.put_json(layout.trial_mixture(tid), record)


def run(ctx: StepContext, args: argparse.Namespace) -> None:
    step_key = f"propose/{args.round}"
    if ctx.is_done(step_key):
        return
    if args.repeat_of:
        return repeat(ctx, args)
    spec = ctx.search.spec
    trial_ids = args.trials.split(",")
    q, seed = len(trial_ids), ctx.seed + 7919 * args.round
    space = load_space(ctx)
    imported = [uri for uri in args.warm_start.split(",") if uri]
    ids, x, y, parts = observations(ctx, space, imported)
    # A trial that finished after the operator started this proposal is an observation now, no longer pending.
    pending_ids = [tid for tid in args.pending.split(",") if tid and tid not in ids]
    noise = measured_noise(ctx, ids, y)
    madmix = ctx.vector(ctx.store.get_json(layout.MADMIX)["weights"]) if spec.method == "madmix+mixatlas" else None
    center = space.center(madmix)
    mean = std = fitted = None
    first_round = spec.budget.parallel_trials
    if spec.method == "random" or (spec.method == "regression" and len(y) < first_round):
        points, source = space.geometry.sample(q, center, np.random.default_rng(seed)), "random"
    elif spec.method == "regression":
        points, source = regression_batch(x, y, q, seed=seed, center=center, space=space.geometry), "regression"
    else:
        beta = "srinivas" if spec.search.beta_schedule == "srinivas" else spec.search.beta
        proposal = gp_ucb.propose_batch(
            x,
            y if parts is None else parts,
            q,
            seed=seed,
            beta=beta,
            prior_center=center,
            n_initial=first_round,
            space=space.geometry,
            warm_start=previous_fit(ctx, args.round),
            pending=mixtures(ctx, space, pending_ids),
            noise=None if noise is None else noise.variance,
        )
        points, mean, std = proposal.weights, proposal.predicted_mean, proposal.predicted_std
        fitted = proposal.hyperparameters
        source = "initial-design" if mean is None else "gp-ucb"
    _write_trials(ctx, space, trial_ids, points, {"round": args.round, "source": source}, mean, std)
    summary = {
        "round": args.round,
        "source": source,
        "space": space.kind,
        "observations": len(y),
        "imported": imported,
        "stopped": [tid for tid, _ in stopped_trials(ctx)],
        "prior": sum(i.startswith(PRIOR) for i in ids),
        "trials": trial_ids,
        "pending": pending_ids,
        **({} if noise is None else {"noise": {"variance": noise.variance, "repeats": noise.repeats}}),
        **({} if parts is None else {"objectiveParts": parts.shape[1]}),
    }
    ctx.store.put_json(layout.proposal(args.round), summary if fitted is None else {**summary, "gp": fitted})
    running = f" pending={','.join(pending_ids)}" if pending_ids else ""
    print(
        f"proposed round={args.round} trials={','.join(trial_ids)} source={source} space={space.kind}{running}",
        flush=True,
    )
    ctx.mark_done(step_key)
