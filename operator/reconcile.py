"""The reconcile state machine: (spec, status, what exists) → (actions, next status, events).

Pure: no Kubernetes, no store, no clock. The operator and the local runner observe the world into
an `Observed`, call `reconcile`, and carry out the actions; so both behave the same and this
module is tested without either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from mixtura_operator import layout, objective, schedule, stopping_rules, trainer_contract
from mixtura_operator.api.base import Condition, set_condition
from mixtura_operator.api.cross_object import manual_weight_problem
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import (
    UNRELIABLE_LOO_SPEARMAN,
    ArtifactRefs,
    BaselineComparison,
    BestTrial,
    MixtureSearch,
    MixtureSearchSpec,
    MixtureSearchStatus,
    Phase,
    SurrogateFit,
    TrialCounts,
)
from mixtura_operator.api.plan import (
    embedded_domains,
    final_steps,
    searches,
    uses_cells,
    uses_madmix,
)
from mixtura_operator.wording import counted, counted_subject

JobPhase = Literal["Pending", "Running", "Succeeded", "Failed"]
TERMINAL = (Phase.SUCCEEDED, Phase.FAILED)
ACTIVE = ("Pending", "Running")
# Retries of an unreadable store or data wait as long as the fault has lasted (so the waits double), within these.
BACKOFF_MIN_S, BACKOFF_MAX_S = 5.0, 300.0
# `cells` embeds the samples beyond those `embed` stored.
GPU_STEPS = ("embed", "cells", "trial", "final")


@dataclass(frozen=True)
class JobState:
    phase: JobPhase
    message: str = ""
    unschedulable: bool = False


@dataclass(frozen=True)
class TrialResult:
    objective: float
    weights: Mapping[str, float]


@dataclass(frozen=True)
class Observed:
    """What exists, read from the store (the source of truth) and the executor."""

    root_uri: str = ""
    snapshot: bool = False
    done: frozenset[str] = frozenset()
    failed: Mapping[str, str] = field(default_factory=dict)
    jobs: Mapping[str, JobState] = field(default_factory=dict)
    trials: Mapping[str, TrialResult] = field(default_factory=dict)
    madmix_weights: Mapping[str, float] | None = None
    final: TrialResult | None = None
    # Steps whose job was created (`_STARTED`): one that vanishes without a marker is judged, not re-created.
    started: frozenset[str] = frozenset()
    # Trial ids of each round whose proposal exists: a raised maxTrials keeps the rounds already proposed.
    proposed: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    # spec.search.repeatTop: repeat trial id -> the trial whose mixture it reruns with a new seed.
    repeats: Mapping[str, str] = field(default_factory=dict)
    # Domains whose data is provably absent or empty (the search fails), and those that could not be read
    # (the search waits, Degraded).
    domain_problems: Mapping[str, str] = field(default_factory=dict)
    data_unreadable: Mapping[str, str] = field(default_factory=dict)
    # Why the search's artifact store could not be read; nothing else was observed then.
    store_error: str | None = None
    # spec.search.conceptCentroidsFrom: the root URI of that search once its cells exist, or why it has none.
    concept_source: str | None = None
    concept_source_problem: str | None = None
    # What the deployment refuses in the search itself (file:// on a cluster), by field; nothing else is observed.
    refused: tuple[str, ...] = ()
    # From the report: the target model on the baselines against the chosen mixture, and the surrogate's fit.
    comparison: tuple[BaselineComparison, ...] = ()
    surrogate: SurrogateFit | None = None
    # spec.search.warmStartFrom: the root URIs of those searches once all have finished; the first that has not
    # (the search waits for it); or why one never will give trials.
    warm_start: tuple[str, ...] = ()
    warm_start_waiting: str | None = None
    warm_start_problem: str | None = None
    # Why the final training cannot be launched as spec.finalTraining.launcher asks (a JobSet without its CRD):
    # it waits, nothing is created.
    launcher_problem: str | None = None
    # Early stopping: trials stopped (step key → why), and the (step, objective) reports of the trials so far.
    stopped: Mapping[str, str] = field(default_factory=dict)
    progress: Mapping[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)
    # spec.search.priorRuns: why its CSV can never be imported (the search fails: columns missing, no file), and
    # why it could not be read now (the search waits, Degraded).
    prior_runs_problem: str | None = None
    prior_runs_unreadable: str | None = None


@dataclass(frozen=True)
class WriteSnapshot:
    """Write spec.json (search + domain set) so that every job reads the same inputs."""


@dataclass(frozen=True)
class CreateJob:
    step_key: str
    args: tuple[str, ...] = ()
    gpus: int = 0

    @property
    def step(self) -> str:
        """The jobs CLI subcommand that runs this step."""
        prefix = self.step_key.partition("/")[0]
        return {"trial": "proxy-train", "final": "final-train"}.get(prefix, prefix)

    def option(self, name: str) -> str | None:
        """The value of the command-line option `name` in `args`, if given."""
        pairs = dict(zip(self.args[::2], self.args[1::2], strict=False))
        return pairs.get(name)


@dataclass(frozen=True)
class CancelJob:
    """Stop a job that is no longer wanted (its search failed): it would hold its GPUs for nothing."""

    step_key: str


@dataclass(frozen=True)
class ResetStep:
    """Delete the step's job and its markers so that it runs again: a trial stopped by suspension, or the final
    training and report of a search whose budget was raised."""

    step_key: str


@dataclass(frozen=True)
class RecordFailure:
    step_key: str
    message: str


@dataclass(frozen=True)
class StopTrial:
    """Stop a trial early (spec.search.earlyStopping): cancel its job and record it as stopped, not failed."""

    step_key: str
    message: str


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = WriteSnapshot | CreateJob | CancelJob | ResetStep | RecordFailure | StopTrial


@dataclass(frozen=True)
class Decision:
    actions: tuple[Action, ...]
    status: MixtureSearchStatus
    events: tuple[Event, ...]
    # Seconds to wait before the next reconcile (a fault backs off); None: as events come.
    retry_after: float | None = None


def finished(search: MixtureSearch) -> bool:
    """Nothing more will happen to the search: Failed, or Succeeded and not given more trials since."""
    status = search.status
    if status is None or status.phase not in TERMINAL:
        return False
    return status.phase == Phase.FAILED or not _extended(search.spec, status)


def _extended(spec: MixtureSearchSpec, status: MixtureSearchStatus) -> bool:
    return searches(spec) and spec.budget.max_trials > status.trials.total


def input_problem(search: MixtureSearch, domainset: DomainSet, observed: Observed) -> str | None:
    """A message naming the bad input, or None. Checks that need more than one resource or the data."""
    if observed.refused:
        return "; ".join(observed.refused)
    for index, domain in enumerate(domainset.spec.domains):
        if domain.name in observed.domain_problems:
            return f"spec.domains[{index}] ({domain.name}): {observed.domain_problems[domain.name]}"
    manual = manual_weight_problem(search, domainset)
    if manual:
        return manual
    unknown = sorted(set(search.spec.objective.domain_weights) - {d.name for d in domainset.spec.domains})
    if unknown:
        return f"spec.objective.domainWeights: {', '.join(unknown)} is no domain of DomainSet {domainset.metadata.name}"
    if observed.concept_source_problem and uses_cells(search.spec, domainset):
        return f"spec.search.conceptCentroidsFrom: {observed.concept_source_problem}"
    if observed.warm_start_problem:
        return f"spec.search.warmStartFrom: {observed.warm_start_problem}"
    if observed.prior_runs_problem:
        return f"spec.search.priorRuns: {observed.prior_runs_problem}"
    return None


def _gpus(spec: MixtureSearchSpec, step_key: str) -> int:
    """GPUs of each of a step's pods: the final training's `gpusPerNode` when set, else `resources.gpusPerJob`."""
    step = step_key.partition("/")[0]
    if step == "final" and spec.final_training.gpus_per_node is not None:
        return spec.final_training.gpus_per_node
    return spec.resources.gpus_per_job if step in GPU_STEPS else 0


class _Builder:
    """Accumulates the decision while the stages are walked."""

    def __init__(self, search: MixtureSearch, observed: Observed, now: datetime) -> None:
        self.search, self.observed, self.now = search, observed, now
        self.old = search.status or MixtureSearchStatus()
        self.status = self.old.model_copy(deep=True)
        self.actions: list[Action] = []
        self.events: list[Event] = []

    def condition(self, type_: str, status: bool, reason: str, message: str = "") -> None:
        new = Condition(
            type=type_,
            status="True" if status else "False",
            reason=reason,
            message=message,
            last_transition_time=self.now,
            observed_generation=self.search.metadata.generation,
        )
        self.status.conditions = set_condition(self.status.conditions, new)

    def ensure(self, step_key: str, *args: str) -> None:
        """Create the step's job unless it is done, failed or already exists."""
        if step_key in self.observed.done or step_key in self.observed.jobs:
            return
        self.actions.append(CreateJob(step_key, tuple(args), _gpus(self.search.spec, step_key)))

    def finish(self, phase: Phase, reason: str, message: str) -> Decision:
        self.status.phase = phase
        self.status.message = message
        terminal = phase in TERMINAL
        if terminal and self.status.completion_time is None:
            self.status.completion_time = self.now
        if not terminal:
            self.status.completion_time = None
        if phase != Phase.PENDING and self.status.start_time is None:
            self.status.start_time = self.now
        self.condition("Ready", phase == Phase.SUCCEEDED, reason, message)
        self.condition("Progressing", not terminal and phase not in (Phase.PENDING, Phase.SUSPENDED), reason, message)
        if phase == Phase.SUSPENDED or any(c.type == "Suspended" for c in self.status.conditions):
            self.condition("Suspended", phase == Phase.SUSPENDED, reason, message)
        if phase == Phase.FAILED:
            self.condition("Degraded", True, reason, message)
            self.actions += [
                CancelJob(key)
                for key, job in sorted(self.observed.jobs.items())
                if job.phase in ACTIVE and key not in self.observed.done
            ]
        if phase != self.old.phase:
            kind = "Warning" if phase == Phase.FAILED else "Normal"
            self.events.append(Event(kind, reason, f"{self.old.phase.value} → {phase.value}: {message}"))
        return Decision(tuple(self.actions), self.status, tuple(self.events))

    def hold(self, reason: str, message: str) -> Decision:
        """Keep the phase and wait: Degraded with `reason`, retried after a backoff, no action taken."""
        was = next((c for c in self.old.conditions if c.type == "Degraded"), None)
        self.condition("Degraded", True, reason, message)
        if was is None or was.status != "True" or was.reason != reason:
            self.events.append(Event("Warning", reason, message))
        since = next(c.last_transition_time for c in self.status.conditions if c.type == "Degraded")
        lasted = (self.now - since).total_seconds()
        delay = min(BACKOFF_MAX_S, max(BACKOFF_MIN_S, lasted))
        return Decision((), self.status, tuple(self.events), retry_after=delay)


