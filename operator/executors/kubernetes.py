"""Runs job steps as batch/v1 Jobs: deterministic names, owner references, GPUs, credentials by secretKeyRef,
pods that pass the PodSecurity `restricted` profile."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from mixtura_operator import layout, metrics
from mixtura_operator.api.mixturesearch import MixtureSearch
from mixtura_operator.executors.commands import Command, step_commands
from mixtura_operator.reconcile import CreateJob, JobState

STEP_KEY = "mixtura.dev/step-key"
DEFAULT_JOBS_IMAGE = "ghcr.io/mixtura/jobs:0.1.0"
# Read by the jobs (mixtura_jobs.training.device), which the operator knows only by their command line.
CPU_REQUEST_ENV = "MIXTURA_CPU_REQUEST"
MANAGED = {"app.kubernetes.io/managed-by": "mixtura", "app.kubernetes.io/part-of": "mixtura"}
# The jobs image's user (jobs/Dockerfile); fixed, so that runAsNonRoot holds whatever image a search names.
JOB_UID = 65532
# Finished Jobs go after an hour: each step's result is in the store (`_SUCCESS` is written before the pod
# exits, a failure the operator saw is recorded as `_FAILED`), so the Job is only its logs by then.
DEFAULT_TTL_SECONDS = 3600
# A Job whose pods have waited this long is asked whether the scheduler refused them (a younger one is not: most
# pods start within it), and a search's pods are listed at most this often: listing them at every reconcile of a
# busy search was one in seven of the operator's API requests.
UNSCHEDULABLE_AFTER_S = 5.0
# The root filesystem is read-only; these emptyDirs are the only writable paths, and every cache points there.
TMP, CACHE = "/tmp", "/var/cache/mixtura"
WRITABLE_ENV = {
    "HOME": TMP,
    "XDG_CACHE_HOME": CACHE,
    "MIXTURA_CACHE": CACHE,
    "HF_HOME": f"{CACHE}/huggingface",
    "TORCH_HOME": f"{CACHE}/torch",
    "MPLCONFIGDIR": f"{TMP}/matplotlib",
}
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": JOB_UID,
    "runAsGroup": JOB_UID,
    "fsGroup": JOB_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def labels(search: MixtureSearch, job: CreateJob | None = None) -> dict[str, str]:
    out = {**MANAGED, "app.kubernetes.io/name": "mixtura-job", "mixtura.dev/search": search.metadata.name}
    if job is not None:
        out["mixtura.dev/step"] = job.step
        if job.step_key.startswith("trial/"):
            out["mixtura.dev/trial"] = job.step_key.partition("/")[2]
    return out


def pod_failure_policy(container: str) -> dict[str, Any]:
    """A preempted or evicted pod (DisruptionTarget) is rerun without counting against backoffLimit; a step that
    exits for bad input fails its Job at once (no attempt would fare better)."""
    return {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": container, "operator": "In", "values": [layout.EXIT_BAD_INPUT]},
            },
        ]
    }


def job_manifest(search: MixtureSearch, job: CreateJob, search_uri: str) -> dict[str, Any]:
    spec, meta = search.spec, search.metadata
    resources = spec.resources
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in WRITABLE_ENV.items()]
    endpoint = spec.artifacts.endpoint_url or os.environ.get("MIXTURA_S3_ENDPOINT")
    if endpoint:
        env.append({"name": "MIXTURA_S3_ENDPOINT", "value": endpoint})
    if spec.artifacts.credentials_secret:
        env += [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": spec.artifacts.credentials_secret, "key": key}}}
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        ]
    requests = {"cpu": resources.cpu, "memory": resources.memory}
    jobs_image = resources.image or os.environ.get("MIXTURA_JOBS_IMAGE", DEFAULT_JOBS_IMAGE)

    def container(command: Command, gpus: int) -> dict[str, Any]:
        limits = {"memory": resources.memory, **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
        # The step sizes torch's thread pool by its CPU request (whole cores, rounded up by the Downward API).
        cpu = {"resource": "requests.cpu", "divisor": "1", "containerName": command.name}
        return {
            "name": command.name,
            "image": command.image or jobs_image,
            "command": command.argv,
            "env": [
                *({"name": k, "value": v} for k, v in command.env.items()),
                *env,
                {"name": CPU_REQUEST_ENV, "valueFrom": {"resourceFieldRef": cpu}},
            ],
            "resources": {"requests": requests, "limits": limits},
            "securityContext": CONTAINER_SECURITY,
            "volumeMounts": [{"name": "tmp", "mountPath": TMP}, {"name": "cache", "mountPath": CACHE}],
        }

    *init, main = step_commands(search, job, search_uri)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": POD_SECURITY,
        "nodeSelector": resources.node_selector,
        "tolerations": [t.wire() for t in resources.tolerations],
        "containers": [container(main, job.gpus)],
        "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}],
    }
    if init:
        pod_spec["initContainers"] = [container(command, 0) for command in init]
    job_labels = labels(search, job)
    if resources.queue_name:
        job_labels["kueue.x-k8s.io/queue-name"] = resources.queue_name
    job_spec: dict[str, Any] = {
        "backoffLimit": resources.backoff_limit,
        "podFailurePolicy": pod_failure_policy(main.name),
        "template": {"metadata": {"labels": labels(search, job)}, "spec": pod_spec},
    }
    if resources.queue_name:
        job_spec["suspend"] = True
    if resources.active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = resources.active_deadline_seconds
    ttl = resources.ttl_seconds_after_finished
    job_spec["ttlSecondsAfterFinished"] = DEFAULT_TTL_SECONDS if ttl is None else ttl
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": layout.job_name(meta.name, job.step_key),
            "namespace": meta.namespace,
            "labels": job_labels,
            "annotations": {STEP_KEY: job.step_key},
            "ownerReferences": [
                {
                    "apiVersion": search.api_version,
                    "kind": search.kind,
                    "name": meta.name,
                    "uid": meta.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }


def job_state(job: client.V1Job, pods: list[client.V1Pod]) -> JobState:
    """A Job's state for the state machine; a pending pod the scheduler refused is flagged unschedulable."""
    status = job.status
    for condition in status.conditions or []:
        if condition.status != "True":
            continue
        if condition.type == "Complete":
            return JobState("Succeeded")
        if condition.type == "Failed":
            return JobState("Failed", f"{condition.reason}: {condition.message}".strip(": "))
    for pod in pods:
        for condition in pod.status.conditions or []:
            if condition.type == "PodScheduled" and condition.status == "False" and condition.reason == "Unschedulable":
                return JobState("Pending", condition.message or "Unschedulable", unschedulable=True)
    return JobState("Running" if (status.ready or 0) > 0 else "Pending")


