"""Issue 2: the test bed itself — real control plane with KWOK GPU nodes, pod runner, S3, Prometheus, Helm."""

from __future__ import annotations

import subprocess
import threading
import time
from wsgiref.simple_server import make_server

import pytest
import yaml

from testbed.podrunner import EXIT_CODE, OUTPUT
from testbed.procs import free_port


def job(name: str, command: list[str], gpus: int, backoff: int = 0) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": backoff,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "main",
                                "image": "python:3.11",
                                "command": command,
                                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                            }
                        ],
                    }
                },
            },
        }
    )


def submit(plane, namespace: str, *args, **kwargs) -> None:
    plane.kubectl("apply", "-n", namespace, "-f", "-", input=job(*args, **kwargs))


def wait_condition(plane, kind_name: str, namespace: str, condition: str, timeout: int = 90) -> None:
    result = plane.kubectl(
        "wait",
        kind_name,
        "-n",
        namespace,
        f"--for=condition={condition}",
        f"--timeout={timeout}s",
        check=False,
    )
    assert result.returncode == 0, f"{kind_name} never {condition}: {result.stderr}\n{plane.logs}"


def pods_of(plane, job_name: str, namespace: str) -> list[dict]:
    out = plane.kubectl("get", "pods", "-n", namespace, "-l", f"job-name={job_name}", "-o", "yaml").stdout
    return yaml.safe_load(out)["items"]


@pytest.mark.controlplane
def test_gpu_job_completes_and_output_is_recorded(control_plane, pod_runner, namespace):
    submit(control_plane, namespace, "hello", ["python", "-c", "print('ok')"], gpus=1)
    wait_condition(control_plane, "job/hello", namespace, "Complete")
    (pod,) = pods_of(control_plane, "hello", namespace)
    assert pod["spec"]["nodeName"].startswith("kwok-gpu-")
    assert pod["metadata"]["annotations"][EXIT_CODE] == "0"
    assert pod["metadata"]["annotations"][OUTPUT].strip() == "ok"
    assert pod["status"]["phase"] == "Succeeded"


@pytest.mark.controlplane
def test_failing_job_fails_with_its_exit_code(control_plane, pod_runner, namespace):
    submit(control_plane, namespace, "crash", ["python", "-c", "raise SystemExit(3)"], gpus=1, backoff=0)
    wait_condition(control_plane, "job/crash", namespace, "Failed")
    (pod,) = pods_of(control_plane, "crash", namespace)
    assert pod["metadata"]["annotations"][EXIT_CODE] == "3"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert pod["status"]["phase"] == "Failed"


@pytest.mark.controlplane
def test_indexed_job_pods_know_their_index_and_reach_node_0_on_loopback(control_plane, pod_runner, namespace):
    """Issue 14: the pods of an Indexed Job in a subdomain get their index and hostname, and `<job>-0.<subdomain>`
    with its port becomes 127.0.0.1 and one free port, the same for both (the test bed's address override)."""
    show = "import os, sys; print(os.environ['JOB_COMPLETION_INDEX'], os.environ['HOSTNAME'], sys.argv[1])"
    manifest = yaml.safe_load(job("peer", ["python", "-c", show, "peer-0.peers:29400"], gpus=0))
    manifest["spec"].update(completionMode="Indexed", completions=2, parallelism=2)
    manifest["spec"]["template"]["spec"]["subdomain"] = "peers"
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    wait_condition(control_plane, "job/peer", namespace, "Complete")
    pods = pods_of(control_plane, "peer", namespace)
    outputs = sorted(pod["metadata"]["annotations"][OUTPUT].split() for pod in pods)
    assert [output[:2] for output in outputs] == [["0", "peer-0"], ["1", "peer-1"]]
    (address,) = {output[2] for output in outputs}
    assert address.startswith("127.0.0.1:") and address != "127.0.0.1:29400"


@pytest.mark.controlplane
def test_pod_asking_for_too_many_gpus_is_unschedulable(control_plane, namespace):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "greedy"},
        "spec": {"containers": [{"name": "main", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "16"}}}]},
    }
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(pod))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = yaml.safe_load(control_plane.kubectl("get", "pod", "greedy", "-n", namespace, "-o", "yaml").stdout)[
            "status"
        ]
        scheduled = [c for c in status.get("conditions", []) if c["type"] == "PodScheduled"]
        if scheduled and scheduled[0]["reason"] == "Unschedulable":
            assert status["phase"] == "Pending"
            assert "nvidia.com/gpu" in scheduled[0]["message"]
            return
        time.sleep(0.5)
    pytest.fail(f"pod never reported Unschedulable: {status}")


@pytest.mark.controlplane
def test_foreground_deletion_removes_the_jobs_pods(control_plane, pod_runner, namespace):
    submit(control_plane, namespace, "sleeper", ["python", "-c", "import time; time.sleep(600)"], gpus=1)
    deadline = time.monotonic() + 60
    while not pods_of(control_plane, "sleeper", namespace):
        assert time.monotonic() < deadline, "the job controller never made a pod"
        time.sleep(0.3)
    control_plane.kubectl("delete", "job", "sleeper", "-n", namespace, "--cascade=foreground", "--timeout=60s")
    assert pods_of(control_plane, "sleeper", namespace) == []


@pytest.mark.s3
def test_s3_round_trip(s3_server, s3_bucket):
    s3 = s3_server.client()
    s3.put_object(Bucket=s3_bucket, Key="a/b.txt", Body=b"hello")
    assert s3.get_object(Bucket=s3_bucket, Key="a/b.txt")["Body"].read() == b"hello"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="a/")["Contents"]] == ["a/b.txt"]
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=s3_bucket, Key="a/missing")


@pytest.mark.prometheus
def test_prometheus_scrapes_an_exporter(tmp_path):
    from prometheus_client import CollectorRegistry, Gauge, make_wsgi_app

    from testbed.prom import start_prometheus

    registry = CollectorRegistry()
    Gauge("testbed_answer", "A value the test exports", registry=registry).set(42)
    port = free_port()
    server = make_server("127.0.0.1", port, make_wsgi_app(registry))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    prometheus = start_prometheus(tmp_path, [f"127.0.0.1:{port}"])
    try:
        (series,) = prometheus.wait_for_series("testbed_answer")
        assert float(series["value"][1]) == 42
    finally:
        prometheus.stop()
        server.shutdown()


@pytest.mark.controlplane
def test_helm_runs_from_the_built_binary(control_plane):
    out = subprocess.run(
        [str(control_plane.bin_dir / "helm"), "version", "--short"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("v3.")
