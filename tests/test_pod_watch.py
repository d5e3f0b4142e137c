"""The operator acts on a step's pod succeeding, not on the job controller marking its Job Complete later: the
executor's bookkeeping between the pod watch and the Job watch, and the pod events that count. No cluster here
(the test bed's searches all go this way; bench/operator_lag.py measures the lag it saves)."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from test_distributed_launch import make_search

from mixtura_operator.executors.kubernetes import KubernetesExecutor, gpu_seconds, job_manifest
from mixtura_operator.handlers import COMPLETION_INDEX, _deleted, _finished, _succeeded_alone
from mixtura_operator.reconcile import CreateJob

API = client.ApiClient()
START, END = "2026-12-01T06:00:00Z", "2026-12-01T06:01:30Z"


def job_body(step_key: str, uid: str, status: dict[str, Any], gpus: int = 1, **spec: Any) -> dict[str, Any]:
    s = make_search(**spec)
    body = job_manifest(s, CreateJob(step_key, (), gpus), "s3://bucket/runs")
    body["metadata"].update(uid=uid, creationTimestamp=START, resourceVersion="7")
    body["status"] = status
    return body


def executor_listing(bodies: list[dict[str, Any]]) -> KubernetesExecutor:
    """An executor whose Job listing returns `bodies` (as the API server would)."""
    executor = KubernetesExecutor(API)
    executor._list_jobs = lambda search, namespace, selector: bodies
    return executor


def test_a_job_of_one_pod_has_succeeded_once_its_pod_has_before_the_job_controller_says_so():
    running = job_body("trial/000", "job-1", {"ready": 1, "startTime": START})
    executor = executor_listing([running])
    search = make_search()
    assert executor.observe(search)["trial/000"].phase == "Running"
    assert executor.pod_succeeded("job-1"), "news: the search reconciles"
    assert not executor.pod_succeeded("job-1"), "the pod's later events (its finalizer removed) are not"
    assert executor.observe(search)["trial/000"].phase == "Succeeded"
    complete = {**running["status"], "completionTime": END, "conditions": [{"type": "Complete", "status": "True"}]}
    assert not executor.job_finished({**running, "status": complete}), "the search saw it from its pod"
    assert not executor.pod_succeeded("job-1"), "a late pod event of a finished Job is no news"


def test_a_job_finished_without_a_pod_event_reconciles_its_search():
    failed = {"startTime": START, "conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": END}]}
    assert KubernetesExecutor(API).job_finished(job_body("trial/000", "job-2", failed))


def test_an_indexed_job_waits_for_the_job_controller():
    """A final training on two nodes has succeeded when both indexes have: one pod says nothing."""
    running = job_body("final", "job-3", {"ready": 2}, finalTraining={"nodes": 2})
    executor = executor_listing([running])
    executor.pod_succeeded("job-3")
    assert executor.observe(make_search(finalTraining={"nodes": 2}))["final"].phase == "Running"


def test_a_pod_the_scheduler_refuses_flags_its_job_until_it_is_scheduled_or_gone():
    executor = executor_listing([job_body("trial/000", "job-6", {})])
    search = make_search()
    pod = {"metadata": {"name": "find-trial-000-x", "namespace": "ns", "labels": {"job-name": "find-trial-000"}}}
    refused = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes: GPUs"}
    executor.pod_seen({**pod, "status": {"conditions": [refused]}}, deleted=False)
    state = executor.observe(search)["trial/000"]
    assert state.unschedulable and state.message == "0/2 nodes: GPUs"
    executor.pod_seen({**pod, "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}}, deleted=False)
    assert not executor.observe(search)["trial/000"].unschedulable
    executor.pod_seen({**pod, "status": {"conditions": [refused]}}, deleted=False)
    executor.pod_seen({**pod, "status": {"conditions": [refused]}}, deleted=True)
    assert executor.observe(search)["trial/000"].phase == "Pending" and not executor._refused


def pod_event(type: str = "MODIFIED", phase: str = "Succeeded", **meta: Any) -> dict[str, Any]:
    return {"type": type, "status": {"phase": phase}, "meta": {"name": "s-trial-000-x", **meta}}


def test_only_a_succeeded_pod_of_a_single_pod_job_counts():
    assert _succeeded_alone(**pod_event())
    assert not _succeeded_alone(**pod_event(phase="Running"))
    assert not _succeeded_alone(**pod_event(phase="Failed"))
    assert not _succeeded_alone(**pod_event(type="DELETED"))
    assert not _succeeded_alone(**pod_event(deletionTimestamp=END)), "the TTL deleting a finished Job's pod"
    assert not _succeeded_alone(**pod_event(annotations={COMPLETION_INDEX: "0"})), "one node of an Indexed Job"


def test_a_finished_jobs_seconds_and_gpus_come_from_its_object():
    body = job_body("trial/000", "job-4", {"startTime": START, "completionTime": END}, gpus=2)
    assert gpu_seconds(body) == (90.0, 2)
    assert gpu_seconds(job_body("trial/000", "job-5", {"conditions": []})) is None


def test_the_executor_keeps_no_uid_of_a_deleted_job():
    """Every Job the operator saw finish, or saw succeed from its pod and then deleted before the job controller
    marked it (a cancelled trial), is dropped once the Job watch reports it deleted: no uid stays forever."""
    executor = KubernetesExecutor(API)
    complete = {"startTime": START, "completionTime": END, "conditions": [{"type": "Complete", "status": "True"}]}
    executor.job_finished(job_body("trial/000", "job-7", complete))
    executor.pod_succeeded("job-8")
    executor.job_deleted("job-7")
    executor.job_deleted("job-8")
    assert not executor._timed_jobs and not executor._pod_succeeded


def test_job_events_split_finished_from_deleted():
    complete = {"conditions": [{"type": "Complete", "status": "True"}]}
    assert _finished(type="MODIFIED", status=complete)
    assert not _finished(type="DELETED", status=complete), "a finished Job's deletion is not a second finish"
    assert not _finished(type="MODIFIED", status={"active": 1})
    assert _deleted(type="DELETED") and not _deleted(type="MODIFIED")
