"""Runs job steps as batch/v1 Jobs: deterministic names, owner references, GPUs, credentials by secretKeyRef,
pods that pass the PodSecurity `restricted` profile. A final training on several nodes is an Indexed Job with a
headless Service (or a JobSet, `finalTraining.launcher: jobset`) whose pods meet at a c10d rendezvous on node 0."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubernetes import client

from mixtura_operator import layout, metrics
from mixtura_operator.api.mixturesearch import MixtureSearch
from mixtura_operator.executors.commands import Command, step_commands
from mixtura_operator.executors.launch import Launch, launch_of, torchrun
from mixtura_operator.reconcile import CreateJob, JobState

STEP_KEY = "mixtura.dev/step-key"
SEARCH_LABEL = "mixtura.dev/search"
JOBSET_GROUP, JOBSET_VERSION, JOBSETS = "jobset.x-k8s.io", "v1alpha2", "jobsets"
# A JobSet of one replicated Job: its pods are `<jobset>-node-0-<index>`, in the subdomain `<jobset>`.
REPLICATED_JOB = "node"
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
DEFAULT_JOBS_IMAGE = "ghcr.io/mixtura/jobs:0.1.0"
# Read by the jobs (mixtura_jobs.training.device), which the operator knows only by their command line.
CPU_REQUEST_ENV = "MIXTURA_CPU_REQUEST"
MANAGED = {"app.kubernetes.io/managed-by": "mixtura", "app.kubernetes.io/part-of": "mixtura"}
# The jobs image's user (jobs/Dockerfile); fixed, so that runAsNonRoot holds whatever image a search names.
JOB_UID = 65532
# Finished Jobs go after an hour: each step's result is in the store (`_SUCCESS` is written before the pod
# exits, a failure the operator saw is recorded as `_FAILED`), so the Job is only its logs by then.
DEFAULT_TTL_SECONDS = 3600
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
    out = {**MANAGED, "app.kubernetes.io/name": "mixtura-job", SEARCH_LABEL: search.metadata.name}
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


def object_name(search: str, step_key: str, launch: Launch) -> str:
    """The Job's or JobSet's name, short enough that its pods' hostnames (`<job>-<index>`, a JobSet's
    `<jobset>-node-0-<index>`) stay DNS labels."""
    if launch.launcher == "jobset":
        suffix = f"-{REPLICATED_JOB}-0-{launch.nodes - 1}"
    else:
        suffix = f"-{launch.nodes - 1}" if launch.nodes > 1 else ""
    return layout.job_name(search, step_key, 63 - len(suffix))


def service_name(job: str) -> str:
    """The headless Service of an Indexed Job: the Job's name, or one that starts with a letter (a Service's
    name is a DNS-1035 label; a Job's may start with a digit)."""
    return job if job[0].isalpha() else layout.job_name("svc", job)


def _rendezvous(search: MixtureSearch, step_key: str, launch: Launch) -> tuple[str, str]:
    """Node 0's stable DNS name (its hostname in the subdomain of the headless Service) and the rendezvous id."""
    name = object_name(search.metadata.name, step_key, launch)
    node0 = f"{name}-{REPLICATED_JOB}-0-0" if launch.launcher == "jobset" else f"{name}-0"
    return f"{node0}.{service_name(name)}", name


def _metadata(search: MixtureSearch, job: CreateJob, name: str, queued: bool = False) -> dict[str, Any]:
    """An object's metadata, owned by the search; `queued`: the Job or JobSet that Kueue admits."""
    meta = search.metadata
    object_labels = labels(search, job)
    if queued and search.spec.resources.queue_name:
        object_labels["kueue.x-k8s.io/queue-name"] = search.spec.resources.queue_name
    return {
        "name": name,
        "namespace": meta.namespace,
        "labels": object_labels,
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
    }


