"""The trainer contract (docs/trainer-contract.md): what Mixtura hands a user's trainer and what it reads back.

A trainer gets its run in environment variables and writes, under `MIXTURA_OUTPUT_URI`, `metrics.json` (the
objective's metric among them), optionally `progress.json` while it runs (the objective at its checkpoints,
read by early stopping), then `_SUCCESS`. Both executors
build a trainer's environment here, and the built-in trainer uses the same seeds.
"""

from __future__ import annotations

import json
import math

from mixtura_operator import layout
from mixtura_operator.api.mixturesearch import SEED_MAX, MixtureSearchSpec, Trainer

SEARCH_URI = "MIXTURA_SEARCH_URI"
MIXTURE_URI = "MIXTURA_MIXTURE_URI"
ASSIGNMENTS_URI = "MIXTURA_ASSIGNMENTS_URI"
OUTPUT_URI = "MIXTURA_OUTPUT_URI"
STEPS = "MIXTURA_STEPS"
SEED = "MIXTURA_SEED"
TRIAL = "MIXTURA_TRIAL"
MODEL_CONFIG = "MIXTURA_MODEL_CONFIG"

METRICS = "metrics.json"
PROGRESS = "progress.json"
SUCCESS = "_SUCCESS"
FINAL = "final"
# A repeat's seed is the search's plus a multiple of this prime: far from the seeds people pick by hand.
REPEAT_SEED_STRIDE = 7919


def progress_curve(data: object) -> tuple[tuple[int, float], ...]:
    """The (step, objective) reports of a `progress.json` (a list of {step, objective}), in step order; entries
    that are not such pairs are left out, so a trainer's other progress never stops a trial."""
    if not isinstance(data, list):
        return ()
    reports = {}
    for entry in data:
        step = entry.get("step") if isinstance(entry, dict) else None
        value = entry.get("objective") if isinstance(entry, dict) else None
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (step, value))
        if numbers and math.isfinite(value) and step >= 0:
            reports[int(step)] = float(value)
    return tuple(sorted(reports.items()))


def trial_seed(search_seed: int, repeat: int = 0) -> int:
    """One init seed for every proxy trial (the search's), so that seed noise does not enter the comparison of
    two mixtures; the n-th repeat of `spec.search.repeatTop` gets a new one, the same on every rerun."""
    return (search_seed + REPEAT_SEED_STRIDE * repeat) % (SEED_MAX + 1)


def trainer_for(spec: MixtureSearchSpec, step_key: str) -> Trainer | None:
    """The user's trainer of a step (`trial/<id>` or `final`), or None for the built-in one."""
    if step_key == FINAL:
        return spec.final_training.trainer or spec.trainer
    return spec.trainer if step_key.startswith("trial/") else None


def trainer_env(spec: MixtureSearchSpec, step_key: str, search_uri: str, repeat: int = 0) -> dict[str, str]:
    """The contract's variables for the trainer of `step_key` (`trial/<id>` or `final`); `repeat`: the trial's
    repeat number (`schedule.repeat_number`), 0 for a trial of the budget."""
    if step_key == FINAL:
        tid, mixture, steps = FINAL, layout.FINAL_MIXTURE, spec.final_training.steps
        seed, model = spec.search.seed, spec.models.target
    else:
        tid = step_key.partition("/")[2]
        mixture, steps = layout.trial_mixture(tid), spec.budget.proxy_steps
        seed, model = trial_seed(spec.search.seed, repeat), spec.models.proxy
    return {
        SEARCH_URI: search_uri,
        MIXTURE_URI: f"{search_uri}/{mixture}",
        ASSIGNMENTS_URI: f"{search_uri}/{layout.ASSIGNMENTS}",
        OUTPUT_URI: f"{search_uri}/{layout.step_folder(step_key)}",
        STEPS: str(steps),
        SEED: str(seed),
        TRIAL: tid,
        MODEL_CONFIG: json.dumps(model.config, sort_keys=True),
    }


def missing_metrics_message(step_key: str) -> str:
    """Why a trainer that exited 0 without `_SUCCESS` failed."""
    folder = layout.step_folder(step_key)
    return f"the trainer exited 0 but wrote no metrics: expected {folder}/{METRICS}, then {folder}/{SUCCESS}"
