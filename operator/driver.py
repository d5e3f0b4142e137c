"""One step of a search, the same on a cluster and on a laptop: check its inputs, observe (executor and store),
`reconcile`, act. The kopf controller and `mixtura run` both drive searches through `SearchDriver`; they
differ only in their `Executor` (Jobs or subprocesses) and `Inputs` (the API server or a manifest file).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from mixtura_operator import layout
from mixtura_operator.api.cross_object import local_uri_problems
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch
from mixtura_operator.observe import (
    StoreObserver,
    check_domain_data,
    check_prior_runs,
    concept_source,
    warm_start_sources,
)
from mixtura_operator.reconcile import (
    CancelJob,
    CreateJob,
    Decision,
    JobState,
    Observed,
    RecordFailure,
    ResetStep,
    StopTrial,
    WriteSnapshot,
    reconcile,
)
from mixtura_operator.store import ArtifactStore, open_store


class Executor(Protocol):
    """Runs a search's step jobs."""

    def create(self, search: MixtureSearch, job: CreateJob, search_uri: str) -> bool:
        """Start the job; False when it already exists (it is never started twice)."""

    def observe(self, search: MixtureSearch) -> dict[str, JobState]:
        """The search's jobs by step key."""

    def cancel(self, search: MixtureSearch, step_key: str) -> None:
        """Stop the job and forget it; nothing when it does not exist."""

    def launcher_problem(self, search: MixtureSearch) -> str | None:
        """Why the final training cannot be launched as spec.finalTraining.launcher asks (None: it can)."""


class Inputs(Protocol):
    """Where the resources a search names come from: the API server, or the manifest file."""

    def domainset(self, search: MixtureSearch) -> DomainSet | None:
        """The DomainSet of `spec.domainSetRef`, or None while it does not exist."""

    def concept_store(
        self, search: MixtureSearch, name: str, credentials: Mapping[str, str] | None = None
    ) -> tuple[ArtifactStore | None, bool]:
        """The store of the search `name` (None before it has one), read with `credentials`, and whether that
        search has finished."""

    def credentials(self, search: MixtureSearch) -> Mapping[str, str] | None:
        """The S3 keys of `spec.artifacts.credentialsSecret` (None: the environment's); raises when the Secret
        cannot be read."""


def search_store(search: MixtureSearch, credentials: Mapping[str, str] | None = None) -> ArtifactStore:
    meta, artifacts = search.metadata, search.spec.artifacts
    root = layout.search_root(meta.namespace, meta.name, meta.uid)
    return open_store(artifacts.uri, artifacts.endpoint_url, credentials).child(root)


def snapshot(search: MixtureSearch, domainset: DomainSet) -> dict:
    return {
        "search": search.model_copy(update={"status": None}).wire(),
        "domainSet": domainset.model_copy(update={"status": None}).wire(),
    }


class StoreFault(RuntimeError):
    """A write to the search's artifact store failed."""


@contextmanager
def _writing(store: ArtifactStore, key: str) -> Iterator[None]:
    try:
        yield
    except Exception as error:
        raise StoreFault(f"cannot write {key} at {store.uri}: {type(error).__name__}: {error}") from error


@dataclass(frozen=True)
class Step:
    decision: Decision
    created: tuple[CreateJob, ...]
    store_error: bool = False