def _step_env(search: MixtureSearch) -> list[dict[str, Any]]:
    """What every step's containers get in their environment: the writable cache paths, the store's endpoint and,
    from the search's Secret, its S3 credentials."""
    artifacts = search.spec.artifacts
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in WRITABLE_ENV.items()]
    endpoint = artifacts.endpoint_url or os.environ.get("MIXTURA_S3_ENDPOINT")
    if endpoint:
        env.append({"name": "MIXTURA_S3_ENDPOINT", "value": endpoint})
    if artifacts.credentials_secret:
        env += [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": artifacts.credentials_secret, "key": key}}}
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        ]
    return env


def _job_spec(search: MixtureSearch, job: CreateJob, search_uri: str, launch: Launch) -> dict[str, Any]:
    """The batch/v1 JobSpec of a step (a JobSet's replicated Job's too): one pod per node."""
    resources = search.spec.resources
    env = _step_env(search)
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

    launcher = torchrun(launch, *_rendezvous(search, job.step_key, launch)) if launch.distributed else []
    *init, main = step_commands(search, job, search_uri, launcher)
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
    job_spec: dict[str, Any] = {
        "backoffLimit": resources.backoff_limit,
        "podFailurePolicy": pod_failure_policy(main.name),
        "template": {"metadata": {"labels": labels(search, job)}, "spec": pod_spec},
    }
    if launch.nodes > 1:
        # Pod <job>-<index> of each index; the hostnames resolve in the headless Service's subdomain.
        job_spec.update(completionMode="Indexed", completions=launch.nodes, parallelism=launch.nodes)
    return job_spec


def _lifecycle(search: MixtureSearch) -> dict[str, Any]:
    """Kueue's suspension, the deadline and the TTL, the same on a Job and a JobSet."""
    resources = search.spec.resources
    out: dict[str, Any] = {}
    if resources.queue_name:
        out["suspend"] = True
    if resources.active_deadline_seconds:
        out["activeDeadlineSeconds"] = resources.active_deadline_seconds
    ttl = resources.ttl_seconds_after_finished
    out["ttlSecondsAfterFinished"] = DEFAULT_TTL_SECONDS if ttl is None else ttl
    return out


def job_manifest(search: MixtureSearch, job: CreateJob, search_uri: str) -> dict[str, Any]:
    """The step's batch/v1 Job; an Indexed Job in the subdomain of its headless Service on several nodes."""
    launch = launch_of(search.spec, job.step_key)
    name = object_name(search.metadata.name, job.step_key, launch)
    job_spec = {**_job_spec(search, job, search_uri, launch), **_lifecycle(search)}
    if launch.nodes > 1:
        job_spec["template"]["spec"]["subdomain"] = service_name(name)
    metadata = _metadata(search, job, name, queued=True)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}


def service_manifest(search: MixtureSearch, job: CreateJob) -> dict[str, Any]:
    """The headless Service that gives an Indexed Job's pods their DNS names (`<job>-0.<service>`: node 0,
    where the rendezvous is)."""
    launch = launch_of(search.spec, job.step_key)
    name = object_name(search.metadata.name, job.step_key, launch)
    metadata = _metadata(search, job, service_name(name))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "clusterIP": "None",
            "selector": {"batch.kubernetes.io/job-name": name},
            # The rendezvous happens before any pod is ready.
            "publishNotReadyAddresses": True,
        },
    }


def jobset_manifest(search: MixtureSearch, job: CreateJob, search_uri: str) -> dict[str, Any]:
    """A JobSet of one replicated Job of `nodes` pods (its controller makes the headless Service). A failed
    Job restarts the whole set up to backoffLimit times, but for bad input (the Job's podFailurePolicy)."""
    launch = launch_of(search.spec, job.step_key)
    name = object_name(search.metadata.name, job.step_key, launch)
    job_spec = {**_job_spec(search, job, search_uri, launch), "backoffLimit": 0}
    job_spec.update(completionMode="Indexed", completions=launch.nodes, parallelism=launch.nodes)
    lifecycle = _lifecycle(search)
    # The deadline is each Job's; the JobSet has none of its own.
    if "activeDeadlineSeconds" in lifecycle:
        job_spec["activeDeadlineSeconds"] = lifecycle.pop("activeDeadlineSeconds")
    return {
        "apiVersion": f"{JOBSET_GROUP}/{JOBSET_VERSION}",
        "kind": "JobSet",
        "metadata": _metadata(search, job, name, queued=True),
        "spec": {
            "network": {"enableDNSHostnames": True, "subdomain": service_name(name)},
            "failurePolicy": {
                "maxRestarts": search.spec.resources.backoff_limit,
                "rules": [{"name": "bad-input", "action": "FailJobSet", "onJobFailureReasons": ["PodFailurePolicy"]}],
            },
            "replicatedJobs": [
                {
                    "name": REPLICATED_JOB,
                    "replicas": 1,
                    "template": {"metadata": {"labels": labels(search, job)}, "spec": job_spec},
                }
            ],
            **lifecycle,
        },
    }


