"""Device placement and threads: CPU and nothing of CUDA when there is no GPU, threads from the Job's CPU
request (as the Kubernetes executor passes it and the kubelet resolves it), GPUs requested only when asked."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from malformed import search
from mixtura_jobs.data.demo import make_demo_corpus
from mixtura_jobs.data.npz_shards import read_domain
from mixtura_jobs.training import device
from mixtura_jobs.training.trainer import train_on_mixture
from mixtura_operator.api.mixturesearch import MixtureSearch
from mixtura_operator.executors.kubernetes import CPU_REQUEST_ENV, job_manifest
from mixtura_operator.reconcile import CreateJob
from testbed.podrunner import _resource


@pytest.fixture
def no_cuda(monkeypatch):
    """A machine without CUDA, where any CUDA call beyond asking fails the test."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def refuse(*args, **kwargs):
        raise AssertionError("CUDA was requested on a machine without it")

    for name in ("is_bf16_supported", "get_device_name", "init", "set_device", "current_device"):
        monkeypatch.setattr(torch.cuda, name, refuse)


def test_without_cuda_everything_stays_on_the_cpu_in_fp32(no_cuda, tmp_path, capsys) -> None:
    placement = device.select_placement()
    assert placement.device == torch.device("cpu") and placement.precision == "fp32"
    make_demo_corpus(tmp_path, samples_per_domain=8, seed=0)
    domains = {name: read_domain(tmp_path / name) for name in ("digits", "text")}
    seen = []
    metrics = train_on_mixture(
        domains,
        {"digits": 1.0, "text": 1.0},
        {"steps": 2, "batch_size": 4, "log_every": 1},
        seed=0,
        placement=placement,
        on_trained=lambda backend, _: seen.extend(p.device for p in backend.model.parameters()),
    )
    assert set(seen) == {torch.device("cpu")}
    assert metrics["device"] == "cpu" and metrics["precision"] == "fp32" and metrics["backend"] == "tiny"


def test_step_start_prints_device_precision_and_threads(no_cuda, capsys) -> None:
    threads = torch.get_num_threads()
    try:
        device.configure_process({device.CPU_REQUEST_ENV: "2"})
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert capsys.readouterr().out.strip() == "device=cpu precision=fp32 threads=2"


@pytest.mark.parametrize(
    ("env", "threads"),
    [
        ({}, 1),  # local runs: one thread, results bit-identical and steps side by side
        ({device.CPU_REQUEST_ENV: "4"}, 4),
        ({device.CPU_REQUEST_ENV: "1.5"}, 2),
        ({device.CPU_REQUEST_ENV: "500m"}, 1),
        ({device.CPU_REQUEST_ENV: "8", device.THREADS_ENV: "3"}, 3),
        ({device.CPU_REQUEST_ENV: "8", "LOCAL_WORLD_SIZE": "4"}, 2),  # torchrun's processes share the pod's
    ],
)
def test_thread_count(env: dict, threads: int) -> None:
    assert device.thread_count(env) == threads


@pytest.mark.parametrize(("cpu", "threads"), [("6", 6), ("1500m", 2), ("250m", 1)])
def test_the_jobs_cpu_request_sets_the_thread_count(cpu: str, threads: int) -> None:
    """The executor hands the container's CPU request to the step by the Downward API; resolved as the kubelet
    does (whole cores, rounded up), it is the step's thread count."""
    spec = MixtureSearch.model_validate(search(resources={"cpu": cpu, "gpusPerJob": 0}))
    manifest = job_manifest(spec, CreateJob("trial/000", ("--trial", "000")), "s3://bucket/runs/x")
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    (var,) = [v for v in container["env"] if v["name"] == CPU_REQUEST_ENV]
    ref = var["valueFrom"]["resourceFieldRef"]
    assert ref["containerName"] == container["name"]
    resolved = _resource(
        SimpleNamespace(resources=SimpleNamespace(requests=container["resources"]["requests"])),
        SimpleNamespace(resource=ref["resource"], divisor=ref["divisor"]),
    )
    assert device.thread_count({CPU_REQUEST_ENV: resolved}) == threads
    assert CPU_REQUEST_ENV == device.CPU_REQUEST_ENV


def test_gpus_per_job_zero_requests_no_gpu() -> None:
    spec = MixtureSearch.model_validate(search(resources={"gpusPerJob": 0}))
    manifest = job_manifest(spec, CreateJob("trial/000", ("--trial", "000"), gpus=0), "s3://bucket/runs/x")
    resources = manifest["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert "nvidia.com/gpu" not in resources["limits"] and resources["requests"]["cpu"] == "2"