class SearchDriver:
    """Drives any number of searches; what it learns of one (its store, data checks) is kept by uid."""

    def __init__(self, executor: Executor, inputs: Inputs, allow_local_uris: bool = True) -> None:
        """`allow_local_uris`: False on a cluster, where file:// names the operator's or a node's own files."""
        self.executor = executor
        self.inputs = inputs
        self.allow_local_uris = allow_local_uris
        self._observers: dict[str, StoreObserver] = {}
        self._found: dict[str, dict] = {}

    def step(self, search: MixtureSearch, now: datetime | None = None) -> Step:
        uid = search.metadata.uid
        now = now or datetime.now(UTC)
        refused = () if self.allow_local_uris else tuple(local_uri_problems(search, None))
        if refused:
            # Fail before the store is opened: it would be the operator's own filesystem.
            return Step(reconcile(search, self.inputs.domainset(search), Observed(refused=refused), now), ())
        jobs = self.executor.observe(search)
        domainset = None
        observer = None
        try:
            # The search's own Secret reads its artifacts and data, as its Jobs will; a store error forgets both.
            observer = self._observer(search)
            warm_start = warm_start_sources(
                {
                    name: self.inputs.concept_store(search, name, observer.credentials)
                    for name in search.spec.search.warm_start_from
                }
            )
            observed = observer.observe(jobs, concepts=self._concept_source(search, observer), warm_start=warm_start)
            # Once the snapshot exists the search runs on it: later DomainSet edits are for new searches.
            domainset = observer.frozen_domainset()
        except Exception as error:
            # The store could not be read: the search waits, Degraded, and a fresh observer lists it again.
            self._observers.pop(uid, None)
            where = observer.store.uri if observer else search.spec.artifacts.uri
            observed = Observed(store_error=f"cannot read the artifacts at {where}: {type(error).__name__}: {error}")
        if observed.store_error is None and not observed.snapshot:
            domainset = self.inputs.domainset(search)
            observed = replace(observed, **self._check_data(search, domainset, observer))
        if observed.store_error is None:
            observed = replace(observed, launcher_problem=self.executor.launcher_problem(search))
        decision = reconcile(search, domainset, observed, now)
        if observer is None:
            return Step(decision, (), True)
        try:
            created = self._act(search, decision, observer, domainset)
        except StoreFault as fault:
            # A write failed: the same hold as a failed read (what was written stays; the next step sees it).
            self._observers.pop(uid, None)
            decision = reconcile(search, domainset, Observed(store_error=str(fault)), now)
            return Step(decision, (), True)
        return Step(decision, created, observed.store_error is not None)

    def _observer(self, search: MixtureSearch) -> StoreObserver:
        uid = search.metadata.uid
        if uid not in self._observers:
            credentials = self.inputs.credentials(search)
            store = search_store(search, credentials)
            progress = search.spec.search.early_stopping is not None
            self._observers[uid] = StoreObserver(store, search.spec.objective, progress, credentials)
        return self._observers[uid]

    def _act(
        self, search: MixtureSearch, decision: Decision, observer: StoreObserver, domainset: DomainSet | None
    ) -> tuple[CreateJob, ...]:
        store = observer.store
        created = []
        for action in decision.actions:
            key = getattr(action, "step_key", "")
            if isinstance(action, CreateJob):
                if self.executor.create(search, action, store.uri):
                    created.append(action)
                    with _writing(store, layout.started_marker(key)):
                        store.put_bytes(layout.started_marker(key), b"")
                    observer.note_started(key)
            elif isinstance(action, CancelJob):
                self.executor.cancel(search, key)
            elif isinstance(action, ResetStep):
                self.executor.cancel(search, key)
                for stale in layout.reset_keys(key):
                    with _writing(store, stale):
                        store.delete(stale)
                observer.forget_step(key)
            elif isinstance(action, WriteSnapshot) and domainset is not None:
                with _writing(store, layout.SNAPSHOT):
                    store.put_json(layout.SNAPSHOT, snapshot(search, domainset))
                observer.snapshot = True
            elif isinstance(action, StopTrial):
                # The marker first: a job that ends while it is cancelled is then no failure.
                with _writing(store, layout.stopped_marker(key)):
                    store.put_bytes(layout.stopped_marker(key), action.message.encode())
                observer.note_stopped(key, action.message)
                self.executor.cancel(search, key)
            elif isinstance(action, RecordFailure):
                with _writing(store, layout.failure_marker(key)):
                    store.put_bytes(layout.failure_marker(key), action.message.encode())
                observer.note_failed(key, action.message)
        return tuple(created)

    def _check_data(self, search: MixtureSearch, domainset: DomainSet | None, observer: StoreObserver) -> dict:
        """Before the snapshot: the live DomainSet's data and the priorRuns CSV, read with the search's
        credentials. What is found (absent data, a CSV that can never be imported, or all well) stays found for
        the search; what is unreadable is read again at the next step, with the Secret read again (it may have
        been fixed)."""
        uid = search.metadata.uid
        if domainset is None:
            return {}
        if uid in self._found:
            return self._found[uid]
        endpoint = search.spec.artifacts.endpoint_url
        absent, unreadable = check_domain_data(domainset, endpoint, self.allow_local_uris, observer.credentials)
        problem, prior_unreadable = None, None
        if search.spec.search.prior_runs is not None:
            names = [d.name for d in domainset.spec.domains]
            problem, prior_unreadable = check_prior_runs(
                search.spec.search.prior_runs, names, endpoint, observer.credentials
            )
        found = {"domain_problems": absent, "prior_runs_problem": problem}
        if unreadable or prior_unreadable:
            self._observers.pop(uid, None)
            return {**found, "data_unreadable": unreadable, "prior_runs_unreadable": prior_unreadable}
        self._found[uid] = found
        return found

    def _concept_source(self, search: MixtureSearch, observer: StoreObserver) -> tuple[str | None, str | None]:
        name = search.spec.search.concept_centroids_from
        if name is None:
            return None, None
        store, finished = self.inputs.concept_store(search, name, observer.credentials)
        return concept_source(store, finished, name)

    def forget(self, uid: str) -> None:
        self._observers.pop(uid, None)
        self._found.pop(uid, None)