def unschedulable_message(pod: Mapping[str, Any]) -> str | None:
    """Why the scheduler refused the pod, or None: it was not refused (or not yet asked)."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (condition.get("type"), condition.get("status"), condition.get("reason")) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        ):
            return condition.get("message") or "Unschedulable"
    return None


def _unschedulable(refused: Mapping[str, str]) -> JobState | None:
    """`refused`: pod name → why the scheduler refused it."""
    if not refused:
        return None
    return JobState("Pending", refused[min(refused)], unschedulable=True)


def job_state(job: dict[str, Any], refused: Mapping[str, str]) -> JobState:
    """A Job's state for the state machine (objects as the API server sends them; the client's models cost more
    to build than the rest of a reconcile); a pending Job whose pod the scheduler refused (`refused`: pod name →
    why) is flagged unschedulable. An Indexed Job is Complete once every index has succeeded."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobState("Succeeded")
        if condition.get("type") == "Failed":
            return JobState("Failed", f"{condition.get('reason', '')}: {condition.get('message', '')}".strip(": "))
    return _unschedulable(refused) or JobState("Running" if status.get("ready") else "Pending")


def jobset_state(jobset: dict[str, Any], refused: Mapping[str, str]) -> JobState:
    """A JobSet's state, from its conditions (Completed, Failed) and its replicated Jobs' ready pods."""
    status = jobset.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Completed":
            return JobState("Succeeded")
        if condition.get("type") == "Failed":
            return JobState("Failed", f"{condition.get('reason', '')}: {condition.get('message', '')}".strip(": "))
    ready = sum(r.get("ready", 0) for r in status.get("replicatedJobsStatus") or [])
    return _unschedulable(refused) or JobState("Running" if ready > 0 else "Pending")


def gpu_seconds(body: Mapping[str, Any]) -> tuple[float, int] | None:
    """A finished Job's (seconds from start to completion, GPUs of all its pods), from its object; None when it
    never started."""
    status, spec = body.get("status") or {}, body.get("spec") or {}
    times = [c.get("lastTransitionTime") for c in status.get("conditions") or [] if c.get("lastTransitionTime")]
    end = status.get("completionTime") or max(times, default=None)
    if status.get("startTime") is None or end is None:
        return None
    seconds = (_parse_time(end) - _parse_time(status["startTime"])).total_seconds()
    limits = spec["template"]["spec"]["containers"][0].get("resources", {}).get("limits") or {}
    return max(0.0, seconds), int(limits.get("nvidia.com/gpu", 0)) * (spec.get("parallelism") or 1)


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def jobset_missing_message() -> str:
    return (
        f"spec.finalTraining.launcher: jobset needs the JobSet CRD ({JOBSETS}.{JOBSET_GROUP}, {JOBSET_VERSION}), "
        "which this cluster does not have; install JobSet, or use launcher: job"
    )


def _ignore_missing(call, *args: Any, **kwargs: Any) -> None:
    try:
        call(*args, **kwargs)
    except client.ApiException as error:
        if error.status != 404:
            raise


def _create(call, *args: Any) -> Any:
    """The created object; None when it already exists (a restarted operator never duplicates one)."""
    try:
        return call(*args)
    except client.ApiException as error:
        if error.status == 409:
            return None
        raise


