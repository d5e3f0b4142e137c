"""Issues 4 and 6 on the test bed: the chart installed by the built helm, the operator authenticated as the
chart's ServiceAccount, searches run as real Jobs on KWOK GPU nodes with artifacts in the S3 server, and a
real Prometheus scraping the operator."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from corpora import upload_real_corpora

from malformed import CLUSTER, DUPLICATE, MALFORMED, RAW, WELL_FORMED
from mixtura_operator import layout
from mixtura_operator.controller import parse_search
from mixtura_operator.executors.kubernetes import KubernetesExecutor
from testbed.cluster import REPO, kubeconfig
from testbed.podrunner import EXIT_CODE, OUTPUT
from testbed.procs import free_port, http_status, operator_argv
from testbed.prom import start_prometheus
from testbed.s3 import CREDENTIALS
from testbed.s3_iam import start_iam_s3

pytestmark = [pytest.mark.controlplane, pytest.mark.s3, pytest.mark.prometheus, pytest.mark.slow]
NS = "mixtura-e2e"
RESTRICTED = "pod-security.kubernetes.io/enforce"
# The chart's admission lists for this test bed (WELL_FORMED names one more image and Secret of each kind).
IMAGES = [
    r"^mixtura/jobs:[a-z0-9.-]+$",
    r"^registry\.local:5000/mixtura/jobs@sha256:[0-9a-f]{64}$",
    r"^team/trainer:[0-9]+$",
]
# The last two: Secrets of users of the IAM-checking S3 server (test_the_data_check_reads_with_the_searchs_secret).
SECRETS = ["s3-credentials", "team.s3-creds", "reader-creds", "other-creds"]
DOMAINS = [
    ("digits", "captioning", ["image", "text"]),
    ("text", "text", ["text"]),
    ("video", "captioning", ["text", "video"]),
]


class Operator:
    """The operator as a local process, restartable, with the chart ServiceAccount's token."""

    def __init__(self, kubeconfig_path: Path, env: dict[str, str], log: Path) -> None:
        self.kubeconfig_path, self.env, self.log = kubeconfig_path, env, log
        self.metrics_port, self.health_port = free_port(), free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        argv = operator_argv(NS, self.metrics_port, self.health_port)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env={**self.env, "KUBECONFIG": str(self.kubeconfig_path)}
            )

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-60:])


