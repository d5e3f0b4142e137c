"""Issue 14, the operator's side: how training steps are launched (torchrun on one node; an Indexed Job with a
headless Service and a c10d rendezvous on node 0 for several; a JobSet when asked and installed), the bad-input
exit code through torchrun, and the final model's URI in status. Manifests are pure: no cluster here."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from test_reconcile import NOW, World, make

from malformed import search
from mixtura_operator import layout
from mixtura_operator.api.mixturesearch import MixtureSearch, Phase, Trainer
from mixtura_operator.executors.kubernetes import (
    job_manifest,
    job_state,
    jobset_manifest,
    jobset_missing_message,
    object_name,
    service_manifest,
)
from mixtura_operator.executors.launch import RDZV_PORT, Launch, launch_of
from mixtura_operator.executors.local import _launcher
from mixtura_operator.reconcile import CreateJob, JobState, reconcile

URI = "s3://bucket/runs/ns/find/uid"
TORCHRUN = ["python", "-m", "mixtura_jobs", "torchrun"]
STEP = ["-m", "mixtura_jobs", "final-train", "--search-uri", URI]


def make_search(name: str = "find", **spec) -> MixtureSearch:
    body = search(**spec)
    body["metadata"]["name"] = name
    s = MixtureSearch.model_validate(body)
    s.metadata.uid, s.metadata.namespace = "uid", "ns"
    return s


FINAL = CreateJob("final", (), 0)


def test_the_spec_says_how_each_step_is_launched():
    s = make_search(
        resources={"gpusPerJob": 2}, finalTraining={"nodes": 3, "gpusPerNode": 8}, training={"batchSize": 48}
    )
    assert launch_of(s.spec, "final") == Launch(3, 8) and launch_of(s.spec, "final/uniform") == Launch(3, 8)
    assert launch_of(s.spec, "trial/000") == Launch(1, 2)
    assert not launch_of(s.spec, "embed/digits").distributed and not launch_of(s.spec, "report").distributed
    cpu = make_search(finalTraining={"nodes": 2, "gpusPerNode": 0})
    assert launch_of(cpu.spec, "final") == Launch(2, 1) and launch_of(cpu.spec, "final").world_size == 2


def test_one_process_runs_as_before_without_torchrun():
    (container,) = job_manifest(make_search(), FINAL, URI)["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", *STEP]


def test_several_gpus_on_one_node_run_under_torchrun_standalone():
    s = make_search(finalTraining={"gpusPerNode": 4})
    manifest = job_manifest(s, CreateJob("final", (), 4), URI)
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["command"] == [*TORCHRUN, "--standalone", "--nproc-per-node", "4", *STEP]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert "completionMode" not in manifest["spec"] and "subdomain" not in manifest["spec"]["template"]["spec"]


def test_a_proxy_with_several_gpus_runs_under_torchrun_on_one_node():
    s = make_search(resources={"gpusPerJob": 2})
    (container,) = job_manifest(s, CreateJob("trial/003", ("--trial", "003"), 2), URI)["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["command"][:8] == [*TORCHRUN, "--standalone", "--nproc-per-node", "2", "-m"]
    assert container["command"][-2:] == ["--trial", "003"]


def test_several_nodes_are_an_indexed_job_in_the_subdomain_of_a_headless_service():
    s = make_search(finalTraining={"nodes": 2, "gpusPerNode": 8})
    job = job_manifest(s, CreateJob("final", (), 8), URI)
    service = service_manifest(s, FINAL)
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    name = job["metadata"]["name"]
    assert name == "find-final" and pod["subdomain"] == service["metadata"]["name"] == "find-final"
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": name}
    assert service["metadata"]["ownerReferences"] == job["metadata"]["ownerReferences"]
    assert service["metadata"]["ownerReferences"][0]["uid"] == "uid"
    (container,) = pod["containers"]
    assert container["command"] == [
        *TORCHRUN,
        *("--nnodes", "2", "--nproc-per-node", "8", "--rdzv-backend", "c10d"),
        *("--rdzv-endpoint", f"find-final-0.find-final:{RDZV_PORT}", "--rdzv-id", "find-final"),
        *STEP,
    ]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert rules[1]["action"] == "FailJob" and rules[1]["onExitCodes"]["values"] == [layout.EXIT_BAD_INPUT]


def test_pod_hostnames_and_service_names_stay_valid_for_any_search_name():
    long = make_search("a" * 60, finalTraining={"nodes": 12, "gpusPerNode": 0}, training={"batchSize": 24})
    name = job_manifest(long, FINAL, URI)["metadata"]["name"]
    assert len(f"{name}-11") <= 63
    digit = make_search("7up", finalTraining={"nodes": 2, "gpusPerNode": 0})
    service = service_manifest(digit, FINAL)["metadata"]["name"]
    assert service[0].isalpha() and len(service) <= 63
    assert job_manifest(digit, FINAL, URI)["spec"]["template"]["spec"]["subdomain"] == service
    digit.spec.final_training.launcher = "jobset"
    jobset = jobset_manifest(digit, FINAL, URI)
    (container,) = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"]
    subdomain = jobset["spec"]["network"]["subdomain"]
    assert subdomain[0].isalpha() and f"7up-final-node-0-0.{subdomain}:{RDZV_PORT}" in container["command"]


def test_kueue_admits_the_job_not_its_service():
    s = make_search(finalTraining={"nodes": 2, "gpusPerNode": 0}, resources={"queueName": "team"})
    job = job_manifest(s, FINAL, URI)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team" and job["spec"]["suspend"] is True
    assert "kueue.x-k8s.io/queue-name" not in service_manifest(s, FINAL)["metadata"]["labels"]


def test_a_baseline_trains_on_as_many_nodes_under_its_own_names():
    s = make_search(finalTraining={"nodes": 2, "gpusPerNode": 0, "compareWith": ["uniform"]})
    job = job_manifest(s, CreateJob("final/uniform", ("--baseline", "uniform")), URI)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert job["metadata"]["name"] == "find-final-uniform" and job["spec"]["parallelism"] == 2
    assert "find-final-uniform-0.find-final-uniform:29400" in container["command"]


def test_a_jobset_runs_one_replicated_job_of_a_pod_per_node():
    s = make_search(finalTraining={"nodes": 4, "gpusPerNode": 2, "launcher": "jobset"}, resources={"backoffLimit": 3})
    jobset = jobset_manifest(s, CreateJob("final", (), 2), URI)
    assert jobset["apiVersion"] == "jobset.x-k8s.io/v1alpha2" and jobset["kind"] == "JobSet"
    (replicated,) = jobset["spec"]["replicatedJobs"]
    spec = replicated["template"]["spec"]
    assert replicated["replicas"] == 1 and (spec["completionMode"], spec["parallelism"], spec["completions"]) == (
        "Indexed",
        4,
        4,
    )
    assert spec["backoffLimit"] == 0 and jobset["spec"]["failurePolicy"]["maxRestarts"] == 3
    assert spec["podFailurePolicy"]["rules"][0]["onPodConditions"] == [{"type": "DisruptionTarget"}]
    (container,) = spec["template"]["spec"]["containers"]
    assert "find-final-node-0-0.find-final:29400" in container["command"]
    assert jobset["metadata"]["annotations"] == {"mixtura.dev/step-key": "final"}
    assert len(object_name("x" * 63, "final", launch_of(s.spec, "final"))) + len("-node-0-3") <= 63


def test_an_indexed_job_has_succeeded_only_when_every_index_has():
    def job(conditions, succeeded, ready):
        return {"status": {"conditions": conditions, "succeeded": succeeded, "ready": ready, "failed": 0}}

    assert job_state(job([], 1, 1), {}).phase == "Running"
    complete = {"type": "Complete", "status": "True", "reason": "", "message": ""}
    assert job_state(job([complete], 2, 0), {}).phase == "Succeeded"


def test_the_local_executor_runs_all_the_processes_under_torchrun_standalone():
    s = make_search(finalTraining={"nodes": 2, "gpusPerNode": 0})
    assert _launcher(s, "final") == [*TORCHRUN, "--standalone", "--nproc-per-node", "2"]
    assert _launcher(s, "report") == [] and _launcher(make_search(), "final") == []


def test_torchrun_keeps_the_bad_input_exit_code(tmp_path):
    """torchrun itself exits 1 when a worker fails; the jobs' wrapper exits with the bad-input code instead,
    so the podFailurePolicy's FailJob rule sees it."""
    script = tmp_path / "worker.py"
    script.write_text("import os, sys\nsys.exit(65 if os.environ['RANK'] == '1' else 0)\n")
    argv = [sys.executable, "-m", "mixtura_jobs", "torchrun", "--standalone", "--nproc-per-node", "2", str(script)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == layout.EXIT_BAD_INPUT, result.stdout + result.stderr
    script.write_text("import sys\nsys.exit(3)\n")
    assert subprocess.run(argv, capture_output=True, timeout=120, check=False).returncode == 3


def test_a_missing_jobset_crd_is_a_condition_and_nothing_is_created_until_it_is_installed():
    s, ds = make(method="uniform")
    s.spec.final_training.gpus_per_node = 4
    world = World()
    world.observed = replace(world.observed, launcher_problem=jobset_missing_message())
    warnings = []
    for _ in range(10):
        decision = reconcile(s, ds, world.observed, NOW)
        warnings += [e for e in decision.events if e.reason == "LauncherUnavailable"]
        world.apply(decision.actions)
        s = s.model_copy(update={"status": decision.status})
        for key in world.running():
            world.finish(key)
    assert "final" not in world.created and s.status.phase == Phase.TRAINING
    condition = next(c for c in s.status.conditions if c.type == "LauncherUnavailable")
    assert condition.status == "True" and "spec.finalTraining.launcher" in condition.message
    assert "jobsets.jobset.x-k8s.io" in condition.message
    assert len(warnings) == 1 and "spec.finalTraining.launcher" in warnings[0].message, "one event, on entering"
    world.observed = replace(world.observed, launcher_problem=None)
    decision = reconcile(s, ds, world.observed, datetime(2026, 1, 2, tzinfo=UTC))
    (final,) = [a for a in decision.actions if isinstance(a, CreateJob) and a.step_key == "final"]
    assert final.gpus == 4, "each node's pod requests gpusPerNode GPUs"
    assert next(c for c in decision.status.conditions if c.type == "LauncherUnavailable").status == "False"


@pytest.mark.parametrize(
    ("target", "trainer", "model"),
    [("tiny", None, "final/model.pt"), ("hf", None, "final/model"), ("tiny", "user", None)],
)
def test_status_names_the_final_model(target, trainer, model):
    s, ds = make(method="uniform")
    s.spec.models.target.backend = target
    if trainer:
        s.spec.final_training.trainer = Trainer(command=["python", "train.py"])
    world = World()
    world.observed = replace(world.observed, done=frozenset({"final"}), jobs={"final": JobState("Succeeded")})
    status = reconcile(s, ds, world.observed, NOW).status
    assert status.artifacts.model == (None if model is None else f"file:///x/{model}")