def reconcile(search: MixtureSearch, domainset: DomainSet | None, observed: Observed, now: datetime) -> Decision:
    b = _Builder(search, observed, now)
    b.status.observed_generation = search.metadata.generation
    if finished(search):
        return Decision((), b.status, ())
    if observed.store_error:
        return b.hold("StoreUnavailable", observed.store_error)
    if domainset is None:
        name = search.spec.domain_set_ref.name
        return b.finish(Phase.PENDING, "DomainSetNotFound", f"waiting for DomainSet {name!r}")
    problem = input_problem(search, domainset, observed)
    if problem:
        return b.finish(Phase.FAILED, "InvalidInput", problem)
    if observed.data_unreadable:
        name, message = sorted(observed.data_unreadable.items())[0]
        return b.hold("DataUnreadable", f"domain {name}: {message}")
    if observed.prior_runs_unreadable:
        return b.hold("DataUnreadable", f"spec.search.priorRuns: {observed.prior_runs_unreadable}")
    if not observed.snapshot:
        b.actions.append(WriteSnapshot())

    failed = _failures(b)
    stopped = _stops(b, failed)
    _summarise(b, failed, stopped)

    step_failures = {k: m for k, m in failed.items() if not k.startswith("trial/")}
    if step_failures:
        key, message = sorted(step_failures.items())[0]
        return b.finish(Phase.FAILED, "StepFailed", f"step {key} failed: {message}")
    # As Katib's maxFailedTrialCount: the search fails once more trials than this have failed.
    if b.status.trials.failed > search.spec.budget.max_failed_trials:
        return b.finish(
            Phase.FAILED,
            "TooManyFailedTrials",
            f"{counted(b.status.trials.failed, 'trial')} failed "
            f"(maxFailedTrials: {search.spec.budget.max_failed_trials})",
        )
    if search.spec.suspend:
        return _suspend(b)
    # A stopped trial has ended its part in the round, as a failed one has.
    return _advance(b, domainset, {**failed, **stopped})