@pytest.fixture(scope="module")
def installed(control_plane, pod_runner, s3_server, s3_bucket, tmp_path_factory):
    """Chart installed, data uploaded to S3, credentials Secret made, operator running as the chart's SA."""
    helm = str(control_plane.bin_dir / "helm")
    subprocess.run(
        [
            helm,
            "install",
            "mixtura",
            str(REPO / "charts" / "mixtura"),
            "--namespace",
            NS,
            "--create-namespace",
            "--kubeconfig",
            str(control_plane.kubeconfig_path),
            "--set",
            "fullnameOverride=mixtura",
            "--set-json",
            f"admission.allowedImages={json.dumps(IMAGES)}",
            "--set-json",
            f"admission.allowedCredentialSecrets={json.dumps(SECRETS)}",
            "--wait=false",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    # Issue 19: every Job of every search below must pass the `restricted` profile, or its pods are refused.
    control_plane.kubectl("label", "namespace", NS, f"{RESTRICTED}=restricted", "--overwrite")
    wait_for_admission_policy(control_plane)
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/mixturesearches.mixtura.dev",
        "crd/domainsets.mixtura.dev",
        "--timeout=60s",
    )
    token = control_plane.kubectl("create", "token", "mixtura", "-n", NS, "--duration=2h").stdout.strip()
    work = tmp_path_factory.mktemp("operator")
    sa_kubeconfig = work / "sa.kubeconfig"
    sa_kubeconfig.write_text(yaml.safe_dump(kubeconfig(control_plane.server, control_plane.pki["ca"], token=token)))

    from mixtura_jobs.data.demo import make_demo_corpus
    from mixtura_operator.store import open_store

    corpus = make_demo_corpus(work / "data", samples_per_domain=16, seed=0)
    store = open_store(f"s3://{s3_bucket}", endpoint_url=s3_server.endpoint)
    for domain in corpus:
        store.upload_dir(Path(domain["uri"].removeprefix("file://")), f"data/{domain['name']}")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s3-credentials"},
        "stringData": {k: CREDENTIALS[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
    }
    control_plane.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(secret))
    env = {
        **os.environ,
        **CREDENTIALS,
        "POD_NAMESPACE": NS,
        "POD_NAME": "operator-under-test",
        "MIXTURA_S3_ENDPOINT": s3_server.endpoint,
    }
    operator = Operator(sa_kubeconfig, env, work / "operator.log")
    operator.start()
    standby = Operator(sa_kubeconfig, {**env, "POD_NAME": "standby-under-test"}, work / "standby.log")
    prometheus = start_prometheus(work / "prometheus", [f"127.0.0.1:{operator.metrics_port}"])
    yield {
        "operator": operator,
        "bucket": s3_bucket,
        "endpoint": s3_server.endpoint,
        "store": store,
        "prometheus": prometheus,
        "standby": standby,
        "s3": s3_server,
    }
    prometheus.stop()
    operator.kill()


def dry_run(plane, text: str | bytes):
    if isinstance(text, str):
        return plane.kubectl("create", "--dry-run=server", "-n", NS, "-f", "-", input=text, check=False)
    with tempfile.NamedTemporaryFile(suffix=".yaml") as file:
        file.write(text)
        file.flush()
        return plane.kubectl("create", "--dry-run=server", "-n", NS, "-f", file.name, check=False)


def wait_for_admission_policy(plane, timeout: float = 60) -> None:
    """The API server loads a new ValidatingAdmissionPolicy asynchronously."""
    probe = yaml.safe_dump(CLUSTER[0][1])
    deadline = time.monotonic() + timeout
    while dry_run(plane, probe).returncode == 0:
        assert time.monotonic() < deadline, "the chart's ValidatingAdmissionPolicy never took effect"
        time.sleep(1)


def manifests(name: str, bucket: str, endpoint: str, **spec) -> str:
    domainset = {
        "apiVersion": "mixtura.dev/v1alpha1",
        "kind": "DomainSet",
        "metadata": {"name": "corpus"},
        "spec": {
            "domains": [
                {"name": n, "uri": f"s3://{bucket}/data/{n}", "modalities": m, "taskType": t, "weight": 1.0}
                for n, t, m in DOMAINS
            ]
        },
    }
    search = {
        "apiVersion": "mixtura.dev/v1alpha1",
        "kind": "MixtureSearch",
        "metadata": {"name": name},
        "spec": {
            "domainSetRef": {"name": "corpus"},
            "method": "madmix+mixatlas",
            "madmix": {"samplesPerDomain": 16},
            "budget": {"maxTrials": 4, "parallelTrials": 2, "maxFailedTrials": 2, "proxySteps": 4},
            "resources": {"gpusPerJob": 1, "backoffLimit": 0, "image": "mixtura/jobs:test"},
            "artifacts": {"uri": f"s3://{bucket}/runs", "endpointUrl": endpoint, "credentialsSecret": "s3-credentials"},
            "finalTraining": {"enabled": True, "steps": 4},
            **spec,
        },
    }
    return yaml.safe_dump_all([domainset, search])


def get(plane, name: str) -> dict:
    return json.loads(plane.kubectl("get", "mixturesearch", name, "-n", NS, "-o", "json").stdout)


def search_events(plane, name: str) -> list[tuple[str, str]]:
    out = plane.kubectl(
        "get", "events", "-n", NS, "--field-selector", f"involvedObject.name={name}", "-o", "json"
    ).stdout
    return [(e["reason"], e["message"]) for e in json.loads(out)["items"]]


def step_jobs(plane, name: str, step: str) -> list[dict]:
    out = plane.kubectl(
        "get", "jobs", "-n", NS, "-l", f"mixtura.dev/search={name},mixtura.dev/step={step}", "-o", "json"
    ).stdout
    return json.loads(out)["items"]


def proxy_jobs(plane, name: str) -> list[dict]:
    return step_jobs(plane, name, "proxy-train")


def wait_phase(plane, operator, name, phases, timeout=420, each=None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = get(plane, name)
        if each:
            each(body)
        if body.get("status", {}).get("phase") in phases:
            return body
        time.sleep(1)
    raise AssertionError(f"{name} never reached {phases}: {body.get('status')}\n{operator.tail()}\n{plane.logs}")


def test_search_succeeds_across_two_operator_restarts(control_plane, installed):
    """Acceptance 2 and 3: Succeeded with the operator killed twice (Embedding, Searching); artifacts in S3;
    printer columns; never more than 2 proxy Jobs at once; one Job (and one pod) per trial."""
    plane, operator = control_plane, installed["operator"]
    plane.kubectl("apply", "-n", NS, "-f", "-", input=manifests("restarts", installed["bucket"], installed["endpoint"]))
    most_active = [0]

    def count_active(_body):
        active = [
            j
            for j in proxy_jobs(plane, "restarts")
            if not j["status"].get("succeeded") and not j["status"].get("failed")
        ]
        most_active[0] = max(most_active[0], len(active))

    for phase in ("Embedding", "Searching"):
        wait_phase(plane, operator, "restarts", {phase}, each=count_active)
        operator.kill()
        time.sleep(2)
        operator.start()
    body = wait_phase(plane, operator, "restarts", {"Succeeded", "Failed"}, each=count_active)
    assert body["status"]["phase"] == "Succeeded", body["status"]
    assert most_active[0] <= 2
    jobs = proxy_jobs(plane, "restarts")
    assert sorted(j["metadata"]["labels"]["mixtura.dev/trial"] for j in jobs) == ["000", "001", "002", "003"]
    for job in jobs:
        pods = plane.kubectl(
            "get", "pods", "-n", NS, "-l", f"job-name={job['metadata']['name']}", "-o", "name"
        ).stdout.split()
        assert len(pods) == 1 and job["status"]["succeeded"] == 1
    status = body["status"]
    assert status["trials"]["succeeded"] == 4 and status["trials"]["progress"] == "4/4"
    root = status["artifacts"]["root"]
    assert root.startswith(f"s3://{installed['bucket']}/runs/{NS}/restarts/")
    keys = installed["store"].list(root.removeprefix(f"s3://{installed['bucket']}/"))
    assert any(k.endswith("report/index.html") for k in keys) and any(k.endswith("final/metrics.json") for k in keys)
    assert abs(sum(status["finalWeights"].values()) - 1) < 1e-9
    rows = [line.split() for line in plane.kubectl("get", "mixturesearches", "-n", NS).stdout.strip().split("\n")]
    assert rows[0] == ["NAME", "PHASE", "METHOD", "TRIALS", "BEST", "AGE"]
    assert next(r for r in rows if r[0] == "restarts")[:4] == ["restarts", "Succeeded", "madmix+mixatlas", "4/4"]
    events = search_events(plane, "restarts")
    assert {"Embedding", "Scoring", "Succeeded"} <= {reason for reason, _ in events}


def test_a_failing_trial_fails_the_search_with_an_event(control_plane, installed):
    plane, operator = control_plane, installed["operator"]
    text = manifests(
        "failing",
        installed["bucket"],
        installed["endpoint"],
        method="random",
        # One failure is more than maxFailedTrials 0 (Katib's semantics).
        budget={"maxTrials": 2, "parallelTrials": 2, "maxFailedTrials": 0, "proxySteps": 4},
        models={"proxy": {"config": {"failTrials": ["000"]}}},
    )
    plane.kubectl("apply", "-n", NS, "-f", "-", input=text)
    body = wait_phase(plane, operator, "failing", {"Failed", "Succeeded"})
    ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    assert body["status"]["phase"] == "Failed" and ready["reason"] == "TooManyFailedTrials", body["status"]
    events = search_events(plane, "failing")
    assert any(reason == "TrialFailed" and message.startswith("trial/000") for reason, message in events)


def test_trials_run_the_users_trainer_and_best_trial_follows_a_maximised_objective(control_plane, installed):
    """Issue 20 on the test bed: every trial Job runs the trainer command (tests/trainers) with the contract's
    variables, the final Job picks its mixture in an init container first, artifacts in S3; bestTrial is the
    trial with the most accuracy (the trainer reports the `text` weight as its accuracy)."""
    plane, operator, store = control_plane, installed["operator"], installed["store"]
    trainer = {"image": "team/trainer:1", "command": ["python", str(REPO / "tests/trainers/contract_trainer.py")]}
    text = manifests(
        "own-trainer",
        installed["bucket"],
        installed["endpoint"],
        method="random",
        search={"seed": 5},
        trainer=trainer,
        objective={"metric": "accuracy", "goal": "maximize"},
    )
    plane.kubectl("apply", "-n", NS, "-f", "-", input=text)
    body = wait_phase(plane, operator, "own-trainer", {"Succeeded", "Failed"})
    status = body["status"]
    assert status["phase"] == "Succeeded", status
    prefix = status["artifacts"]["root"].removeprefix(f"s3://{installed['bucket']}/")
    received = {}
    for tid in ("000", "001", "002", "003"):
        received[tid] = store.get_json(f"{prefix}/trials/{tid}/metrics.json")["received"]
        mixture = store.get_json(f"{prefix}/trials/{tid}/mixture.json")
        assert received[tid]["seed"] == 5 and received[tid]["weights"] == mixture["weights"]
        assert received[tid]["cells"] and sum(received[tid]["drawn"].values()) == 8 * 4
    final = store.get_json(f"{prefix}/final/metrics.json")["received"]
    assert final["weights"] == store.get_json(f"{prefix}/final/mixture.json")["weights"] and final["seed"] == 5
    assert status["objective"] == "max accuracy"
    assert status["bestTrial"]["id"] == max(sorted(received), key=lambda t: received[t]["weights"]["text"])
    (job,) = proxy_jobs(plane, "own-trainer")[:1]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "team/trainer:1"
    wide = plane.kubectl("get", "mixturesearch", "own-trainer", "-n", NS, "-o", "wide").stdout.split("\n")
    assert "OBJECTIVE" in wide[0].split() and "max accuracy" in wide[1]


def test_async_proposals_refill_freed_slots_while_a_slow_trial_runs(control_plane, installed):
    """Issue 18 on the test bed: with trial 000 slow, the slot 001 frees is proposed at once, conditioned on the
    running 000, and 002 runs beside 000 (rounds would run only 001 beside it); never more than parallelTrials
    trial Jobs are active, and no proposal names a running trial."""
    plane, operator, store = control_plane, installed["operator"], installed["store"]
    trainer = {
        "image": "team/trainer:1",
        "command": ["python", str(REPO / "tests/trainers/contract_trainer.py")],
        "env": {"SLOW_TRIALS": "000=90"},
    }
    text = manifests(
        "async",
        installed["bucket"],
        installed["endpoint"],
        method="mixatlas",
        search={"space": "domains", "schedule": "async"},
        budget={"maxTrials": 4, "parallelTrials": 2, "maxFailedTrials": 0, "proxySteps": 2},
        trainer=trainer,
        finalTraining={"enabled": False},
    )
    plane.kubectl("apply", "-n", NS, "-f", "-", input=text)
    most_active = [0]

    def sample(_body):
        running = [j for j in proxy_jobs(plane, "async") if active(j)]
        most_active[0] = max(most_active[0], len(running))

    body = wait_phase(plane, operator, "async", {"Succeeded", "Failed"}, timeout=900, each=sample)
    assert body["status"]["phase"] == "Succeeded", body["status"]
    # 002 started before 000 ended, by the Jobs' own clocks (a quick trial can start and end between two
    # samples): 002 beside 000 is what rounds never do.
    times = {j["metadata"]["labels"]["mixtura.dev/trial"]: j["status"] for j in proxy_jobs(plane, "async")}
    assert times["002"]["startTime"] < times["000"]["completionTime"] and most_active[0] == 2
    prefix = body["status"]["artifacts"]["root"].removeprefix(f"s3://{installed['bucket']}/")
    proposal = store.get_json(f"{prefix}/proposals/round-1/proposal.json")
    assert proposal["trials"] == ["002"] and proposal["pending"] == ["000"]
    later = store.get_json(f"{prefix}/proposals/round-2/proposal.json")
    assert later["trials"] == ["003"] and not set(later["pending"]) & {"001", "002", "003"}
    assert "async" in store.get_bytes(f"{prefix}/report/index.html").decode()


def test_unschedulable_jobs_show_as_a_condition(control_plane, installed):
    plane, operator = control_plane, installed["operator"]
    text = manifests(
        "greedy",
        installed["bucket"],
        installed["endpoint"],
        resources={"gpusPerJob": 16, "backoffLimit": 0, "image": "mixtura/jobs:test"},
    )
    plane.kubectl("apply", "-n", NS, "-f", "-", input=text)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        conditions = get(plane, "greedy").get("status", {}).get("conditions", [])
        degraded = [c for c in conditions if c["type"] == "Degraded" and c["reason"] == "Unschedulable"]
        if degraded:
            assert "nvidia.com/gpu" in degraded[0]["message"]
            break
        time.sleep(1)
    else:
        raise AssertionError(f"no Unschedulable condition within 30 s: {conditions}\n{operator.tail()}")
    plane.kubectl("delete", "mixturesearch", "greedy", "-n", NS, "--wait=true", "--timeout=60s")
    deadline = time.monotonic() + 60
    while plane.kubectl("get", "jobs", "-n", NS, "-l", "mixtura.dev/search=greedy", "-o", "name").stdout.strip():
        assert time.monotonic() < deadline, "the garbage collector never removed the search's Jobs"
        time.sleep(1)


@pytest.mark.parametrize(
    ("what", "manifest", "field"), [*MALFORMED, DUPLICATE], ids=lambda v: v if isinstance(v, str) else ""
)
def test_the_api_server_refuses_malformed_manifests(control_plane, installed, what, manifest, field):
    result = control_plane.kubectl(
        "create", "--dry-run=server", "-n", NS, "-f", "-", input=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode != 0, f"{what}: accepted"
    assert field in result.stderr, f"{what}: {result.stderr}"


@pytest.mark.parametrize(("what", "text", "named"), RAW, ids=lambda v: v if isinstance(v, str) and len(v) < 60 else "")
def test_kubectl_and_the_api_server_refuse_unreadable_files(control_plane, installed, what, text, named):
    result = dry_run(control_plane, text)
    assert result.returncode != 0, f"{what}: accepted"


@pytest.mark.parametrize(
    ("what", "manifest", "field", "validate"), CLUSTER, ids=lambda v: v if isinstance(v, str) else ""
)
def test_the_chart_policy_refuses_what_a_cluster_must_not_run(
    control_plane, installed, what, manifest, field, validate
):
    result = dry_run(control_plane, yaml.safe_dump(manifest))
    assert result.returncode != 0, f"{what}: accepted"
    assert field in result.stderr, f"{what}: {result.stderr}"


def test_jobs_pass_the_restricted_pod_security_profile(control_plane, installed):
    """Acceptance 1 (with the searches above, which all ran in this namespace): PodSecurity `restricted` is
    enforced here, a plain pod is refused, and the Jobs' pods were admitted and ran."""
    plane = control_plane
    assert json.loads(plane.kubectl("get", "namespace", NS, "-o", "json").stdout)["metadata"]["labels"][RESTRICTED] == (
        "restricted"
    )
    plain = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain"},
        "spec": {"containers": [{"name": "c", "image": "mixtura/jobs:test"}]},
    }
    refused = dry_run(plane, yaml.safe_dump(plain))
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr
    pods = json.loads(
        plane.kubectl("get", "pods", "-n", NS, "-l", "app.kubernetes.io/managed-by=mixtura", "-o", "json").stdout
    )["items"]
    assert len(pods) >= 8 and {p["status"]["phase"] for p in pods} <= {"Succeeded", "Failed", "Running", "Pending"}
    assert any(p["status"]["phase"] == "Succeeded" for p in pods)
    for pod in pods:
        assert pod["spec"]["securityContext"]["runAsNonRoot"] and pod["spec"]["automountServiceAccountToken"] is False


def test_the_operator_refuses_cross_object_problems_with_a_condition(control_plane, installed):
    """Manual weights are a rule across the DomainSet and the search: no schema holds it, the operator does."""
    plane, operator = control_plane, installed["operator"]
    docs = list(
        yaml.safe_load_all(manifests("unweighted", installed["bucket"], installed["endpoint"], method="manual"))
    )
    docs[0]["metadata"]["name"] = "unweighted"
    for domain in docs[0]["spec"]["domains"]:
        del domain["weight"]
    docs[1]["spec"]["domainSetRef"]["name"] = "unweighted"
    plane.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump_all(docs))
    body = wait_phase(plane, operator, "unweighted", {"Failed", "Succeeded"}, timeout=60)
    ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidInput" and "spec.domains[0].weight" in ready["message"], ready


@pytest.mark.parametrize(("what", "manifest"), WELL_FORMED, ids=lambda v: v if isinstance(v, str) else "")
def test_the_api_server_accepts_well_formed_manifests(control_plane, installed, what, manifest):
    result = control_plane.kubectl(
        "create", "--dry-run=server", "-n", NS, "-f", "-", input=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode == 0, f"{what}: {result.stderr}"


def test_spec_changes_are_refused(control_plane, installed):
    text = manifests(
        "immutable", installed["bucket"], installed["endpoint"], method="uniform", finalTraining={"enabled": False}
    )
    control_plane.kubectl("apply", "-n", NS, "-f", "-", input=text)
    result = control_plane.kubectl(
        "patch",
        "mixturesearch",
        "immutable",
        "-n",
        NS,
        "--type=merge",
        "-p",
        '{"spec":{"method":"madmix"}}',
        check=False,
    )
    assert result.returncode != 0 and "spec is immutable" in result.stderr


def test_deleting_a_search_with_policy_delete_removes_its_artifacts(control_plane, installed):
    plane, operator, bucket = control_plane, installed["operator"], installed["bucket"]
    artifacts = {
        "uri": f"s3://{bucket}/runs",
        "endpointUrl": installed["endpoint"],
        "credentialsSecret": "s3-credentials",
        "policy": "Delete",
    }
    text = manifests("ephemeral", bucket, installed["endpoint"], method="uniform", artifacts=artifacts)
    plane.kubectl("apply", "-n", NS, "-f", "-", input=text)
    body = wait_phase(plane, operator, "ephemeral", {"Succeeded", "Failed"})
    assert body["status"]["phase"] == "Succeeded", body["status"]
    prefix = body["status"]["artifacts"]["root"].removeprefix(f"s3://{bucket}/")
    assert any(key.endswith("final/model.pt") for key in installed["store"].list(prefix))
    plane.kubectl("delete", "mixturesearch", "ephemeral", "-n", NS, "--wait=true", "--timeout=60s")
    assert installed["store"].list(prefix) == []


def search_of(name: str, domainset: str, bucket: str, endpoint: str, **spec) -> tuple[dict, dict]:
    """The DomainSet and MixtureSearch of `manifests`, with a DomainSet of their own (tests edit it)."""
    corpus, search = yaml.safe_load_all(manifests(name, bucket, endpoint, **spec))
    corpus["metadata"]["name"] = domainset
    search["spec"]["domainSetRef"]["name"] = domainset
    return corpus, search


def patch_spec(plane, name: str, spec: dict, check: bool = True):
    return plane.kubectl(
        "patch", "mixturesearch", name, "-n", NS, "--type=merge", "-p", json.dumps({"spec": spec}), check=check
    )


def jobs_of(plane, name: str) -> list[dict]:
    out = plane.kubectl("get", "jobs", "-n", NS, "-l", f"mixtura.dev/search={name}", "-o", "json").stdout
    return json.loads(out)["items"]


def active(job: dict) -> bool:
    return not any(c["status"] == "True" for c in job["status"].get("conditions", []))


def pods_by_job(plane, name: str) -> dict[str, tuple[str, list[dict]]]:
    """Each Job of the search: its uid and every pod labelled with its name."""
    return {
        job["metadata"]["name"]: (job["metadata"]["uid"], pods_of(plane, f"job-name={job['metadata']['name']}"))
        for job in jobs_of(plane, name)
    }


def describe_pods(pods: list[dict]) -> list[tuple]:
    """Each pod's owner, phase, exit code, conditions and output tail: why a step ran more than one."""
    return [
        (
            p["metadata"]["name"],
            [o["uid"] for o in p["metadata"].get("ownerReferences", [])],
            p["status"].get("phase"),
            p["metadata"].get("annotations", {}).get(EXIT_CODE),
            [(c["type"], c.get("reason")) for c in p["status"].get("conditions", []) if c["status"] == "True"],
            p["metadata"].get("annotations", {}).get(OUTPUT, "")[-500:],
        )
        for p in pods
    ]


def assert_one_pod_per_job(plane, name: str) -> None:
    for job, (_, pods) in pods_by_job(plane, name).items():
        assert len(pods) == 1, f"{job}: {describe_pods(pods)}"


def assert_no_job_recreated_or_failed(plane, name: str) -> None:
    """Every pod belongs to its Job as the operator created it (no step's Job deleted and made again) and none
    failed. A Job may have run a second pod: the job controller can, across an API server restart (kubernetes
    issue 130683: a Job of one completion with two pods); that is Kubernetes' doing, and the search counts the
    step once either way."""
    for job, (uid, pods) in pods_by_job(plane, name).items():
        owners = {o["uid"] for p in pods for o in p["metadata"].get("ownerReferences", [])}
        failed = [p for p in pods if p["metadata"].get("annotations", {}).get(EXIT_CODE, "0") != "0"]
        assert owners == {uid} and not failed, f"{job} ({uid}): {describe_pods(pods)}"


def test_suspend_resume_frozen_domainset_and_a_raised_budget(control_plane, installed):
    """Acceptance 2 and 3: suspended mid-round no Job remains; the DomainSet edited meanwhile (a domain added,
    one removed) changes nothing; resumed, the search succeeds with each trial counted once; maxTrials raised on
    the Succeeded search runs new rounds. The rest of spec stays immutable; maxTrials is never lowered."""
    plane, operator = control_plane, installed["operator"]
    corpus, search = search_of(
        "lifecycle", "frozen", installed["bucket"], installed["endpoint"], search={"space": "domains"}
    )
    plane.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump_all([corpus, search]))
    deadline = time.monotonic() + 420
    while not [j for j in proxy_jobs(plane, "lifecycle") if active(j)]:
        assert time.monotonic() < deadline, f"no trial Job ran\n{operator.tail()}"
        time.sleep(0.5)
    patch_spec(plane, "lifecycle", {"suspend": True})
    body = wait_phase(plane, operator, "lifecycle", {"Suspended"}, timeout=60)
    assert next(c for c in body["status"]["conditions"] if c["type"] == "Suspended")["status"] == "True"
    deadline = time.monotonic() + 60
    while [j for j in jobs_of(plane, "lifecycle") if active(j)]:
        assert time.monotonic() < deadline, "suspension left running Jobs"
        time.sleep(1)
    bucket = installed["bucket"]
    added = {"name": "added", "uri": f"s3://{bucket}/data/text", "modalities": ["text"], "taskType": "text"}
    corpus["spec"]["domains"] = [*corpus["spec"]["domains"][1:], added]
    plane.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(corpus))
    refused = patch_spec(plane, "lifecycle", {"method": "random"}, check=False)
    assert refused.returncode != 0 and "spec is immutable" in refused.stderr
    lowered = patch_spec(plane, "lifecycle", {"budget": {"maxTrials": 2}}, check=False)
    assert lowered.returncode != 0 and "never lowered" in lowered.stderr
    patch_spec(plane, "lifecycle", {"suspend": False})
    body = wait_phase(plane, operator, "lifecycle", {"Succeeded", "Failed"})
    assert body["status"]["phase"] == "Succeeded", body["status"]
    assert body["status"]["trials"] == {**body["status"]["trials"], "succeeded": 4, "failed": 0, "progress": "4/4"}
    assert not [j for j in jobs_of(plane, "lifecycle") if j["metadata"]["name"].endswith("-embed-added")]
    assert set(body["status"]["madmixWeights"]) == {name for name, _, _ in DOMAINS}
    patch_spec(plane, "lifecycle", {"budget": {"maxTrials": 6}})
    wait_phase(plane, operator, "lifecycle", {"Searching"}, timeout=60)
    body = wait_phase(plane, operator, "lifecycle", {"Succeeded", "Failed"})
    assert body["status"]["phase"] == "Succeeded" and body["status"]["trials"]["progress"] == "6/6", body["status"]
    trials = sorted(j["metadata"]["labels"]["mixtura.dev/trial"] for j in proxy_jobs(plane, "lifecycle"))
    assert trials == ["000", "001", "002", "003", "004", "005"]
    assert_one_pod_per_job(plane, "lifecycle")


