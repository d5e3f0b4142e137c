"""The operator's reconcile of one MixtureSearch: the search driver with Jobs and the API server, then status.

Called by the kopf handlers on every relevant event and on a timer; serialised per search, so a Job
event and a timer tick never act on the same search at once.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from mixtura_operator import metrics
from mixtura_operator.api import GROUP, VERSION
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.manifests import CREDENTIAL_KEYS
from mixtura_operator.api.mixturesearch import MixtureSearch, Phase
from mixtura_operator.driver import SearchDriver, search_store
from mixtura_operator.executors.kubernetes import SEARCH_LABEL, KubernetesExecutor
from mixtura_operator.reconcile import TERMINAL, Event, finished
from mixtura_operator.store import ArtifactStore, open_store

log = logging.getLogger(__name__)
PLURAL = "mixturesearches"
# The timer's interval: what no event reports (a pod the scheduler refuses) shows within about this long.
TICK_S = 10.0


def parse_search(body: dict[str, Any]) -> MixtureSearch:
    return MixtureSearch.model_validate(
        {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec", "status") if k in body}
    )


class CredentialsUnavailable(RuntimeError):
    """The Secret of spec.artifacts.credentialsSecret could not be read, or lacks a key."""


class ApiInputs:
    """The resources a search names, read from the API server."""

    def __init__(self, custom: client.CustomObjectsApi, core: client.CoreV1Api) -> None:
        self.custom = custom
        self.core = core

    def get(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def domainset(self, search: MixtureSearch) -> DomainSet | None:
        body = self.get(search.metadata.namespace, "domainsets", search.spec.domain_set_ref.name)
        if body is None:
            return None
        return DomainSet.model_validate({k: body[k] for k in ("apiVersion", "kind", "metadata", "spec")})

    def credentials(self, search: MixtureSearch) -> Mapping[str, str] | None:
        name, namespace = search.spec.artifacts.credentials_secret, search.metadata.namespace
        if not name:
            return None
        where = f"MixtureSearch {namespace}/{search.metadata.name}: spec.artifacts.credentialsSecret: Secret {name!r}"
        try:
            data = self.core.read_namespaced_secret(name, namespace).data or {}
        except client.ApiException as error:
            # 403: the chart lets the operator read only the Secrets of admission.allowedCredentialSecrets.
            allowed = " (not in the chart value admission.allowedCredentialSecrets?)" if error.status == 403 else ""
            raise CredentialsUnavailable(f"{where}: {error.status} {error.reason}{allowed}") from None
        missing = [key for key in CREDENTIAL_KEYS if key not in data]
        if missing:
            raise CredentialsUnavailable(f"{where} lacks {', '.join(missing)}")
        return {key: base64.b64decode(data[key]).decode() for key in CREDENTIAL_KEYS}

    def concept_store(
        self, search: MixtureSearch, name: str, credentials: Mapping[str, str] | None = None
    ) -> tuple[ArtifactStore | None, bool]:
        body = self.get(search.metadata.namespace, PLURAL, name)
        if body is None:
            # Never created or deleted: it will have no centroids, as the local runner decides for a search
            # missing from the file (`kubectl apply` creates a file's objects in order, the source first).
            return None, True
        other = parse_search(body)
        status = other.status
        root = status.artifacts.root if status else None
        # Read with the naming search's credentials: its Jobs read that search's artifacts with them.
        store = open_store(root, other.spec.artifacts.endpoint_url, credentials) if root else None
        return store, status is not None and status.phase in TERMINAL


class SearchController:
    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.inputs = ApiInputs(self.custom, self.core)
        self.executor = KubernetesExecutor(api)
        self.driver = SearchDriver(self.executor, self.inputs, allow_local_uris=False)
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._dirty: set[str] = set()
        self._phases: dict[tuple[str, str], Phase] = {}
        # A search whose store or data could not be read is not reconciled again before this (monotonic) time.
        self._not_before: dict[str, float] = {}
        # When each search's latest reconcile ended (monotonic): a timer tick soon after one has nothing to catch.
        self._reconciled: dict[str, float] = {}
        # The newest body of each search known from the watch and from this operator's own status patches, so a
        # Job event needs no GET of its search.
        self._bodies: dict[tuple[str, str], dict[str, Any]] = {}

    def seen(self, body: dict[str, Any]) -> dict[str, Any]:
        """Keep `body` if it is newer than the one known; the newest."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        known = self._bodies.get(key)
        if known is None or int(body["metadata"]["resourceVersion"]) >= int(known["metadata"]["resourceVersion"]):
            self._bodies[key] = body
        return self._bodies[key]

    def unseen(self, namespace: str, name: str) -> None:
        self._bodies.pop((namespace, name), None)

    def tick(self, body: dict[str, Any]) -> None:
        """The timer: reconciles a search that no event has reconciled for half a tick (a held search always, as
        its retries come from ticks). Under load every search's Jobs keep it reconciled, and the ticks cost
        nothing."""
        uid = body["metadata"]["uid"]
        if uid in self._not_before or time.monotonic() - self._reconciled.get(uid, -TICK_S) >= TICK_S / 2:
            self.reconcile(body)

    def pod_succeeded(self, pod: dict[str, Any]) -> None:
        """A pod of one of a search's single-pod Jobs succeeded: its step is done."""
        meta = pod["metadata"]
        jobs = [o["uid"] for o in meta.get("ownerReferences") or [] if o.get("kind") == "Job"]
        if jobs and self.executor.pod_succeeded(jobs[0]):
            self.reconcile_named(meta["namespace"], meta["labels"][SEARCH_LABEL])

    def pod_seen(self, pod: dict[str, Any], deleted: bool) -> None:
        self.executor.pod_seen(pod, deleted)

    def job_finished(self, job: dict[str, Any]) -> None:
        meta = job["metadata"]
        if self.executor.job_finished(job):
            self.reconcile_named(meta["namespace"], meta["labels"][SEARCH_LABEL])

    def job_deleted(self, job: dict[str, Any]) -> None:
        """One of a search's Jobs is gone: the search judges it at once (a step whose Job vanished without a result)."""
        meta = job["metadata"]
        self.executor.job_deleted(meta["uid"])
        self.reconcile_named(meta["namespace"], meta["labels"][SEARCH_LABEL])

    def reconcile_named(self, namespace: str, name: str) -> None:
        body = self._bodies.get((namespace, name)) or self.inputs.get(namespace, PLURAL, name)
        if body is not None:
            self.reconcile(body)

    def reconcile(self, body: dict[str, Any]) -> None:
        search = parse_search(self.seen(body))
        if finished(search):
            self._record(search)
            return
        uid = search.metadata.uid
        if time.monotonic() < self._not_before.get(uid, 0.0):
            return
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
                if search is None or finished(search):
                    return
        finally:
            self._reconciled[uid] = time.monotonic()
            lock.release()

    def _fresh(self, search: MixtureSearch) -> MixtureSearch | None:
        body = self._bodies.get((search.metadata.namespace, search.metadata.name))
        return None if body is None else parse_search(body)

    def _reconcile(self, search: MixtureSearch) -> None:
        meta = search.metadata
        step = self.driver.step(search)
        decision = step.decision
        if decision.retry_after is None:
            self._not_before.pop(meta.uid, None)
        else:
            self._not_before[meta.uid] = time.monotonic() + decision.retry_after
        if step.store_error:
            metrics.STORE_ERRORS.inc()
        for job in step.created:
            if job.step == "propose":
                metrics.PROPOSALS.labels(meta.namespace, meta.name).inc()
        for event in decision.events:
            self.post_event(search, event)
        if search.status is None or decision.status.wire() != search.status.wire():
            patched = self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, meta.namespace, PLURAL, meta.name, {"status": decision.status.wire()}
            )
            self.seen(patched)
        self._record(search.model_copy(update={"status": decision.status}))

    def _record(self, search: MixtureSearch) -> None:
        if search.status is None:
            return
        metrics.record_status(search.metadata.namespace, search.metadata.name, search.status)
        self._phases[(search.metadata.namespace, search.metadata.name)] = search.status.phase
        metrics.record_phase_counts(list(self._phases.values()))

    def forget(self, namespace: str, name: str, uid: str) -> None:
        self._phases.pop((namespace, name), None)
        self.unseen(namespace, name)
        self._not_before.pop(uid, None)
        self._reconciled.pop(uid, None)
        self.driver.forget(uid)
        self.executor.forget(uid)
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
        removed = search_store(search, self.inputs.credentials(search)).delete_prefix()
        log.info("deleted %d artifacts of %s/%s", removed, search.metadata.namespace, search.metadata.name)
        return removed