def _no_marker_message(search: MixtureSearch, step_key: str) -> str:
    if trainer_contract.trainer_for(search.spec, step_key) is not None:
        return trainer_contract.missing_metrics_message(step_key)
    return "the job succeeded but wrote no _SUCCESS marker"


def _failures(b: _Builder) -> dict[str, str]:
    """Every step that failed, each counted once: a failure marker in the store (written by the step itself, or
    by an earlier reconcile) once its job is no longer retrying, a finished job without a success marker, or a
    started job that vanished (deleted, or removed by its TTL) without leaving a marker."""
    observed = b.observed
    active = {k for k, j in observed.jobs.items() if j.phase in ACTIVE}
    # A stopped trial's job was cancelled: its end (or disappearance) is no failure.
    settled = observed.done | set(observed.stopped)
    failed = {k: m for k, m in observed.failed.items() if k not in settled and k not in active}
    verdicts = {
        key: job.message or _no_marker_message(b.search, key)
        for key, job in observed.jobs.items()
        if job.phase in ("Failed", "Succeeded")
    }
    vanished = "its job vanished (deleted, or removed by its TTL) before the step wrote a result"
    verdicts.update({key: vanished for key in observed.started if key not in observed.jobs})
    for key, message in sorted(verdicts.items()):
        if key in settled or key in failed:
            continue
        failed[key] = message
        b.actions.append(RecordFailure(key, message))
    # One event per failure, whoever wrote its marker: a failed trial's id stays in the status once it had one.
    told = {f"trial/{tid}" for tid in b.old.trials.failed_ids}
    for key, message in sorted(failed.items()):
        if key not in told:
            reason = "TrialFailed" if key.startswith("trial/") else "StepFailed"
            b.events.append(Event("Warning", reason, f"{key}: {message}"))
    return failed