def test_an_s3_outage_mid_search_degrades_then_clears_and_loses_no_trial(control_plane, installed):
    """Acceptance 1: the S3 server down for 30 s while trials run: Degraded (StoreUnavailable), then clear; the
    search succeeds with every trial counted once and one Job per step (pods retry: backoffLimit 2)."""
    plane, operator, s3 = control_plane, installed["operator"], installed["s3"]
    resources = {"gpusPerJob": 1, "backoffLimit": 2, "image": "mixtura/jobs:test"}
    text = manifests(
        "outage", installed["bucket"], installed["endpoint"], search={"space": "domains"}, resources=resources
    )
    plane.kubectl("apply", "-n", NS, "-f", "-", input=text)
    wait_phase(plane, operator, "outage", {"Searching"})
    s3.go_down()
    try:
        deadline = time.monotonic() + 30
        seen = None
        while time.monotonic() < deadline:
            conditions = get(plane, "outage").get("status", {}).get("conditions", [])
            seen = seen or next((c for c in conditions if c["type"] == "Degraded" and c["status"] == "True"), None)
            time.sleep(1)
    finally:
        s3.come_back()
    assert seen is not None and seen["reason"] == "StoreUnavailable", (
        f"no Degraded during the outage\n{operator.tail()}"
    )
    body = wait_phase(plane, operator, "outage", {"Succeeded", "Failed"})
    status = body["status"]
    assert status["phase"] == "Succeeded", status
    assert status["trials"]["succeeded"] == 4 and status["trials"]["failed"] == 0
    # The outage's condition cleared; the report may still judge four trials too few to trust the surrogate.
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "False" or degraded["reason"] == "SurrogateUnreliable", degraded
    trials = sorted(j["metadata"]["labels"]["mixtura.dev/trial"] for j in proxy_jobs(plane, "outage"))
    assert trials == ["000", "001", "002", "003"]


