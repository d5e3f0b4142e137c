"""Fixtures that start the real servers: the Kubernetes control plane, the S3 server, Prometheus."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from testbed.cluster import REPO, ControlPlane, start_control_plane
from testbed.s3 import CREDENTIALS, S3Server, start_s3


@pytest.fixture(scope="module")
def one_torch_thread():
    """As the job CLIs do: on a small shared machine, more intra-op threads only contend with each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory) -> ControlPlane:
    try:
        plane = start_control_plane(tmp_path_factory.mktemp("controlplane"))
    except RuntimeError as error:
        if "build-testbed.sh failed" in str(error):
            pytest.skip(f"!!! TEST BED BINARIES COULD NOT BE BUILT — control-plane tests skipped !!!\n{error}")
        raise
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def kube(control_plane):
    from kubernetes import config

    return config.new_client_from_config(str(control_plane.kubeconfig_path))


@pytest.fixture(scope="session")
def pod_runner(control_plane, kube, tmp_path_factory):
    from kubernetes import client

    from testbed.podrunner import PodRunner

    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "PYTHONPATH", "LANG", "TMPDIR")}
    # Pods would size torch's threads by their CPU request; here they all share the machine's few cores.
    keep["MIXTURA_THREADS"] = "1"
    runner = PodRunner(client.CoreV1Api(kube), tmp_path_factory.mktemp("pods"), REPO, keep).start()
    yield runner
    runner.stop()


@pytest.fixture(scope="session")
def s3_server() -> S3Server:
    for key, value in CREDENTIALS.items():
        os.environ.setdefault(key, value)
    server = start_s3()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_bucket(s3_server) -> str:
    name = f"mixtura-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def namespace(control_plane) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    control_plane.kubectl("create", "serviceaccount", "default", "-n", name, check=False)
    return name


def pytest_report_header(config) -> str:
    return f"mixtura repo: {Path(REPO)}"