def _stops(b: _Builder, failed: Mapping[str, str]) -> dict[str, str]:
    """The stopped trials (step key → why): those stopped before, and the running trials that the search's
    early-stopping rule stops now (their jobs are cancelled and each gets an event). repeatTop's reruns always
    run to the end: they measure the seed noise of the finished trials they rerun."""
    spec, observed = b.search.spec, b.observed
    stopped = {k: m for k, m in observed.stopped.items() if k not in observed.done}
    settings = spec.search.early_stopping
    if settings is None or spec.suspend:
        return stopped
    settled = observed.done | set(stopped) | set(failed)
    running = [
        key.removeprefix("trial/")
        for key, job in observed.jobs.items()
        if key.startswith("trial/")
        and job.phase == "Running"
        and key not in settled
        and key.removeprefix("trial/") not in observed.repeats
    ]
    verdicts = stopping_rules.trials_to_stop(
        settings, spec.budget.proxy_steps, observed.progress, running, maximize=spec.objective.goal == "maximize"
    )
    for tid, message in sorted(verdicts.items()):
        key = f"trial/{tid}"
        b.actions.append(StopTrial(key, message))
        b.events.append(Event("Normal", "TrialStopped", f"{key}: {message}"))
        stopped[key] = message
    return stopped


def _suspend(b: _Builder) -> Decision:
    """No new jobs; the running ones are stopped and forgotten, so that they run again on resume."""
    stopped = sorted(k for k, j in b.observed.jobs.items() if j.phase in ACTIVE and k not in b.observed.done)
    b.actions += [ResetStep(key) for key in stopped]
    b.events += [
        Event("Normal", "JobCancelled", f"{key}: stopped by spec.suspend; it runs again on resume") for key in stopped
    ]
    return b.finish(Phase.SUSPENDED, "Suspended", "suspended (spec.suspend): no jobs run until it is resumed")