def pods_of(plane, selector: str) -> list[dict]:
    return json.loads(plane.kubectl("get", "pods", "-n", NS, "-l", selector, "-o", "json").stdout)["items"]


def running_pod(plane, selector: str, operator, timeout: float = 420) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [p for p in pods_of(plane, selector) if p["status"].get("phase") == "Running"]
        if running:
            return running[0]["metadata"]["name"]
        time.sleep(0.5)
    raise AssertionError(f"no running pod of {selector}\n{operator.tail()}")


def running_trial_pod(plane, name: str, trial: str, operator, timeout: float = 420) -> str:
    return running_pod(plane, f"mixtura.dev/search={name},mixtura.dev/trial={trial}", operator, timeout)


def preempt(plane, pod: str) -> None:
    """What a kubelet reports of a preempted pod: a DisruptionTarget condition, then the pod Failed (137)."""
    # With its transition time: the disruption controller resets a DisruptionTarget older than 2 minutes.
    disruption = {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "PreemptionByScheduler",
        "message": "preempted by the test",
        "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    plane.kubectl(
        "patch",
        "pod",
        pod,
        "-n",
        NS,
        "--subresource=status",
        "-p",
        json.dumps({"status": {"conditions": [disruption]}}),
    )
    plane.kubectl("annotate", "pod", pod, "-n", NS, "--overwrite", "testbed.mixtura.dev/exit-code=137")


