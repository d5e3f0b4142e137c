"""Issue 19: the pod of every kind of step Job is admitted by the real API server in a namespace that enforces
the PodSecurity `restricted` profile (the whole search runs there in tests/test_operator_e2e.py)."""

from __future__ import annotations

import pytest
import yaml

from malformed import search
from mixtura_operator.api.mixturesearch import MixtureSearch
from mixtura_operator.executors.kubernetes import job_manifest
from mixtura_operator.reconcile import CreateJob

pytestmark = pytest.mark.controlplane
STEPS = [
    CreateJob("embed/digits", (), 1),
    CreateJob("score"),
    CreateJob("cells", (), 1),
    CreateJob("propose/0", ("0",)),
    CreateJob("trial/000", ("000",), 1),
    CreateJob("final", (), 1),
    CreateJob("report"),
]


@pytest.mark.parametrize("job", STEPS, ids=lambda j: j.step_key)
def test_step_pods_pass_the_restricted_profile(control_plane, namespace, job):
    control_plane.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    body = search(resources={"tolerations": [{"operator": "Exists"}], "memory": "16G"})
    body["metadata"].update(namespace=namespace, uid="00000000-0000-0000-0000-000000000000")
    manifest = job_manifest(MixtureSearch.model_validate(body), job, "s3://bucket/runs/x")
    template = manifest["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", **template["metadata"]},
        "spec": template["spec"],
    }
    result = control_plane.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump(pod), check=False
    )
    assert result.returncode == 0, result.stderr
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits["memory"] == "16G" and manifest["spec"]["ttlSecondsAfterFinished"] == 3600


def test_a_plain_pod_is_refused_there(control_plane, namespace):
    """The profile is enforced: without the Jobs' security context a pod is refused."""
    control_plane.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    result = control_plane.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump(pod), check=False
    )
    assert result.returncode != 0 and "violates PodSecurity" in result.stderr