def _advance(b: _Builder, domainset: DomainSet, failed: Mapping[str, str]) -> Decision:
    spec, done = b.search.spec, b.observed.done
    keys = [f"embed/{name}" for name in embedded_domains(spec, domainset)]
    if not all(k in done for k in keys):
        for key in keys:
            b.ensure(key, "--domain", key.partition("/")[2])
        return b.finish(Phase.EMBEDDING, "Embedding", f"{sum(k in done for k in keys)}/{len(keys)} domains embedded")
    # MaD-Mix and the concept cells both read only the embeddings, so they run side by side.
    analyses = []
    if uses_madmix(spec) and "score" not in done:
        b.ensure("score")
        analyses.append("MaD-Mix weights")
    if uses_cells(spec, domainset) and "cells" not in done:
        analyses.append(_ensure_cells(b))
    if analyses:
        return b.finish(Phase.SCORING, "Scoring", "computing " + " and ".join(analyses))
    if searches(spec):
        searching = _search(b, failed)
        if searching is not None:
            return searching
    finals = [key for key in final_steps(spec) if key not in done]
    launcher_problem = b.observed.launcher_problem if finals else None
    if launcher_problem or any(c.type == "LauncherUnavailable" for c in b.status.conditions):
        b.condition("LauncherUnavailable", bool(launcher_problem), "LauncherUnavailable", launcher_problem or "")
    if launcher_problem:
        return b.finish(Phase.TRAINING, "LauncherUnavailable", launcher_problem)
    if finals:
        _ensure_within(b, {key: _baseline_args(key) for key in finals}, spec.budget.parallel_trials)
        what = "the chosen mixture" + "".join(f", {k.partition('/')[2]}" for k in final_steps(spec)[1:])
        return b.finish(Phase.TRAINING, "FinalTraining", f"training the target model on {what}")
    if "report" not in done:
        b.ensure("report")
        return b.finish(
            Phase.TRAINING if spec.final_training.enabled else Phase.SEARCHING,
            "Reporting",
            "writing the report",
        )
    return b.finish(Phase.SUCCEEDED, "Succeeded", "search finished")


def _baseline_args(key: str) -> tuple[str, ...]:
    baseline = key.partition("/")[2]
    return ("--baseline", baseline) if baseline else ()


def _ensure_within(b: _Builder, jobs: Mapping[str, tuple[str, ...]], parallel: int) -> None:
    """Start the jobs (step key -> arguments; steps not done), at most `parallel` of them running at once."""
    running = sum(key in b.observed.jobs for key in jobs)
    for key, args in jobs.items():
        if key in b.observed.jobs:
            continue
        if running >= parallel:
            return
        b.ensure(key, *args)
        running += 1