def apply_two_trials(plane, installed, name: str, max_failed: int, **spec) -> None:
    """A quick search: random domain weights, one round of two trials, no final training."""
    text = manifests(
        name,
        installed["bucket"],
        installed["endpoint"],
        method="random",
        search={"space": "domains"},
        budget={"maxTrials": 2, "parallelTrials": 2, "maxFailedTrials": max_failed, "proxySteps": 4},
        finalTraining={"enabled": False},
        **spec,
    )
    plane.kubectl("apply", "-n", NS, "-f", "-", input=text)


def test_a_preempted_trial_pod_is_rerun_and_not_counted(control_plane, installed):
    """Acceptance 1: a trial pod ends Failed (137) with DisruptionTarget, as after a preemption: the Job's
    podFailurePolicy ignores it (backoffLimit 0 would fail the Job otherwise), a new pod runs the trial."""
    plane, operator = control_plane, installed["operator"]
    apply_two_trials(plane, installed, "preempted", max_failed=0)
    preempt(plane, running_trial_pod(plane, "preempted", "000", operator))
    body = wait_phase(plane, operator, "preempted", {"Succeeded", "Failed"})
    assert body["status"]["phase"] == "Succeeded", body["status"]
    assert body["status"]["trials"]["failed"] == 0 and body["status"]["trials"]["succeeded"] == 2
    job = next(j for j in proxy_jobs(plane, "preempted") if j["metadata"]["labels"]["mixtura.dev/trial"] == "000")
    assert job["status"].get("failed", 0) == 0 and job["status"]["succeeded"] == 1
    pods = plane.kubectl("get", "pods", "-n", NS, "-l", f"job-name={job['metadata']['name']}", "-o", "name").stdout
    assert len(pods.split()) == 2, pods