class KubernetesExecutor:
    """Observes, creates and deletes searches' Jobs; records each finished Job's duration and GPU-hours once."""

    def __init__(self, api: client.ApiClient) -> None:
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self._timed_jobs: set[str] = set()
        # Per search uid: the resourceVersion its Job listings must not be older than (see `_fresh`).
        self._floor: dict[str, int] = {}
        # Per search uid: when its pods were last listed (monotonic), and them by Job name.
        self._pods: dict[str, tuple[float, dict[str, list[client.V1Pod]]]] = {}

    def _fresh(self, search: MixtureSearch) -> dict[str, Any]:
        """A search's first listing reads etcd; later ones the API server's watch cache (no read of every Job in
        the namespace), no older than that listing and this operator's own creates, so a Job it made is always
        listed. Job events reach the operator from that same cache, so a listing after one shows it."""
        floor = self._floor.get(search.metadata.uid)
        return {} if floor is None else {"resource_version": str(floor), "resource_version_match": "NotOlderThan"}

    def _saw(self, search: MixtureSearch, resource_version: str | None) -> None:
        if resource_version:
            uid = search.metadata.uid
            self._floor[uid] = max(self._floor.get(uid, 0), int(resource_version))

    def forget(self, uid: str) -> None:
        self._floor.pop(uid, None)
        self._pods.pop(uid, None)

    def _pods_by_job(self, search: MixtureSearch, selector: str) -> dict[str, list[client.V1Pod]]:
        """Only to tell an unschedulable pod: the watch cache's view will do, a few seconds old at most."""
        uid = search.metadata.uid
        listed, pods = self._pods.get(uid, (-UNSCHEDULABLE_AFTER_S, {}))
        if time.monotonic() - listed >= UNSCHEDULABLE_AFTER_S:
            listing = self.core.list_namespaced_pod(
                search.metadata.namespace, label_selector=selector, resource_version="0"
            )
            pods = {}
            for pod in listing.items:
                pods.setdefault((pod.metadata.labels or {}).get("job-name", ""), []).append(pod)
            self._pods[uid] = (time.monotonic(), pods)
        return pods

    def observe(self, search: MixtureSearch) -> dict[str, JobState]:
        selector = f"mixtura.dev/search={search.metadata.name},app.kubernetes.io/managed-by=mixtura"
        listing = self.batch.list_namespaced_job(
            search.metadata.namespace, label_selector=selector, **self._fresh(search)
        )
        self._saw(search, listing.metadata.resource_version)
        jobs = listing.items
        owned = [j for j in jobs if any(o.uid == search.metadata.uid for o in j.metadata.owner_references or [])]
        now = datetime.now(UTC)
        waiting = [
            j
            for j in owned
            if not (j.status.ready or j.status.succeeded or j.status.failed)
            and (now - j.metadata.creation_timestamp).total_seconds() >= UNSCHEDULABLE_AFTER_S
        ]
        pods_by_job = self._pods_by_job(search, selector) if waiting else {}
        states = {}
        for job in owned:
            key = (job.metadata.annotations or {}).get(STEP_KEY)
            if key:
                states[key] = job_state(job, pods_by_job.get(job.metadata.name, []))
                if states[key].phase in ("Succeeded", "Failed"):
                    self._time(search, job)
        return states

    def _time(self, search: MixtureSearch, job: client.V1Job) -> None:
        if job.metadata.uid in self._timed_jobs:
            return
        self._timed_jobs.add(job.metadata.uid)
        end = job.status.completion_time or max(
            (c.last_transition_time for c in job.status.conditions or []), default=None
        )
        if job.status.start_time is None or end is None:
            return
        seconds = max(0.0, (end - job.status.start_time).total_seconds())
        step = (job.metadata.labels or {}).get("mixtura.dev/step", "unknown")
        metrics.JOB_DURATION.labels(step).observe(seconds)
        limits = job.spec.template.spec.containers[0].resources.limits or {}
        gpus = int(limits.get("nvidia.com/gpu", 0))
        metrics.GPU_HOURS.labels(search.metadata.namespace, search.metadata.name).inc(gpus * seconds / 3600)

    def cancel(self, search: MixtureSearch, step_key: str) -> None:
        name = layout.job_name(search.metadata.name, step_key)
        try:
            self.batch.delete_namespaced_job(name, search.metadata.namespace, propagation_policy="Background")
        except client.ApiException as error:
            if error.status != 404:
                raise

    def create(self, search: MixtureSearch, job: CreateJob, search_uri: str) -> bool:
        """Creates the Job; False when it already exists (a restarted operator never duplicates one)."""
        try:
            created = self.batch.create_namespaced_job(search.metadata.namespace, job_manifest(search, job, search_uri))
        except client.ApiException as error:
            if error.status == 409:
                return False
            raise
        self._saw(search, created.metadata.resource_version)
        return True