def _search(b: _Builder, failed: Mapping[str, str]) -> Decision | None:
    """The proposals and trials (schedule.py), None once every trial has finished."""
    spec, observed = b.search.spec, b.observed
    finished = {k.removeprefix("trial/") for k in (*observed.done, *failed) if k.startswith("trial/")}
    best_first = sorted(
        (t for t in observed.trials if t not in observed.repeats),
        key=lambda t: (-objective.score(observed.trials[t].objective, spec.objective), t),
    )
    plan = schedule.next_step(spec, observed.proposed, finished, observed.repeats, best_first)
    b.status.round = plan.round
    if plan.proposal is None and not plan.open_trials:
        return None
    _reopen_outputs(b)
    trials = {f"trial/{t}": _trial_args(t, observed.repeats) for t in plan.open_trials}
    _ensure_within(b, trials, spec.budget.parallel_trials)
    if plan.proposal is not None:
        return _propose(b, plan.proposal, len(plan.open_trials))
    what = "async" if spec.search.schedule == "async" and not observed.repeats else f"round {plan.round}"
    return b.finish(
        Phase.SEARCHING,
        "TrialsRunning",
        f"{what}: {counted(len(plan.open_trials), 'trial')} in flight, {b.status.trials.progress} finished",
    )


def _trial_args(tid: str, repeats: Mapping[str, str]) -> tuple[str, ...]:
    repeat = schedule.repeat_number(tid, repeats)
    return ("--trial", tid, *(("--repeat", str(repeat)) if repeat else ()))


def _propose(b: _Builder, proposal: schedule.Proposal, running: int) -> Decision:
    """Start a proposal, with the trials of `warmStartFrom` once those searches have finished."""
    waiting = b.observed.warm_start_waiting
    if waiting:
        return b.finish(Phase.SEARCHING, "WaitingForWarmStart", f"waiting for MixtureSearch {waiting!r} to finish")
    imported = ("--warm-start", ",".join(b.observed.warm_start)) if b.observed.warm_start else ()
    pending = ("--pending", ",".join(proposal.pending)) if proposal.pending else ()
    repeat_of = ("--repeat-of", ",".join(proposal.repeat_of)) if proposal.repeat_of else ()
    trials = ",".join(proposal.trials)
    # A proposal already under way keeps the trials it was made for, though more slots may have freed since.
    under_way = proposal.step_key in b.observed.jobs
    b.ensure(proposal.step_key, "--round", str(proposal.index), "--trials", trials, *pending, *repeat_of, *imported)
    n = len(proposal.trials)
    while_running = f"while {counted_subject(running, 'trial', 'runs', 'run')}"
    if proposal.repeat_of:
        message = f"repeating the best {counted(n, 'trial')} ({', '.join(proposal.repeat_of)}) with new seeds"
    elif b.search.spec.search.schedule == "async" and under_way:
        message = f"async: proposal {proposal.index} under way {while_running}"
    elif b.search.spec.search.schedule == "async" and proposal.index > 0:
        message = f"async: proposing for {counted(n, 'freed slot')} {while_running}"
    else:
        message = f"proposing round {proposal.index}"
    return b.finish(Phase.SEARCHING, "Proposing", message)


def _reopen_outputs(b: _Builder) -> None:
    """Trials remain (maxTrials was raised): the final training and report made without them run again."""
    b.actions += [ResetStep(key) for key in ("final", "report") if key in b.observed.done or key in b.observed.jobs]


def _ensure_cells(b: _Builder) -> str:
    """Start the cells step (with the centroids of `conceptCentroidsFrom` once they exist); what it does."""
    source = b.search.spec.search.concept_centroids_from
    if source is None:
        b.ensure("cells")
        return "concept cells"
    if b.observed.concept_source is None:
        return f"concept cells (waiting for the concepts of MixtureSearch {source!r})"
    b.ensure("cells", "--centroids-from", b.observed.concept_source)
    return f"concept cells (concepts of MixtureSearch {source!r})"