def test_a_preempted_final_training_pod_is_rerun_and_not_counted(control_plane, installed):
    """Issue 14 acceptance 4: the final training's pod (torchrun, two processes) preempted and deleted: the
    podFailurePolicy ignores it (backoffLimit 0 would fail the Job otherwise), a new pod trains, the search
    succeeds."""
    plane, operator = control_plane, installed["operator"]
    final = {"enabled": True, "steps": 10, "gpusPerNode": 2}
    text = manifests(
        "final-preempted", installed["bucket"], installed["endpoint"], method="uniform", finalTraining=final
    )
    plane.kubectl("apply", "-n", NS, "-f", "-", input=text)
    pod = running_pod(plane, "mixtura.dev/search=final-preempted,mixtura.dev/step=final-train", operator)
    preempt(plane, pod)
    deadline = time.monotonic() + 60
    while json.loads(plane.kubectl("get", "pod", pod, "-n", NS, "-o", "json").stdout)["status"]["phase"] != "Failed":
        assert time.monotonic() < deadline, f"pod {pod} never ended Failed"
        time.sleep(0.5)
    plane.kubectl("delete", "pod", pod, "-n", NS, "--wait=true")
    body = wait_phase(plane, operator, "final-preempted", {"Succeeded", "Failed"})
    assert body["status"]["phase"] == "Succeeded", body["status"]
    (job,) = step_jobs(plane, "final-preempted", "final-train")
    assert job["spec"]["backoffLimit"] == 0
    assert job["status"].get("failed", 0) == 0 and job["status"]["succeeded"] == 1, job["status"]
    rerun = pods_of(plane, f"job-name={job['metadata']['name']}")
    assert [p["status"]["phase"] for p in rerun] == ["Succeeded"] and rerun[0]["metadata"]["name"] != pod


def test_a_final_training_on_two_nodes_is_an_indexed_job_whose_pods_rendezvous(
    control_plane, installed, pod_runner, kube
):
    """Issue 14 acceptance 2: finalTraining.nodes 2 (one CPU process per node) runs as an Indexed Job of two
    pods in the subdomain of its headless Service. The pod runner runs both as torchrun agents that meet at the
    c10d rendezvous on loopback (the test bed's address override for `<job>-0.<service>`); each sees a world
    of 2. The search succeeds and names its final model; cancelling the step deletes the Job and its Service."""
    plane, operator = control_plane, installed["operator"]
    final = {"enabled": True, "steps": 4, "nodes": 2, "gpusPerNode": 0}
    text = manifests("two-nodes", installed["bucket"], installed["endpoint"], method="uniform", finalTraining=final)
    plane.kubectl("apply", "-n", NS, "-f", "-", input=text)
    body = wait_phase(plane, operator, "two-nodes", {"Succeeded", "Failed"})
    assert body["status"]["phase"] == "Succeeded", body["status"]
    (job,) = step_jobs(plane, "two-nodes", "final-train")
    spec, name = job["spec"], job["metadata"]["name"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert job["status"]["succeeded"] == 2
    service = json.loads(plane.kubectl("get", "service", name, "-n", NS, "-o", "json").stdout)
    assert spec["template"]["spec"]["subdomain"] == name and service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    command = spec["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--rdzv-endpoint") + 1] == f"{name}-0.{name}:29400"
    pods = pods_of(plane, f"job-name={name}")
    indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods)
    assert indexes == ["0", "1"] and {p["status"]["phase"] for p in pods} == {"Succeeded"}
    logs = [(pod_runner.log_dir / f"{NS}_{p['metadata']['name']}.log").read_text() for p in pods]
    assert all("global_world_sizes=[2]" in log for log in logs), logs[0][-3000:]
    assert sorted(re.search(r"group_rank=(\d+)", log).group(1) for log in logs) == ["0", "1"]
    model = body["status"]["artifacts"]["model"]
    assert model == f"{body['status']['artifacts']['root']}/final/model.pt"
    prefix = f"s3://{installed['bucket']}/"
    assert installed["store"].list(model.removeprefix(prefix)) == [model.removeprefix(prefix)]
    KubernetesExecutor(kube).cancel(parse_search(body), "final")
    deadline = time.monotonic() + 60
    while any(plane.kubectl("get", kind, name, "-n", NS, check=False).returncode == 0 for kind in ("job", "service")):
        assert time.monotonic() < deadline, "the cancelled step's Job or Service remained"
        time.sleep(1)


# Enough of JobSet's CRD for the API server to serve the kind; no JobSet controller runs on the test bed.
JOBSET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "jobsets.jobset.x-k8s.io"},
    "spec": {
        "group": "jobset.x-k8s.io",
        "scope": "Namespaced",
        "names": {"kind": "JobSet", "listKind": "JobSetList", "plural": "jobsets", "singular": "jobset"},
        "versions": [
            {
                "name": "v1alpha2",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                "subresources": {"status": {}},
            }
        ],
    },
}


