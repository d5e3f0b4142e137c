"""Reads the store (and an executor's job states) into the `Observed` the state machine takes."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Mapping

from mixtura_operator import layout, trainer_contract
from mixtura_operator.api.cross_object import LOCAL_REFUSED, LOCAL_SCHEME
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import BaselineComparison, Objective, SurrogateFit
from mixtura_operator.api.prior_runs import PriorRuns
from mixtura_operator.domain_index import DomainLocation
from mixtura_operator.objective import objective_value
from mixtura_operator.reconcile import ACTIVE, JobState, Observed, TrialResult
from mixtura_operator.store import ArtifactNotFound, ArtifactStore, open_store


def check_domain_data(
    domainset: DomainSet,
    endpoint_url: str | None = None,
    allow_local: bool = True,
    credentials: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """(absent, unreadable) by domain name: data provably absent or empty (one listing of at most one key each;
    a URI naming its files lists their folder), and data that could not be read (network, permissions: it may
    come back). Without `allow_local` (on a cluster) a file:// URI is refused unread, as absent. `credentials`:
    those the search's Jobs will read with (its Secret); None for the environment's."""
    absent: dict[str, str] = {}
    unreadable: dict[str, str] = {}
    for domain in domainset.spec.domains:
        if not allow_local and domain.uri.startswith(LOCAL_SCHEME):
            absent[domain.name] = f"uri: {LOCAL_REFUSED}"
            continue
        location = DomainLocation.parse(domain.uri)
        lead = (location.pattern or "").split("{")[0]
        try:
            store = open_store(location.root, endpoint_url, credentials)
            found = any(key.startswith(lead) for key in store.list()) if lead else store.has_any()
        except Exception as error:
            unreadable[domain.name] = f"cannot read {domain.uri}: {type(error).__name__}: {error}"
            continue
        if not found:
            absent[domain.name] = f"no data at {domain.uri}"
    return absent, unreadable


def concept_source(store: ArtifactStore | None, finished: bool, name: str) -> tuple[str | None, str | None]:
    """(root URI, problem) of the search that `spec.search.conceptCentroidsFrom` names, from its store (None
    before it has one): its root once its cells exist; a problem once nothing more will come (`finished`)."""
    if store is not None and store.exists(layout.success_marker("cells")):
        return store.uri, None
    if finished:
        return None, f"MixtureSearch {name!r} has no concept centroids (its cells step never finished)"
    return None, None


def warm_start_sources(
    sources: dict[str, tuple[ArtifactStore | None, bool]],
) -> tuple[tuple[str, ...], str | None, str | None]:
    """(root URIs, the first search not finished yet, problem) of `spec.search.warmStartFrom`, from each named
    search's store and whether it has finished."""
    roots = []
    for name, (store, finished) in sources.items():
        if not finished:
            return (), name, None
        if store is None:
            return (), None, f"MixtureSearch {name!r} finished without artifacts"
        roots.append(store.uri)
    return tuple(roots), None, None


def check_prior_runs(
    prior: PriorRuns,
    domains: list[str],
    endpoint_url: str | None = None,
    credentials: Mapping[str, str] | None = None,
) -> tuple[str | None, str | None]:
    """(problem, unreadable) of spec.search.priorRuns. The problem, why it can never be imported: its weight
    columns must be exactly the domains (missing ones named) and, with the target, columns of the CSV (read with
    the search's `credentials`), which must exist. Unreadable: the CSV could not be read (network, permissions:
    it may come back)."""
    columns = prior.columns_for(domains)
    lacking = [name for name in domains if name not in columns]
    if lacking:
        return f"weightColumns has no column for the domains {', '.join(lacking)}", None
    strangers = [name for name in columns if name not in domains]
    if strangers:
        return f"weightColumns {', '.join(strangers)} name no domain of the DomainSet", None
    folder, _, name = prior.uri.rpartition("/")
    try:
        text = open_store(folder, endpoint_url, credentials).get_bytes(name).decode()
    except ArtifactNotFound:
        return f"no file at {prior.uri}", None
    except Exception as error:
        return None, f"cannot read {prior.uri}: {type(error).__name__}: {error}"
    header = next(csv.reader(io.StringIO(text, newline="")), [])
    found = f"its columns: {', '.join(header) or 'none'}"
    missing = [c for c in columns if c not in header]
    if missing:
        return f"{prior.uri} has no weight column for the domains {', '.join(missing)} ({found})", None
    if prior.target not in header:
        return f"{prior.uri} has no target column {prior.target} ({found})", None
    return None, None