def _final_model(spec: MixtureSearchSpec, observed: Observed) -> str | None:
    """The target model the final training saved; a user's trainer keeps its model where it likes."""
    if "final" not in observed.done or trainer_contract.trainer_for(spec, "final") is not None:
        return None
    return f"{observed.root_uri}/{layout.final_model(spec.models.target.backend)}"


def _summarise(b: _Builder, failed: Mapping[str, str], stopped: Mapping[str, str]) -> None:
    """Trial counts, best trial, MaD-Mix and final weights, unschedulable jobs: all from observations."""
    spec, observed, status = b.search.spec, b.observed, b.status
    ended = observed.done | set(stopped)
    trial_jobs = {k: j for k, j in observed.jobs.items() if k.startswith("trial/") and k not in ended}
    n_failed = sum(k.startswith("trial/") for k in failed)
    n_done = len(observed.trials)
    total = spec.budget.max_trials if searches(spec) else 0
    status.trials = TrialCounts(
        total=total,
        succeeded=n_done,
        failed=n_failed,
        stopped=len(stopped),
        running=sum(j.phase == "Running" for j in trial_jobs.values()),
        pending=sum(j.phase == "Pending" for j in trial_jobs.values()),
        progress=f"{n_done + n_failed + len(stopped)}/{total + (spec.search.repeat_top if total else 0)}",
        failed_ids=sorted(k.removeprefix("trial/") for k in failed if k.startswith("trial/")),
        stopped_ids=sorted(k.removeprefix("trial/") for k in stopped),
    )
    status.objective = objective.label(spec.objective)
    if observed.trials:
        # The best score; among equals, the first trial.
        tid, best = max(
            observed.trials.items(),
            key=lambda item: (objective.score(item[1].objective, spec.objective), -int(item[0])),
        )
        status.best_trial = BestTrial(id=tid, objective=best.objective, weights=dict(best.weights))
    if observed.madmix_weights is not None:
        status.madmix_weights = dict(observed.madmix_weights)
    if observed.final is not None:
        status.final_weights = dict(observed.final.weights)
        status.final_objective = observed.final.objective
    status.artifacts = ArtifactRefs(
        root=observed.root_uri or None,
        report=f"{observed.root_uri}/{layout.REPORT}" if "report" in observed.done else None,
        model=_final_model(spec, observed),
    )
    status.comparison = list(observed.comparison)
    status.surrogate = observed.surrogate
    stuck = sorted((k, j.message) for k, j in observed.jobs.items() if j.unschedulable and k not in observed.done)
    if stuck:
        b.condition("Degraded", True, "Unschedulable", f"job {stuck[0][0]} cannot be scheduled: {stuck[0][1]}")
    elif n_failed:
        b.condition("Degraded", True, "TrialsFailed", f"{counted(n_failed, 'trial')} failed")
    elif observed.surrogate is not None and not observed.surrogate.reliable:
        b.condition("Degraded", True, "SurrogateUnreliable", _unreliable(observed.surrogate))
    else:
        b.condition("Degraded", False, "AsExpected")
    if observed.surrogate is not None:
        reliable = observed.surrogate.reliable
        b.condition(
            "SurrogateUnreliable",
            not reliable,
            "AsExpected" if reliable else "LowLeaveOneOutSpearman",
            "" if reliable else _unreliable(observed.surrogate),
        )


def _unreliable(fit: SurrogateFit) -> str:
    return (
        f"leave-one-out Spearman {fit.loo_spearman:.2f} < {UNRELIABLE_LOO_SPEARMAN} (R² {fit.loo_r2:.2f}): the "
        "trials do not explain the objective; run more trials"
    )
