"""kopf handlers: each translates a Kubernetes event into a call of the controller, and nothing else."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from mixtura_operator.api import GROUP, VERSION
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.controller import TICK_S, SearchController, parse_search
from mixtura_operator.domain_index import count_domain
from mixtura_operator.domainsets import domainset_status
from mixtura_operator.executors.kubernetes import SEARCH_LABEL
from mixtura_operator.observe import check_domain_data
from mixtura_operator.reconcile import finished

SEARCHES = (GROUP, VERSION, "mixturesearches")
MANAGED_BY = "app.kubernetes.io/managed-by"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
# Threads running the sync handlers, so reconciles of that many searches at once.
WORKERS = 32
DOMAINSETS = (GROUP, VERSION, "domainsets")
controller: SearchController | None = None


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # The operator may not list CRDs (least privilege) and runs its own Lease-based leader election.
    settings.scanning.disabled = True
    settings.peering.standalone = True
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="mixtura.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="mixtura.dev", key="last-handled-configuration"
    )
    settings.posting.level = logging.ERROR
    settings.watching.server_timeout = 60
    # The API server filters the Job and pod watches: only Mixtura's reach the operator.
    settings.watching.label_selectors["batch", "jobs"] = f"{MANAGED_BY}=mixtura"
    settings.watching.label_selectors["v1", "pods"] = f"{MANAGED_BY}=mixtura"
    # Sync handlers run in this pool; many searches each reconciling on events need more than the default.
    settings.execution.max_workers = WORKERS


@kopf.on.resume(*SEARCHES)
@kopf.on.create(*SEARCHES)
def search_created(body: kopf.Body, **_: Any) -> None:
    controller.reconcile(dict(body))


def _unfinished(body: kopf.Body, **_: Any) -> bool:
    return not finished(parse_search(dict(body)))


# Job events drive progress; the timer catches what no Job event reports (a pod the scheduler refuses). Finished
# searches have no timer: they cost nothing until their spec changes (a raised maxTrials).
@kopf.timer(*SEARCHES, interval=TICK_S, sharp=False, when=_unfinished)
def search_tick(body: kopf.Body, **_: Any) -> None:
    controller.tick(dict(body))


def _finished(type: str, status: kopf.Status, **_: Any) -> bool:
    return type != "DELETED" and any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in status.get("conditions") or []
    )


def _deleted(type: str, **_: Any) -> bool:
    return type == "DELETED"


@kopf.on.event(*SEARCHES)
def search_seen(type: str, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Every search's newest body, for the Job events (a deleted search's is dropped: none of its Jobs acts)."""
    if type == "DELETED":
        controller.unseen(namespace, name)
    else:
        controller.seen(dict(body))


@kopf.on.update(*SEARCHES, field="spec")
def search_changed(body: kopf.Body, **_: Any) -> None:
    controller.reconcile(dict(body))


@kopf.on.event("batch", "v1", "jobs", when=_finished)
def job_changed(body: kopf.Body, **_: Any) -> None:
    controller.job_finished(dict(body))


@kopf.on.event("batch", "v1", "jobs", when=_deleted)
def job_deleted(body: kopf.Body, **_: Any) -> None:
    controller.job_deleted(dict(body))


def _succeeded_alone(type: str, status: kopf.Status, meta: kopf.Meta, **_: Any) -> bool:
    """A pod that succeeded, of a Job of one pod (an Indexed Job's pods carry their index), not being deleted."""
    annotations = meta.get("annotations") or {}
    return (
        type != "DELETED"
        and status.get("phase") == "Succeeded"
        and not meta.get("deletionTimestamp")
        and COMPLETION_INDEX not in annotations
    )


# A search acts on its step's pod succeeding, not on the job controller marking the Job Complete after it.
@kopf.on.event("v1", "pods", labels={SEARCH_LABEL: kopf.PRESENT}, when=_succeeded_alone)
def pod_succeeded(body: kopf.Body, **_: Any) -> None:
    controller.pod_succeeded(dict(body))


# In the event loop, not a worker thread: it only notes whether the scheduler refused the pod.
@kopf.on.event("v1", "pods", labels={SEARCH_LABEL: kopf.PRESENT})
async def pod_changed(type: str, body: kopf.Body, **_: Any) -> None:
    controller.pod_seen(dict(body), deleted=type == "DELETED")


@kopf.on.delete(*SEARCHES, field="spec.artifacts.policy", value="Delete")
def delete_artifacts(body: kopf.Body, **_: Any) -> None:
    controller.delete_artifacts(dict(body))


@kopf.on.delete(*SEARCHES, optional=True)
def search_deleted(namespace: str, name: str, uid: str, **_: Any) -> None:
    controller.forget(namespace, name, uid)


@kopf.on.resume(*DOMAINSETS)
@kopf.on.create(*DOMAINSETS)
@kopf.on.update(*DOMAINSETS, field="spec")
def domainset_changed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    domainset = DomainSet.model_validate({k: body[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    absent, unreadable = check_domain_data(domainset, allow_local=False)
    problems = {**absent, **unreadable}
    counts = {d.name: count_domain(d.uri) for d in domainset.spec.domains if d.name not in problems}
    status = domainset_status(domainset, problems, counts, datetime.now(UTC))
    patch.status.update(status.wire())