def read_result(store: ArtifactStore, metrics_key: str, mixture_key: str, objective: Objective) -> TrialResult | str:
    """A finished run's objective value and weights, or why its metrics do not give the objective."""
    try:
        value = objective_value(store.get_json(metrics_key), objective)
    except ArtifactNotFound:
        return f"{metrics_key} is missing: a trainer writes its metrics before _SUCCESS"
    except ValueError as error:  # ObjectiveError, or metrics that are not JSON
        return f"{metrics_key}: {error}"
    return TrialResult(value, store.get_json(mixture_key)["weights"])


class StoreObserver:
    """Observes one search's artifacts. One listing when it starts (a restarted operator learns everything);
    after that one HEAD of the snapshot, and only the steps whose job ended or vanished are looked up; the driver
    notes what it writes.
    Finished results never change, so each is read once; a run that wrote `_SUCCESS` without a usable objective
    counts as failed. With `progress` (spec.search.earlyStopping) it also reads the running trials'
    progress.json at every observation, and each ended trial's once."""

    def __init__(
        self,
        store: ArtifactStore,
        objective: Objective,
        progress: bool = False,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        """`credentials`: what `store` was opened with (the search's Secret), for the search's other reads."""
        self.store = store
        self.objective = objective
        self.read_progress = progress
        self.credentials = credentials
        self.stopped: dict[str, str] = {}
        self._curves: dict[str, tuple[tuple[int, float], ...]] = {}
        self._final_curves: set[str] = set()
        self._listed = False
        self.snapshot = False
        self.done: set[str] = set()
        self.failed: dict[str, str] = {}
        self.started: set[str] = set()
        # Steps whose markers were read after their job ended: nothing more will come for them.
        self._judged: set[str] = set()
        self._trials: dict[str, TrialResult] = {}
        self._proposed: dict[int, tuple[str, ...]] = {}
        self._repeats: dict[str, str] = {}
        self._final: TrialResult | None = None
        self._madmix: Mapping[str, float] | None = None
        # What the report found that status carries (baseline comparisons, the surrogate's fit).
        self._summary: dict | None = None
        self._domainset: DomainSet | None = None

    def note_started(self, step_key: str) -> None:
        self.started.add(step_key)

    def note_failed(self, step_key: str, message: str) -> None:
        self.failed[step_key] = message

    def note_stopped(self, step_key: str, message: str) -> None:
        self.stopped[step_key] = message

    def forget_step(self, step_key: str) -> None:
        """The step's markers were deleted: it runs again."""
        self.done.discard(step_key)
        self.failed.pop(step_key, None)
        self.started.discard(step_key)
        self.stopped.pop(step_key, None)
        self._judged.discard(step_key)
        if step_key == "final":
            self._final = None
        if step_key == "report":
            self._summary = None

    def frozen_domainset(self) -> DomainSet | None:
        """The DomainSet of the snapshot (spec.json) once written: what every step of the search reads."""
        if self._domainset is None and self.snapshot:
            self._domainset = DomainSet.model_validate(self.store.get_json(layout.SNAPSHOT)["domainSet"])
        return self._domainset

    def _list(self) -> None:
        for key in self.store.list():
            self.snapshot |= key == layout.SNAPSHOT
            step_key = layout.step_key_of_marker(key)
            if step_key is None:
                continue
            marker = key.rpartition("/")[2]
            if marker == "_SUCCESS":
                self.done.add(step_key)
            elif marker == "_STARTED":
                self.started.add(step_key)
            elif marker == "_STOPPED":
                self.stopped[step_key] = self.store.get_bytes(key).decode(errors="replace")
            else:
                self.failed[step_key] = self.store.get_bytes(key).decode(errors="replace")
        self._listed = True

    def _judge(self, step_key: str) -> None:
        """Read the markers of a step whose job ended (or vanished)."""
        self._judged.add(step_key)
        if self.store.exists(layout.success_marker(step_key)):
            self.done.add(step_key)
            return
        with contextlib.suppress(ArtifactNotFound):
            self.failed[step_key] = self.store.get_bytes(layout.failure_marker(step_key)).decode(errors="replace")

    def _ended(self, jobs: Mapping[str, JobState]) -> list[str]:
        finished = {k for k, j in jobs.items() if j.phase not in ACTIVE}
        vanished = {k for k in self.started if k not in jobs}
        return sorted((finished | vanished) - self.done - self._judged)

    def observe(
        self,
        jobs: Mapping[str, JobState],
        domain_checks: tuple[Mapping[str, str], Mapping[str, str]] = ({}, {}),
        concepts: tuple[str | None, str | None] = (None, None),
        warm_start: tuple[tuple[str, ...], str | None, str | None] = ((), None, None),
    ) -> Observed:
        """`domain_checks`: what `check_domain_data` says; `concepts`: what `concept_source` says of the search's
        conceptCentroidsFrom; `warm_start`: what `warm_start_sources` says of its warmStartFrom."""
        if not self._listed:
            self._list()
        elif self.snapshot and not self.store.exists(layout.SNAPSHOT):
            # One HEAD a step: a store that is down (or was wiped) shows now, not at the next finished job.
            raise ArtifactNotFound(f"{layout.SNAPSHOT} is gone from {self.store.uri}")
        for step_key in self._ended(jobs):
            self._judge(step_key)
        for step_key in sorted(self.done):
            self._read_result(step_key)
        if self.read_progress:
            self._read_curves(jobs)
        summary = self._summary or {}
        return Observed(
            root_uri=self.store.uri,
            snapshot=self.snapshot,
            done=frozenset(self.done),
            failed=dict(self.failed),
            jobs=dict(jobs),
            started=frozenset(self.started),
            proposed=dict(self._proposed),
            repeats=dict(self._repeats),
            trials=dict(self._trials),
            madmix_weights=self._madmix,
            final=self._final,
            domain_problems=dict(domain_checks[0]),
            data_unreadable=dict(domain_checks[1]),
            concept_source=concepts[0],
            concept_source_problem=concepts[1],
            warm_start=warm_start[0],
            warm_start_waiting=warm_start[1],
            warm_start_problem=warm_start[2],
            stopped=dict(self.stopped),
            progress=dict(self._curves),
            comparison=tuple(BaselineComparison.model_validate(c) for c in summary.get("comparison", [])),
            surrogate=None if summary.get("surrogate") is None else SurrogateFit.model_validate(summary["surrogate"]),
        )

    def _read_curves(self, jobs: Mapping[str, JobState]) -> None:
        """The reports of the running trials (again each time) and of the ended ones (once: they are final)."""
        ended = {k for k in self.done | set(self.stopped) if k.startswith("trial/")}
        running = {k for k, j in jobs.items() if k.startswith("trial/") and j.phase == "Running"} - ended
        for step_key in sorted(running | (ended - self._final_curves)):
            tid = step_key.removeprefix("trial/")
            if step_key in ended:
                self._final_curves.add(step_key)
            try:
                curve = trainer_contract.progress_curve(self.store.get_json(layout.trial_progress(tid)))
            except (ArtifactNotFound, ValueError):  # none yet, or caught half-written: the next look sees it
                continue
            if curve:
                self._curves[tid] = curve

    def _read_result(self, step_key: str) -> None:
        step, _, arg = step_key.partition("/")
        if step == "trial" and arg not in self._trials:
            self._use_result(step_key, layout.trial_metrics(arg), layout.trial_mixture(arg))
        elif step == "propose" and int(arg) not in self._proposed:
            proposal = self.store.get_json(layout.proposal(int(arg)))
            self._proposed[int(arg)] = tuple(proposal["trials"])
            self._repeats.update(proposal.get("repeatOf", {}))
        elif step == "score" and self._madmix is None:
            self._madmix = self.store.get_json(layout.MADMIX)["weights"]
        elif step_key == "final" and self._final is None:
            self._use_result(step_key, layout.FINAL_METRICS, layout.FINAL_MIXTURE)
        elif step_key == "report" and self._summary is None:
            # A report written before summaries existed has none.
            has_summary = self.store.exists(layout.REPORT_SUMMARY)
            self._summary = self.store.get_json(layout.REPORT_SUMMARY) if has_summary else {}

    def _use_result(self, step_key: str, metrics_key: str, mixture_key: str) -> None:
        result = read_result(self.store, metrics_key, mixture_key, self.objective)
        if isinstance(result, str):
            self.done.discard(step_key)
            self._judged.add(step_key)
            self.failed[step_key] = result
        elif step_key == "final":
            self._final = result
        else:
            self._trials[step_key.removeprefix("trial/")] = result
