"""One step of a search, the same on a cluster and on a laptop: check its inputs, observe (executor and store),
`reconcile`, act. The kopf controller and `mixtura run` both drive searches through `SearchDriver`; they
differ only in their `Executor` (Jobs or subprocesses) and `Inputs` (the API server or a manifest file).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from mixtura_operator import layout
from mixtura_operator.api.cross_object import local_uri_problems
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch
from mixtura_operator.observe import StoreObserver, concept_source, domain_data_problems
from mixtura_operator.reconcile import (
    CancelJob,
    CreateJob,
    Decision,
    JobState,
    Observed,
    RecordFailure,
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


class Inputs(Protocol):
    """Where the resources a search names come from: the API server, or the manifest file."""

    def domainset(self, search: MixtureSearch) -> DomainSet | None:
        """The DomainSet of `spec.domainSetRef`, or None while it does not exist."""

    def concept_store(self, search: MixtureSearch, name: str) -> tuple[ArtifactStore | None, bool]:
        """The store of the search `name` (None before it has one) and whether that search has finished."""


class StoreError(RuntimeError):
    """The search's artifact store could not be read."""


def search_store(search: MixtureSearch) -> ArtifactStore:
    meta, artifacts = search.metadata, search.spec.artifacts
    root = layout.search_root(meta.namespace, meta.name, meta.uid)
    return open_store(artifacts.uri, artifacts.endpoint_url).child(root)


def snapshot(search: MixtureSearch, domainset: DomainSet) -> dict:
    return {
        "search": search.model_copy(update={"status": None}).wire(),
        "domainSet": domainset.model_copy(update={"status": None}).wire(),
    }


@dataclass(frozen=True)
class Step:
    decision: Decision
    created: tuple[CreateJob, ...]


class SearchDriver:
    """Drives any number of searches; what it learns of one (finished trials, data checks) is kept by uid."""

    def __init__(self, executor: Executor, inputs: Inputs, allow_local_uris: bool = True) -> None:
        """`allow_local_uris`: False on a cluster, where file:// names the operator's or a node's own files."""
        self.executor = executor
        self.inputs = inputs
        self.allow_local_uris = allow_local_uris
        self._observers: dict[str, StoreObserver] = {}
        self._problems: dict[str, dict[str, str]] = {}

    def step(self, search: MixtureSearch, now: datetime | None = None) -> Step:
        uid = search.metadata.uid
        now = now or datetime.now(UTC)
        domainset = self.inputs.domainset(search)
        refused = () if self.allow_local_uris else tuple(local_uri_problems(search, None))
        if refused:
            # Fail before the store is opened: it would be the operator's own filesystem.
            return Step(reconcile(search, domainset, Observed(refused=refused), now), ())
        if domainset is not None and uid not in self._problems:
            self._problems[uid] = domain_data_problems(
                domainset, search.spec.artifacts.endpoint_url, self.allow_local_uris
            )
        store = search_store(search)
        jobs = self.executor.observe(search)
        observer = self._observers.setdefault(uid, StoreObserver(store, search.spec.objective))
        try:
            observed = observer.observe(jobs, self._problems.get(uid, {}), self._concept_source(search))
        except Exception as error:
            raise StoreError(f"cannot read the artifacts of {search.metadata.name} at {store.uri}: {error}") from error
        decision = reconcile(search, domainset, observed, now)
        created = []
        for action in decision.actions:
            if isinstance(action, CreateJob):
                if self.executor.create(search, action, store.uri):
                    created.append(action)
            elif isinstance(action, CancelJob):
                self.executor.cancel(search, action.step_key)
            elif isinstance(action, WriteSnapshot) and domainset is not None:
                store.put_json(layout.SNAPSHOT, snapshot(search, domainset))
            elif isinstance(action, RecordFailure):
                store.put_bytes(layout.failure_marker(action.step_key), action.message.encode())
        return Step(decision, tuple(created))

    def _concept_source(self, search: MixtureSearch) -> tuple[str | None, str | None]:
        name = search.spec.search.concept_centroids_from
        if name is None:
            return None, None
        store, finished = self.inputs.concept_store(search, name)
        return concept_source(store, finished, name)

    def forget(self, uid: str) -> None:
        self._observers.pop(uid, None)
        self._problems.pop(uid, None)
