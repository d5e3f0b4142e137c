"""`mixtura run`: the search driver with the local executor, the manifest's resources and its artifact store."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch, MixtureSearchStatus, Phase
from mixtura_operator.driver import SearchDriver, search_store
from mixtura_operator.executors.local import LocalExecutor
from mixtura_operator.reconcile import Decision, Event
from mixtura_operator.store import ArtifactStore

STATUS = "status.json"


def local_uid(search: MixtureSearch, domainset: DomainSet) -> str:
    """Stable across reruns of the same manifests (so a rerun resumes), new when the spec changes."""
    canonical = json.dumps([search.spec.wire(), domainset.spec.wire()], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _with_local_uid(search: MixtureSearch, domainset: DomainSet) -> MixtureSearch:
    search = search.model_copy(deep=True)
    search.metadata.uid = local_uid(search, domainset)
    search.metadata.generation = search.metadata.generation or 1
    return search


def local_store(search: MixtureSearch, domainset: DomainSet) -> ArtifactStore:
    """The store of a local run of `search` (where its artifacts are, or will be)."""
    return search_store(_with_local_uid(search, domainset))


def local_status(search: MixtureSearch, domainset: DomainSet) -> MixtureSearchStatus | None:
    """The status a local run left in the store, or None before the first run."""
    store = local_store(search, domainset)
    return MixtureSearchStatus.model_validate(store.get_json(STATUS)) if store.exists(STATUS) else None


@dataclass(frozen=True)
class ManifestInputs:
    """The resources a local search names, from its manifest file; the search named by conceptCentroidsFrom
    has run before this one, or it never will."""

    domain_set: DomainSet
    concepts_from: tuple[MixtureSearch, DomainSet] | None = None

    def domainset(self, search: MixtureSearch) -> DomainSet:
        return self.domain_set

    def concept_store(
        self, search: MixtureSearch, name: str, credentials: None = None
    ) -> tuple[ArtifactStore | None, bool]:
        if self.concepts_from is None or self.concepts_from[0].metadata.name != name:
            return None, True
        return search_store(_with_local_uid(*self.concepts_from)), True

    def credentials(self, search: MixtureSearch) -> None:
        """A local run and its subprocesses read with the environment's credentials."""
        return None


def run_local(
    search: MixtureSearch,
    domainset: DomainSet,
    *,
    workers: int | None = None,
    on_decision: Callable[[Decision], None] = lambda d: None,
    poll_seconds: float = 0.5,
    concepts_from: tuple[MixtureSearch, DomainSet] | None = None,
) -> MixtureSearchStatus:
    """Run one search to the end; rerunning after an interruption resumes from the store.

    `concepts_from`: the search (and its DomainSet) named by spec.search.conceptCentroidsFrom.
    """
    spec = search.spec
    search = _with_local_uid(search, domainset)
    uid = search.metadata.uid
    store = search_store(search)
    search.status = local_status(search, domainset)
    parallel = min(spec.budget.parallel_trials, workers or os.cpu_count() or 1)
    env = {"MIXTURA_S3_ENDPOINT": spec.artifacts.endpoint_url} if spec.artifacts.endpoint_url else {}
    log_dir = Path(os.environ.get("MIXTURA_LOG_DIR", ".mixtura/logs")) / search.metadata.name / uid
    executor = LocalExecutor(log_dir, parallel, spec.resources.backoff_limit, env)
    driver = SearchDriver(executor, ManifestInputs(domainset, concepts_from))
    _forget_jobs_of_earlier_runs(store)
    with _interrupt_requests() as interrupted:
        try:
            while not interrupted.is_set():
                decision = driver.step(search).decision
                search.status = decision.status
                store.put_json(STATUS, decision.status.wire())
                on_decision(decision)
                if decision.status.phase in (Phase.SUCCEEDED, Phase.FAILED):
                    return decision.status
                if decision.retry_after is not None:
                    executor.wait(decision.retry_after, interrupted)
                elif not decision.actions:
                    executor.wait(poll_seconds, interrupted)
            raise KeyboardInterrupt
        finally:
            executor.shutdown()


def _forget_jobs_of_earlier_runs(store: ArtifactStore) -> None:
    """An earlier run's subprocesses ended with it: their steps run again rather than count as vanished jobs."""
    for key in store.list():
        if key.endswith("/_STARTED"):
            store.delete(key)


@contextmanager
def _interrupt_requests() -> Iterator[threading.Event]:
    """Ctrl-C sets an event that the run loop checks between steps. A KeyboardInterrupt raised wherever the
    main thread happens to be is lost when that is a finalizer (a finished job's Popen.__del__): Python
    prints "Exception ignored" and carries on. The kill/resume test saw searches run to their end after a
    Ctrl-C, now and then, when the main thread raised it."""
    requested = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: requested.set())
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


def describe(event: Event) -> str:
    return f"[{event.type}] {event.reason}: {event.message}"
