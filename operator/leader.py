"""Leader election on a coordination.k8s.io Lease, so that two replicas never both act.

Needs only get, create and update on Leases in the operator's namespace. The leader renews every
`duration / 3`. A leader that finds the lease taken exits at once; one that cannot reach the API server (a
restart) keeps trying until two thirds of the lease duration have passed since its last renewal, then exits
(its replacement takes over when the lease expires), as controller-runtime's renew deadline does.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime, timedelta

from kubernetes import client

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    def __init__(self, api: client.ApiClient, namespace: str, name: str, identity: str, duration: int = 15) -> None:
        self.api = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity, self.duration = namespace, name, identity, duration

    def _try(self) -> bool:
        now = _now()
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except client.ApiException as error:
            if error.status != 404:
                raise
            spec = client.V1LeaseSpec(
                holder_identity=self.identity, lease_duration_seconds=self.duration, renew_time=now, acquire_time=now
            )
            body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name), spec=spec)
            try:
                self.api.create_namespaced_lease(self.namespace, body)
            except client.ApiException as conflict:
                if conflict.status == 409:
                    return False
                raise
            return True
        held = lease.spec
        expired = held.renew_time is None or held.renew_time + timedelta(seconds=held.lease_duration_seconds or 0) < now
        if held.holder_identity not in (self.identity, None) and not expired:
            return False
        if held.holder_identity != self.identity:
            held.acquire_time = now
            held.lease_transitions = (held.lease_transitions or 0) + 1
        held.holder_identity, held.renew_time, held.lease_duration_seconds = self.identity, now, self.duration
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except client.ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def acquire(self) -> None:
        """Block until this process leads, then keep renewing in the background."""
        while not self._try():
            log.info("waiting for the leader lease %s/%s", self.namespace, self.name)
            time.sleep(self.duration / 3)
        log.info("leading as %s", self.identity)
        threading.Thread(target=self._renew, name="leader-renew", daemon=True).start()

    def _renew(self) -> None:
        renewed, pause = time.monotonic(), self.duration / 3
        while True:
            time.sleep(pause)
            try:
                held = self._try()
            except Exception as error:
                log.warning("renewing the leader lease failed: %s", error)
                if time.monotonic() - renewed < self.duration * 2 / 3:
                    pause = 1.0
                    continue
                held = False
            if not held:
                log.error("lost the leader lease; exiting so that the new leader acts alone")
                os._exit(1)
            renewed, pause = time.monotonic(), self.duration / 3
