"""`mixtura run`: the reconcile loop with the local executor and the manifest's artifact store."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from mixtura_operator import layout
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch, MixtureSearchStatus, Phase
from mixtura_operator.executors.local import LocalExecutor
from mixtura_operator.observe import StoreObserver, concept_source, domain_data_problems
from mixtura_operator.reconcile import CreateJob, Decision, Event, RecordFailure, WriteSnapshot, reconcile
from mixtura_operator.store import ArtifactStore, open_store

STATUS = "status.json"


def local_uid(search: MixtureSearch, domainset: DomainSet) -> str:
    """Stable across reruns of the same manifests (so a rerun resumes), new when the spec changes."""
    canonical = json.dumps([search.spec.wire(), domainset.spec.wire()], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def snapshot(search: MixtureSearch, domainset: DomainSet) -> dict:
    return {
        "search": search.model_copy(update={"status": None}).wire(),
        "domainSet": domainset.model_copy(update={"status": None}).wire(),
    }


def apply_record(store: ArtifactStore, search: MixtureSearch, domainset: DomainSet, action) -> None:
    """Carry out the actions that touch only the store (shared with the operator)."""
    if isinstance(action, WriteSnapshot):
        store.put_json(layout.SNAPSHOT, snapshot(search, domainset))
    elif isinstance(action, RecordFailure):
        store.put_bytes(layout.failure_marker(action.step_key), action.message.encode())


def _search_store(search: MixtureSearch, uid: str) -> ArtifactStore:
    root = layout.search_root(search.metadata.namespace, search.metadata.name, uid)
    return open_store(search.spec.artifacts.uri, search.spec.artifacts.endpoint_url).child(root)


def local_status(search: MixtureSearch, domainset: DomainSet) -> MixtureSearchStatus | None:
    """The status a local run left in the store, or None before the first run."""
    store = _search_store(search, local_uid(search, domainset))
    return MixtureSearchStatus.model_validate(store.get_json(STATUS)) if store.exists(STATUS) else None


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

    `concepts_from`: the search (and its DomainSet) named by spec.search.conceptCentroidsFrom; locally it
    has run before this one, or it never will.
    """
    spec = search.spec
    uid = local_uid(search, domainset)
    search = search.model_copy(deep=True)
    search.metadata.uid = uid
    search.metadata.generation = search.metadata.generation or 1
    store = _search_store(search, uid)
    search.status = local_status(search, domainset)
    parallel = min(spec.budget.parallel_trials, workers or os.cpu_count() or 1)
    env = {"MIXTURA_S3_ENDPOINT": spec.artifacts.endpoint_url} if spec.artifacts.endpoint_url else {}
    log_dir = Path(os.environ.get("MIXTURA_LOG_DIR", ".mixtura/logs")) / search.metadata.name / uid
    executor = LocalExecutor(store.uri, log_dir, parallel, spec.resources.backoff_limit, env)
    observer = StoreObserver(store)
    problems = domain_data_problems(domainset, spec.artifacts.endpoint_url)
    concepts = (None, None)
    if concepts_from is not None:
        source, source_domainset = concepts_from
        source_store = _search_store(source, local_uid(source, source_domainset))
        concepts = concept_source(source_store, True, source.metadata.name)
    with _interrupt_requests() as interrupted:
        try:
            while not interrupted.is_set():
                observed = observer.observe(executor.observe(), problems, concepts)
                decision = reconcile(search, domainset, observed, datetime.now(UTC))
                for action in decision.actions:
                    if isinstance(action, CreateJob):
                        executor.create(action)
                    else:
                        apply_record(store, search, domainset, action)
                search.status = decision.status
                store.put_json(STATUS, decision.status.wire())
                on_decision(decision)
                if decision.status.phase in (Phase.SUCCEEDED, Phase.FAILED):
                    return decision.status
                if not decision.actions:
                    executor.wait(poll_seconds, interrupted)
            raise KeyboardInterrupt
        finally:
            executor.shutdown()


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