class KubernetesExecutor:
    """Observes, creates and deletes searches' Jobs (and the Services and JobSets of distributed final
    trainings); records each finished Job's duration and GPU-hours once."""

    def __init__(self, api: client.ApiClient) -> None:
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.apis = client.ApisApi(api)
        self._timed_jobs: set[str] = set()
        # Per search uid: the resourceVersion its Job listings must not be older than (see `_fresh`).
        self._floor: dict[str, int] = {}
        # Jobs (uids) of which a pod succeeded, until the Job watch reports them finished.
        self._pod_succeeded: set[str] = set()
        # Per (namespace, Job or JobSet name): its pods that the scheduler refused (pod name → why), from the pod
        # watch. Each change replaces the inner mapping, so a reconcile reads a consistent one.
        self._refused: dict[tuple[str, str], Mapping[str, str]] = {}

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

    def _list_jobs(self, search: MixtureSearch, namespace: str, selector: str) -> list[dict[str, Any]]:
        try:
            listing = _raw(self.batch.list_namespaced_job, namespace, label_selector=selector, **self._fresh(search))
        except client.ApiException as error:
            # The watch cache did not reach the floor within the API server's wait (504, ResourceVersionTooLarge:
            # no Job changed since, and etcd's progress notification is late): read etcd, as the first listing.
            if error.status != 504:
                raise
            listing = _raw(self.batch.list_namespaced_job, namespace, label_selector=selector)
        self._saw(search, listing["metadata"].get("resourceVersion"))
        return listing["items"]

    def forget(self, uid: str) -> None:
        self._floor.pop(uid, None)

    def pod_seen(self, pod: Mapping[str, Any], deleted: bool) -> None:
        """Every event of a search's pod (the pod watch): whether the scheduler refuses it."""
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        owner = (meta["namespace"], labels.get(JOBSET_NAME_LABEL) or labels.get("job-name", ""))
        message = None if deleted else unschedulable_message(pod)
        refused = dict(self._refused.get(owner, {}))
        if message:
            refused[meta["name"]] = message
        else:
            refused.pop(meta["name"], None)
        if refused:
            self._refused[owner] = refused
        else:
            self._refused.pop(owner, None)

    def observe(self, search: MixtureSearch) -> dict[str, JobState]:
        selector = f"{SEARCH_LABEL}={search.metadata.name},app.kubernetes.io/managed-by=mixtura"
        namespace = search.metadata.namespace
        owned = [j for j in self._list_jobs(search, namespace, selector) if _owned(search, j)]
        jobsets = [j for j in self._jobsets(search, selector) if _owned(search, j)]
        states = {}
        for job in owned:
            meta = job["metadata"]
            key = (meta.get("annotations") or {}).get(STEP_KEY)
            if key:
                states[key] = job_state(job, self._refused.get((namespace, meta["name"]), {}))
                if meta["uid"] in self._pod_succeeded and (job["spec"].get("completions") or 1) == 1:
                    states[key] = JobState("Succeeded")
        for jobset in jobsets:
            key = (jobset["metadata"].get("annotations") or {}).get(STEP_KEY)
            if key:
                states[key] = jobset_state(jobset, self._refused.get((namespace, jobset["metadata"]["name"]), {}))
        return states

    def _jobsets(self, search: MixtureSearch, selector: str) -> list[dict[str, Any]]:
        if search.spec.final_training.launcher != "jobset":
            return []
        try:
            listed = self.custom.list_namespaced_custom_object(
                JOBSET_GROUP, JOBSET_VERSION, search.metadata.namespace, JOBSETS, label_selector=selector
            )
        except client.ApiException as error:
            if error.status == 404:
                return []
            raise
        return listed["items"]

    def launcher_problem(self, search: MixtureSearch) -> str | None:
        """Why the final training cannot be launched as spec.finalTraining.launcher asks: a JobSet without the
        JobSet CRD (API discovery, which every authenticated user may read)."""
        final = search.spec.final_training
        if not final.enabled or final.launcher != "jobset":
            return None
        groups = self.apis.get_api_versions().groups or []
        served = {v.version for g in groups if g.name == JOBSET_GROUP for v in g.versions or []}
        return None if JOBSET_VERSION in served else jobset_missing_message()

    def pod_succeeded(self, job_uid: str) -> bool:
        """A pod of the single-pod Job `job_uid` succeeded (the pod watch): the Job has succeeded, whether or not
        the job controller has marked it Complete yet (on a busy control plane that takes seconds to tens of
        seconds). True when that is news: not for a Job seen succeeded or finished before."""
        if job_uid in self._pod_succeeded or job_uid in self._timed_jobs:
            return False
        self._pod_succeeded.add(job_uid)
        return True

    def job_finished(self, body: Mapping[str, Any]) -> bool:
        """A Job marked Complete or Failed (the Job watch): records its duration and GPU-hours once. True when
        its search has something new to see: False for a Job already seen succeeded from its pod."""
        uid = body["metadata"]["uid"]
        if uid not in self._timed_jobs:
            self._timed_jobs.add(uid)
            spent = gpu_seconds(body)
            if spent is not None:
                meta = body["metadata"]
                labels = meta.get("labels") or {}
                metrics.JOB_DURATION.labels(labels.get("mixtura.dev/step", "unknown")).observe(spent[0])
                metrics.GPU_HOURS.labels(meta["namespace"], labels.get(SEARCH_LABEL, "")).inc(
                    spent[0] * spent[1] / 3600
                )
        if uid in self._pod_succeeded:
            self._pod_succeeded.discard(uid)
            return False
        return True

    def job_deleted(self, job_uid: str) -> None:
        """A Job is gone (the Job watch): its uid is no longer kept, whether it finished or was deleted first
        (a cancelled trial); otherwise every Job the operator ever saw would stay in memory."""
        self._timed_jobs.discard(job_uid)
        self._pod_succeeded.discard(job_uid)

    def cancel(self, search: MixtureSearch, step_key: str) -> None:
        namespace = search.metadata.namespace
        launch = launch_of(search.spec, step_key)
        name = object_name(search.metadata.name, step_key, launch)
        if launch.launcher == "jobset":
            _ignore_missing(
                self.custom.delete_namespaced_custom_object,
                JOBSET_GROUP,
                JOBSET_VERSION,
                namespace,
                JOBSETS,
                name,
                propagation_policy="Background",
            )
            return
        _ignore_missing(self.batch.delete_namespaced_job, name, namespace, propagation_policy="Background")
        if launch.nodes > 1:
            _ignore_missing(self.core.delete_namespaced_service, service_name(name), namespace)

    def create(self, search: MixtureSearch, job: CreateJob, search_uri: str) -> bool:
        """Creates the step's objects; False when its Job or JobSet already exists."""
        namespace = search.metadata.namespace
        launch = launch_of(search.spec, job.step_key)
        if launch.launcher == "jobset":
            body = jobset_manifest(search, job, search_uri)
            created = _create(
                self.custom.create_namespaced_custom_object, JOBSET_GROUP, JOBSET_VERSION, namespace, JOBSETS, body
            )
            return created is not None
        if launch.nodes > 1:
            # Before the Job, so that node 0's name resolves when its pods start.
            _create(self.core.create_namespaced_service, namespace, service_manifest(search, job))
        created = _create(self.batch.create_namespaced_job, namespace, job_manifest(search, job, search_uri))
        if created is not None:
            self._saw(search, created.metadata.resource_version)
        return created is not None


def _owned(search: MixtureSearch, obj: dict[str, Any]) -> bool:
    """Owned by this search (its uid): a search deleted and made again under the same name owns none of these."""
    return any(o.get("uid") == search.metadata.uid for o in obj["metadata"].get("ownerReferences") or [])


def _raw(call, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A listing as the API server's JSON, without the client's models."""
    return json.loads(call(*args, _preload_content=False, **kwargs).data)
