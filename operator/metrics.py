"""The operator's Prometheus metrics. Labels are bounded: namespace, search, phase, state, step, baseline — never
trial ids or free text (tests check the set against the README)."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

from mixtura_operator.api.mixturesearch import MixtureSearchStatus, Phase

SEARCH_PHASE = Gauge(
    "mixtura_search_phase", "1 for the phase a search is in, 0 otherwise", ["namespace", "search", "phase"]
)
SEARCHES = Gauge("mixtura_searches", "Searches by phase", ["phase"])
TRIALS = Gauge("mixtura_trials", "Trials of a search by state", ["namespace", "search", "state"])
# The value of each search's own spec.objective; its name is status.objective (a label would be free text).
BEST_OBJECTIVE = Gauge(
    "mixtura_best_objective", "The best trial's value of the search's spec.objective", ["namespace", "search"]
)
STEPS_RATIO = Gauge(
    "mixtura_steps_ratio",
    "Steps the chosen mixture needs to reach a baseline's final objective, over the baseline's steps",
    ["namespace", "search", "baseline"],
)
BASELINES = ("uniform", "manual", "madmix")
ROUND = Gauge("mixtura_search_round", "Proposal round a search is in", ["namespace", "search"])
PROPOSALS = Counter("mixtura_proposals_total", "Proposal rounds started", ["namespace", "search"])
JOB_DURATION = Histogram(
    "mixtura_job_duration_seconds",
    "Job wall time from start to completion",
    ["step"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
)
GPU_HOURS = Counter(
    "mixtura_gpu_hours_requested_total", "GPU-hours requested by finished jobs", ["namespace", "search"]
)
RECONCILE = Histogram(
    "mixtura_reconcile_duration_seconds",
    "Time of one reconcile",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = Counter("mixtura_reconcile_errors_total", "Reconciles that raised")
STORE_ERRORS = Counter("mixtura_artifact_store_errors_total", "Artifact-store operations that failed")

TRIAL_STATES = ("succeeded", "failed", "stopped", "running", "pending")


def record_status(namespace: str, search: str, status: MixtureSearchStatus) -> None:
    for phase in Phase:
        SEARCH_PHASE.labels(namespace, search, phase.value).set(1 if status.phase == phase else 0)
    for state in TRIAL_STATES:
        TRIALS.labels(namespace, search, state).set(getattr(status.trials, state))
    if status.best_trial is not None:
        BEST_OBJECTIVE.labels(namespace, search).set(status.best_trial.objective)
    ROUND.labels(namespace, search).set(status.round)
    # Every search has the series from its first status on (an operator that restarted after its Jobs ended
    # has counted none of them yet: a counter reset, which rate() and increase() take in their stride).
    GPU_HOURS.labels(namespace, search).inc(0)
    for comparison in status.comparison:
        if comparison.steps_ratio is not None:
            STEPS_RATIO.labels(namespace, search, comparison.baseline).set(comparison.steps_ratio)


def record_phase_counts(phases: list[Phase]) -> None:
    for phase in Phase:
        SEARCHES.labels(phase.value).set(sum(p == phase for p in phases))


def forget(namespace: str, search: str) -> None:
    """Drop a deleted search's series so that label sets stay bounded by the live searches."""
    for phase in Phase:
        SEARCH_PHASE.remove(namespace, search, phase.value)
    for state in TRIAL_STATES:
        TRIALS.remove(namespace, search, state)
    for metric in (BEST_OBJECTIVE, ROUND, GPU_HOURS):
        with contextlib.suppress(KeyError):
            metric.remove(namespace, search)
    for baseline in BASELINES:
        with contextlib.suppress(KeyError):
            STEPS_RATIO.remove(namespace, search, baseline)
