"""The operator's reconcile of one MixtureSearch: observe (Jobs, store) → `reconcile` → act, patch status.

Called by the kopf handlers on every relevant event and on a timer; serialised per search, so a Job
event and a timer tick never act on the same search at once.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from mixtura_operator import layout, metrics
from mixtura_operator.api import GROUP, VERSION
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch, Phase
from mixtura_operator.executors.kubernetes import KubernetesExecutor
from mixtura_operator.local_runner import apply_record
from mixtura_operator.observe import StoreObserver, concept_source, domain_data_problems
from mixtura_operator.reconcile import TERMINAL, CreateJob, Event, reconcile
from mixtura_operator.store import ArtifactStore, open_store

log = logging.getLogger(__name__)
PLURAL = "mixturesearches"


def parse_search(body: dict[str, Any]) -> MixtureSearch:
    return MixtureSearch.model_validate(
        {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec", "status") if k in body}
    )


class SearchController:
    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.executor = KubernetesExecutor(api)
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._dirty: set[str] = set()
        self._observers: dict[str, StoreObserver] = {}
        self._problems: dict[str, dict[str, str]] = {}
        self._timed_jobs: set[str] = set()
        self._phases: dict[tuple[str, str], Phase] = {}

    def store(self, search: MixtureSearch) -> ArtifactStore:
        meta, artifacts = search.metadata, search.spec.artifacts
        root = layout.search_root(meta.namespace, meta.name, meta.uid)
        return open_store(artifacts.uri, artifacts.endpoint_url).child(root)

    def _get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def reconcile_named(self, namespace: str, name: str) -> None:
        body = self._get(namespace, name)
        if body is not None:
            self.reconcile(body)

    def reconcile(self, body: dict[str, Any]) -> None:
        search = parse_search(body)
        if search.status is not None and search.status.phase in TERMINAL:
            self._record(search)
            return
        uid = search.metadata.uid
        lock = self._locks[uid]
        if not lock.acquire(blocking=False):
            # A reconcile of this search is running: it runs once more when done, so no worker waits here.
            self._dirty.add(uid)
            return
        try:
            while True:
                self._dirty.discard(uid)
                with metrics.RECONCILE.time():
                    try:
                        self._reconcile(search)
                    except Exception:
                        metrics.RECONCILE_ERRORS.inc()
                        raise
                if uid not in self._dirty:
                    return
                search = self._fresh(search)
                if search is None or (search.status is not None and search.status.phase in TERMINAL):
                    return
        finally:
            lock.release()

    def _fresh(self, search: MixtureSearch) -> MixtureSearch | None:
        body = self._get(search.metadata.namespace, search.metadata.name)
        return None if body is None else parse_search(body)

    def _reconcile(self, search: MixtureSearch) -> None:
        meta = search.metadata
        domainset = self._domainset(meta.namespace, search.spec.domain_set_ref.name)
        store = self.store(search)
        if meta.uid not in self._problems and domainset is not None:
            self._problems[meta.uid] = domain_data_problems(domainset, search.spec.artifacts.endpoint_url)
        jobs, job_objects = self.executor.observe(search)
        self._time_jobs(search, jobs, job_objects)
        observer = self._observers.setdefault(meta.uid, StoreObserver(store))
        try:
            observed = observer.observe(jobs, self._problems.get(meta.uid, {}), self._concept_source(search))
        except Exception:
            metrics.STORE_ERRORS.inc()
            raise
        decision = reconcile(search, domainset, observed, datetime.now(UTC))
        for action in decision.actions:
            if isinstance(action, CreateJob):
                if self.executor.create(search, action, store.uri) and action.step == "propose":
                    metrics.PROPOSALS.labels(meta.namespace, meta.name).inc()
            elif domainset is not None:
                apply_record(store, search, domainset, action)
        for event in decision.events:
            self.post_event(search, event)
        if search.status is None or decision.status.wire() != search.status.wire():
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, meta.namespace, PLURAL, meta.name, {"status": decision.status.wire()}
            )
        self._record(search.model_copy(update={"status": decision.status}))

    def _concept_source(self, search: MixtureSearch) -> tuple[str | None, str | None]:
        name = search.spec.search.concept_centroids_from
        body = None if name is None else self._get(search.metadata.namespace, name)
        if body is None:
            return None, None
        other = parse_search(body)
        status = other.status
        root = status.artifacts.root if status else None
        store = open_store(root, other.spec.artifacts.endpoint_url) if root else None
        return concept_source(store, status is not None and status.phase in TERMINAL, name)

    def _domainset(self, namespace: str, name: str) -> DomainSet | None:
        try:
            body = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "domainsets", name)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return DomainSet.model_validate({k: body[k] for k in ("apiVersion", "kind", "metadata", "spec")})

    def _time_jobs(self, search: MixtureSearch, jobs, job_objects: dict[str, client.V1Job]) -> None:
        """Job durations and GPU-hours, counted once per finished Job."""
        for key, state in jobs.items():
            job = job_objects[key]
            if state.phase not in ("Succeeded", "Failed") or job.metadata.uid in self._timed_jobs:
                continue
            self._timed_jobs.add(job.metadata.uid)
            end = job.status.completion_time or max(
                (c.last_transition_time for c in job.status.conditions or []), default=None
            )
            if job.status.start_time is None or end is None:
                continue
            seconds = max(0.0, (end - job.status.start_time).total_seconds())
            step = (job.metadata.labels or {}).get("mixtura.dev/step", "unknown")
            metrics.JOB_DURATION.labels(step).observe(seconds)
            limits = job.spec.template.spec.containers[0].resources.limits or {}
            gpus = int(limits.get("nvidia.com/gpu", 0))
            metrics.GPU_HOURS.labels(search.metadata.namespace, search.metadata.name).inc(gpus * seconds / 3600)

    def _record(self, search: MixtureSearch) -> None:
        if search.status is None:
            return
        metrics.record_status(search.metadata.namespace, search.metadata.name, search.status)
        self._phases[(search.metadata.namespace, search.metadata.name)] = search.status.phase
        metrics.record_phase_counts(list(self._phases.values()))

    def forget(self, namespace: str, name: str, uid: str) -> None:
        self._phases.pop((namespace, name), None)
        self._observers.pop(uid, None)
        self._problems.pop(uid, None)
        metrics.forget(namespace, name)
        metrics.record_phase_counts(list(self._phases.values()))

    def post_event(self, search: MixtureSearch, event: Event) -> None:
        meta = search.metadata
        now = datetime.now(UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{meta.name}.", namespace=meta.namespace),
            involved_object=client.V1ObjectReference(
                api_version=search.api_version, kind=search.kind, name=meta.name, namespace=meta.namespace, uid=meta.uid
            ),
            reason=event.reason,
            message=event.message[:1024],
            type=event.type,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component="mixtura-operator"),
        )
        try:
            self.core.create_namespaced_event(meta.namespace, body)
        except client.ApiException:
            log.exception("could not post event %s on %s/%s", event.reason, meta.namespace, meta.name)

    def delete_artifacts(self, body: dict[str, Any]) -> int:
        search = parse_search(body)
        removed = self.store(search).delete_prefix()
        log.info("deleted %d artifacts of %s/%s", removed, search.metadata.namespace, search.metadata.name)
        return removed