def wait_condition(plane, operator, name: str, type_: str, status: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conditions = get(plane, name).get("status", {}).get("conditions", [])
        found = next((c for c in conditions if c["type"] == type_ and c["status"] == status), None)
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{name}: no condition {type_}={status}: {conditions}\n{operator.tail()}")


def test_a_jobset_launcher_waits_for_the_jobset_crd_then_creates_a_jobset(control_plane, installed):
    """Issue 14: `launcher: jobset` without JobSet's CRD is a LauncherUnavailable condition naming the field and
    the CRD, and nothing is created; once the CRD is installed the operator creates the JobSet (one replicated
    Job of a pod per node)."""
    plane, operator = control_plane, installed["operator"]
    final = {"enabled": True, "steps": 4, "nodes": 2, "gpusPerNode": 0, "launcher": "jobset"}
    text = manifests("jobset", installed["bucket"], installed["endpoint"], method="uniform", finalTraining=final)
    plane.kubectl("apply", "-n", NS, "-f", "-", input=text)
    try:
        condition = wait_condition(plane, operator, "jobset", "LauncherUnavailable", "True")
        assert "spec.finalTraining.launcher" in condition["message"], condition
        assert "jobsets.jobset.x-k8s.io" in condition["message"], condition
        assert get(plane, "jobset")["status"]["phase"] == "Training"
        assert step_jobs(plane, "jobset", "final-train") == []
        plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(JOBSET_CRD))
        plane.kubectl("wait", "--for=condition=Established", "crd/jobsets.jobset.x-k8s.io", "--timeout=60s")
        wait_condition(plane, operator, "jobset", "LauncherUnavailable", "False", timeout=60)
        jobset = json.loads(
            plane.kubectl("get", "jobsets.jobset.x-k8s.io", "jobset-final", "-n", NS, "-o", "json").stdout
        )
        (replicated,) = jobset["spec"]["replicatedJobs"]
        assert replicated["replicas"] == 1 and replicated["template"]["spec"]["parallelism"] == 2
        assert jobset["metadata"]["ownerReferences"][0]["uid"] == get(plane, "jobset")["metadata"]["uid"]
        command = replicated["template"]["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[command.index("--rdzv-endpoint") + 1] == "jobset-final-node-0-0.jobset-final:29400"
    finally:
        plane.kubectl("delete", "mixturesearch", "jobset", "-n", NS, "--wait=true", "--timeout=60s", check=False)
        plane.kubectl("delete", "crd", "jobsets.jobset.x-k8s.io", "--wait=true", "--timeout=60s", check=False)


def test_a_failed_trial_job_deleted_before_the_operator_saw_it_counts_once(control_plane, installed):
    """Acceptance 1: with the operator down, a trial fails and its Job is deleted; the operator, back, counts
    the failure once (from the `_FAILED` the step wrote) and never creates the Job again."""
    plane, operator = control_plane, installed["operator"]
    apply_two_trials(plane, installed, "vanished", max_failed=1, models={"proxy": {"config": {"failTrials": ["000"]}}})
    running_trial_pod(plane, "vanished", "000", operator)
    operator.kill()
    try:
        deadline = time.monotonic() + 300
        while True:
            job = next(
                j for j in proxy_jobs(plane, "vanished") if j["metadata"]["labels"]["mixtura.dev/trial"] == "000"
            )
            if job["status"].get("failed"):
                break
            assert time.monotonic() < deadline, "trial 000 never failed"
            time.sleep(1)
        plane.kubectl("delete", "job", job["metadata"]["name"], "-n", NS, "--wait=true")
    finally:
        operator.start()
    body = wait_phase(plane, operator, "vanished", {"Succeeded", "Failed"})
    assert body["status"]["phase"] == "Succeeded", body["status"]
    assert body["status"]["trials"]["failed"] == 1 and body["status"]["trials"]["succeeded"] == 1
    assert [j["metadata"]["labels"]["mixtura.dev/trial"] for j in proxy_jobs(plane, "vanished")] == ["001"]


def test_the_operator_recovers_from_an_api_server_restart_mid_search(control_plane, installed):
    """Acceptance 1: kube-apiserver stopped and started while trials run (etcd keeps the state). The operator
    rides it out (or, gone past its renew deadline, is restarted as its Deployment would); the search succeeds
    with one Job per step, none failed."""
    plane, operator = control_plane, installed["operator"]
    text = manifests("apirestart", installed["bucket"], installed["endpoint"], search={"space": "domains"})
    plane.kubectl("apply", "-n", NS, "-f", "-", input=text)
    running_trial_pod(plane, "apirestart", "000", operator)
    # The operator acts on propose-0's pod succeeding; the job controller may still be counting it. Stopped then,
    # the job controller loses the count and runs the step's pod again (Kubernetes' doing, not the operator's):
    # the restart comes once it has counted, while the trials run.
    plane.kubectl("wait", "-n", NS, "--for=condition=Complete", "job/apirestart-propose-0", "--timeout=120s")
    plane.restart_apiserver(down_seconds=3)
    if operator.process.poll() is not None:
        operator.start()
    body = wait_phase(plane, operator, "apirestart", {"Succeeded", "Failed"})
    assert body["status"]["phase"] == "Succeeded", body["status"]
    assert body["status"]["trials"]["succeeded"] == 4 and body["status"]["trials"]["failed"] == 0
    assert_no_job_recreated_or_failed(plane, "apirestart")


def test_a_standby_takes_over_when_the_leader_dies_mid_search(control_plane, installed):
    """Acceptance 4: a second operator waits, alive (/healthz) and not ready (/readyz); the leader is killed
    mid-search; the standby leads within the lease duration (15 s), creates no Job twice, the search succeeds."""
    plane, leader, standby = control_plane, installed["operator"], installed["standby"]
    standby.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http_status(standby.health_port, "/healthz") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"the standby never served /healthz\n{standby.tail()}"
            time.sleep(0.5)
        assert http_status(standby.health_port, "/readyz") == 503
        assert http_status(leader.health_port, "/readyz") == 200
        text = manifests("takeover", installed["bucket"], installed["endpoint"], search={"space": "domains"})
        plane.kubectl("apply", "-n", NS, "-f", "-", input=text)
        wait_phase(plane, leader, "takeover", {"Searching"})
        leader.kill()
        killed = time.monotonic()
        while http_status(standby.health_port, "/readyz") != 200:
            assert time.monotonic() - killed < 15 + 5, f"the standby did not take over\n{standby.tail()}"
            time.sleep(0.5)
        body = wait_phase(plane, standby, "takeover", {"Succeeded", "Failed"})
        assert body["status"]["phase"] == "Succeeded", body["status"]
        assert body["status"]["trials"]["progress"] == "4/4"
        assert_one_pod_per_job(plane, "takeover")
    finally:
        standby.kill()
        leader.start()


def wait_domainset_ready(plane, name: str, status: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = json.loads(plane.kubectl("get", "domainset", name, "-n", NS, "-o", "json").stdout)
        ready = [c for c in body.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
        if ready and ready[0]["status"] == status:
            return ready[0]
        time.sleep(1)
    raise AssertionError(f"DomainSet {name} never Ready={status}: {body.get('status')}")


def test_domainset_status_validates_the_data_and_names_a_missing_domain(control_plane, installed):
    plane, bucket = control_plane, installed["bucket"]
    corpus = next(yaml.safe_load_all(manifests("unused", bucket, installed["endpoint"])))
    plane.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(corpus))
    assert wait_domainset_ready(plane, "corpus", "True")["reason"] == "Validated"
    absent = {"name": "absent", "uri": f"s3://{bucket}/data/absent", "modalities": ["text"], "taskType": "text"}
    broken = {**corpus, "metadata": {"name": "broken"}, "spec": {"domains": [absent]}}
    plane.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(broken))
    ready = wait_domainset_ready(plane, "broken", "False")
    assert ready["reason"] == "DataMissing" and "absent" in ready["message"], ready


def test_every_dashboard_panel_returns_series(installed):
    """Issue 6: after the searches above, each panel's PromQL returns data from the real Prometheus."""
    dashboard = json.loads((REPO / "charts" / "mixtura" / "files" / "dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert len(exprs) >= 6
    for expr in exprs:
        assert installed["prometheus"].wait_for_series(expr, timeout=30), expr


def test_a_search_runs_from_webdataset_and_llava_domains_in_s3(control_plane, installed, tmp_path):
    """Real formats on the test bed: a WebDataset domain (brace pattern) and a LLaVA-JSON domain with its
    imageRoot, read from S3 by the Jobs' pods, never downloaded whole."""
    plane, operator = control_plane, installed["operator"]
    domainset, search = yaml.safe_load_all(manifests("real-formats", installed["bucket"], installed["endpoint"]))
    domainset["metadata"]["name"] = search["spec"]["domainSetRef"]["name"] = "real-corpus"
    domainset["spec"]["domains"] = upload_real_corpora(installed["store"], "real", tmp_path)
    search["spec"]["search"] = {"conceptClusters": 3}
    plane.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump_all([domainset, search]))
    body = wait_phase(plane, operator, "real-formats", {"Succeeded", "Failed"}, timeout=1200)
    status = body["status"]
    assert status["phase"] == "Succeeded", status
    assert set(status["madmixWeights"]) == {"captions", "chat"} and status["trials"]["succeeded"] == 4
    keys = installed["store"].list(status["artifacts"]["root"].removeprefix(f"s3://{installed['bucket']}/"))
    assert sum(k.endswith("metrics.json") and "/trials/" in k for k in keys) == 4


def apply_secret(plane, name: str, keys: dict[str, str]) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": keys}
    plane.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(secret))


def degraded(body: dict) -> dict | None:
    return next((c for c in body.get("status", {}).get("conditions", []) if c["type"] == "Degraded"), None)


def test_the_data_check_reads_with_the_searchs_secret(control_plane, installed, tmp_path):
    """Issue 15: data and artifacts in buckets that only the search's Secret can read (an S3 server that checks
    IAM policies; the operator's own keys are not a user there): the search passes the data check and writes
    its snapshot. A Secret whose user may write the artifacts but not read the data holds the search
    Degraded/DataUnreadable, and it does not fail."""
    from mixtura_operator.api.domainset import DomainSet
    from mixtura_operator.observe import check_domain_data
    from mixtura_operator.store import open_store

    plane, operator = control_plane, installed["operator"]
    server = start_iam_s3(tmp_path, {"reader": ["private-data", "private-runs"], "other": ["private-runs"]})
    try:
        apply_secret(plane, "reader-creds", server.users["reader"])
        apply_secret(plane, "other-creds", server.users["other"])
        data = open_store("s3://private-data", server.endpoint, server.users["reader"])
        for name, _, _ in DOMAINS:
            data.put_bytes(f"data/{name}/shard-00000.npz", b"x")
        searches = {}
        for name, secret in (("private-reader", "reader-creds"), ("private-other", "other-creds")):
            corpus, search = search_of(name, "private", "private-data", server.endpoint, suspend=True)
            search["spec"]["artifacts"] = {
                "uri": "s3://private-runs/runs",
                "endpointUrl": server.endpoint,
                "credentialsSecret": secret,
            }
            searches[name] = search
            plane.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump_all([corpus, search]))
        # The operator's own keys cannot read the data: only the Secret can have passed the check.
        domainset = DomainSet.model_validate(corpus)
        own = {k: CREDENTIALS[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        assert set(check_domain_data(domainset, server.endpoint, False, own)[1]) == {n for n, _, _ in DOMAINS}

        body = wait_phase(plane, operator, "private-reader", {"Suspended", "Failed"}, timeout=120)
        assert body["status"]["phase"] == "Suspended", body["status"]
        assert (degraded(body) or {}).get("status") != "True", body["status"]
        meta = body["metadata"]
        runs = open_store("s3://private-runs/runs", server.endpoint, server.users["reader"])
        assert runs.exists(f"{layout.search_root(NS, meta['name'], meta['uid'])}/{layout.SNAPSHOT}")

        deadline = time.monotonic() + 120
        while (degraded(body := get(plane, "private-other")) or {}).get("reason") != "DataUnreadable":
            assert time.monotonic() < deadline, f"{body.get('status')}\n{operator.tail()}"
            time.sleep(1)
        condition = degraded(body)
        assert condition["status"] == "True" and "AccessDenied" in condition["message"], condition
        time.sleep(10)  # retried with backoff, still held
        body = get(plane, "private-other")
        assert body["status"]["phase"] == "Pending" and degraded(body)["reason"] == "DataUnreadable", body["status"]
        assert jobs_of(plane, "private-other") == []
        assert ("DataUnreadable", condition["message"]) in search_events(plane, "private-other")
    finally:
        for name in ("private-reader", "private-other"):
            plane.kubectl("delete", "mixturesearch", name, "-n", NS, "--wait=false", check=False)
        server.stop()


def test_warm_start_imports_a_finished_search_and_refuses_other_domains(control_plane, installed):
    """Issue 15: search B warm-starts from a finished search A over the same domains: its first proposal fits
    the GP on A's trials (the proposal records A's observations and predicts from them, where B alone would
    have drawn an initial design); search C over other domains is refused naming spec.search.warmStartFrom."""
    plane, operator, store = control_plane, installed["operator"], installed["store"]
    bucket, endpoint = installed["bucket"], installed["endpoint"]
    quick = {"search": {"space": "domains"}, "finalTraining": {"enabled": False}}
    budget = {"maxFailedTrials": 0, "proxySteps": 4}
    corpus, first = search_of(
        "warm-a",
        "warm",
        bucket,
        endpoint,
        method="random",
        budget={"maxTrials": 3, "parallelTrials": 3, **budget},
        **quick,
    )
    follow = {"method": "mixatlas", "budget": {"maxTrials": 2, "parallelTrials": 2, **budget}, **quick}
    follow["search"] = {**follow["search"], "warmStartFrom": ["warm-a"]}
    _, second = search_of("warm-b", "warm", bucket, endpoint, **follow)
    other_corpus, other = search_of("warm-c", "warm-fewer", bucket, endpoint, **follow)
    other_corpus["spec"]["domains"] = other_corpus["spec"]["domains"][:2]
    plane.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump_all([corpus, other_corpus, first, second, other]))

    a = wait_phase(plane, operator, "warm-a", {"Succeeded", "Failed"})
    assert a["status"]["phase"] == "Succeeded", a["status"]
    b = wait_phase(plane, operator, "warm-b", {"Succeeded", "Failed"})
    assert b["status"]["phase"] == "Succeeded", b["status"]
    root = b["status"]["artifacts"]["root"].removeprefix(f"s3://{bucket}/")
    proposal = store.get_json(f"{root}/{layout.proposal(0)}")
    assert proposal["imported"] == [a["status"]["artifacts"]["root"]]
    assert proposal["observations"] == 3 and proposal["source"] == "gp-ucb", proposal
    mixture = store.get_json(f"{root}/trials/000/mixture.json")
    assert mixture["source"] == "gp-ucb" and "predicted" in mixture

    c = wait_phase(plane, operator, "warm-c", {"Succeeded", "Failed"})
    ready = next(x for x in c["status"]["conditions"] if x["type"] == "Ready")
    assert c["status"]["phase"] == "Failed" and "spec.search.warmStartFrom" in ready["message"], c["status"]
    assert "other domains than this one" in ready["message"]
