"""Operator throughput on the test bed: many MixtureSearches on one operator replica.

Everything is real (control plane, job controller, scheduler, KWOK nodes, S3 server, the operator as a
process with its own ServiceAccount token) except the Jobs' work: the pod runner writes each step's outputs
at once instead of training, so what is measured is the operator and the control plane, not the models.

Measures the lag from a Job's pod finishing (exit code recorded) to the operator's next Job for that
search (p50/p99), the operator's API requests per trial (from the apiserver's audit log), and its peak
memory. The baseline is one search in the same run; the table shows the ratio.

    python bench/operator_lag.py --searches 50 --parallel 8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402
from urllib3.exceptions import ProtocolError  # noqa: E402

from mixtura_operator import layout  # noqa: E402
from mixtura_operator.store import open_store  # noqa: E402
from testbed.cluster import kubeconfig, node_manifest, start_control_plane  # noqa: E402
from testbed.podrunner import PodRunner  # noqa: E402
from testbed.procs import free_port, operator_argv  # noqa: E402
from testbed.s3 import CREDENTIALS, start_s3  # noqa: E402

NS = "bench"
DOMAINS = ("alpha", "beta", "gamma")


class NullStepRunner(PodRunner):
    """Writes a step's outputs straight to the store (no model), then lets the pod finish."""

    def __init__(self, *args, endpoint: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.endpoint = endpoint
        self.completed: dict[str, float] = {}
        self.lock = threading.Lock()

    def execute(self, pod, container, log: Path) -> int:
        argv = container.command
        step = argv[3]
        opts = dict(zip(argv[4::2], argv[5::2], strict=False))
        store = open_store(opts["--search-uri"], self.endpoint)
        uniform = {d: 1 / len(DOMAINS) for d in DOMAINS}
        rng = np.random.default_rng(abs(hash(pod.metadata.name)) % 2**32)
        if step == "propose":
            for tid in opts["--trials"].split(","):
                store.put_json(
                    layout.trial_mixture(tid), {"weights": uniform, "round": int(opts["--round"]), "source": "null"}
                )
            # The operator reads each round's trials from its proposal (a raised maxTrials keeps them).
            trials = opts["--trials"].split(",")
            store.put_json(layout.proposal(int(opts["--round"])), {"round": int(opts["--round"]), "trials": trials})
            key = f"propose/{opts['--round']}"
        elif step == "proxy-train":
            loss = float(rng.uniform(2, 3))
            store.put_json(layout.trial_metrics(opts["--trial"]), {"heldout_loss": dict.fromkeys(DOMAINS, loss)})
            key = f"trial/{opts['--trial']}"
        elif step == "final-train":
            store.put_json(layout.FINAL_MIXTURE, {"weights": uniform, "source": "null"})
            store.put_json(layout.FINAL_METRICS, {"heldout_loss": dict.fromkeys(DOMAINS, 2.0)})
            key = "final"
        else:
            store.put_bytes(layout.REPORT, b"<html></html>")
            key = "report"
        store.put_bytes(layout.success_marker(key), b"")
        return 0

    def finished(self, pod) -> None:
        with self.lock:
            self.completed[pod.metadata.labels["mixtura.dev/search"]] = time.monotonic()


def search_manifest(name: str, bucket: str, endpoint: str, parallel: int, trials: int) -> dict:
    return {
        "apiVersion": "mixtura.dev/v1alpha1",
        "kind": "MixtureSearch",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "domainSetRef": {"name": "corpus"},
            "method": "random",
            "budget": {"maxTrials": trials, "parallelTrials": parallel, "proxySteps": 1},
            "resources": {"gpusPerJob": 1, "backoffLimit": 0, "image": "bench/null"},
            "artifacts": {"uri": f"s3://{bucket}/runs", "endpointUrl": endpoint},
            "finalTraining": {"enabled": True, "steps": 1},
        },
    }


def run_phase(plane, runner, bucket, endpoint, names, parallel, trials, operator_user, timeout) -> dict:
    """Create the searches, wait for all to succeed; lags, requests and wall time of this phase."""
    api = config.new_client_from_config(str(plane.kubeconfig_path))
    lags: list[float] = []
    stop = threading.Event()

    def watch_jobs() -> None:
        seen: set[str] = set()
        while not stop.is_set():
            stream = watch.Watch().stream(client.BatchV1Api(api).list_namespaced_job, NS, timeout_seconds=60)
            try:
                for event in stream:
                    job = event["object"].metadata
                    search = job.labels.get("mixtura.dev/search")
                    if stop.is_set() or event["type"] != "ADDED" or search not in names or job.name in seen:
                        continue
                    seen.add(job.name)
                    with runner.lock:
                        done_at = runner.completed.pop(search, None)
                    if done_at is not None:
                        lags.append(time.monotonic() - done_at)
            except (ApiException, ProtocolError):
                time.sleep(0.2)  # a watch the server ended or refused: start a new one

    audit_before = plane.audit_log.stat().st_size if plane.audit_log.exists() else 0
    watcher = threading.Thread(target=watch_jobs, daemon=True)
    watcher.start()
    start = time.monotonic()
    docs = [search_manifest(n, bucket, endpoint, parallel, trials) for n in names]
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    custom = client.CustomObjectsApi(api)
    while True:
        items = custom.list_namespaced_custom_object("mixtura.dev", "v1alpha1", NS, "mixturesearches")["items"]
        phases = Counter(i.get("status", {}).get("phase") for i in items if i["metadata"]["name"] in names)
        if phases.get("Succeeded", 0) + phases.get("Failed", 0) == len(names):
            break
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"searches not finished after {timeout}s: {dict(phases)}")
        time.sleep(1)
    wall = time.monotonic() - start
    stop.set()
    with plane.audit_log.open("rb") as handle:
        handle.seek(audit_before)
        requests = Counter()
        for line in handle:
            entry = json.loads(line)
            if entry.get("stage") == "ResponseComplete" and entry["user"]["username"] == operator_user:
                requests[entry["verb"]] += 1
    return {
        "lags": np.array(lags),
        "requests": requests,
        "wall": wall,
        "failed": phases.get("Failed", 0),
        "trials": len(names) * trials,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--timeout", type=int, default=1800)
    args = parser.parse_args()

    plane = start_control_plane(audit=True)
    s3 = start_s3()
    operator = None
    runner = None
    try:
        for i in range(4):
            node = node_manifest(f"bench-{i}", 128)
            node["status"]["capacity"]["pods"] = node["status"]["allocatable"]["pods"] = "1000"
            plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(node))
        plane.kubectl("apply", "-f", str(REPO / "crds"))
        plane.kubectl("wait", "--for=condition=Established", "crd/mixturesearches.mixtura.dev", "--timeout=60s")
        plane.kubectl("create", "namespace", NS)
        plane.kubectl("create", "serviceaccount", "operator", "-n", NS)
        plane.kubectl(
            "create",
            "clusterrolebinding",
            "bench-operator",
            "--clusterrole=cluster-admin",
            f"--serviceaccount={NS}:operator",
        )
        token = plane.kubectl("create", "token", "operator", "-n", NS, "--duration=4h").stdout.strip()
        sa_config = plane.work / "operator.kubeconfig"
        sa_config.write_text(yaml.safe_dump(kubeconfig(plane.server, plane.pki["ca"], token=token)))

        os.environ.update(CREDENTIALS)
        bucket = "bench"
        s3.client().create_bucket(Bucket=bucket)
        store = open_store(f"s3://{bucket}", s3.endpoint)
        for name in DOMAINS:
            store.put_bytes(f"data/{name}/shard-00000.npz", b"x")
        corpus = {
            "apiVersion": "mixtura.dev/v1alpha1",
            "kind": "DomainSet",
            "metadata": {"name": "corpus", "namespace": NS},
            "spec": {
                "domains": [
                    {"name": n, "uri": f"s3://{bucket}/data/{n}", "modalities": ["text"], "taskType": "text"}
                    for n in DOMAINS
                ]
            },
        }
        plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(corpus))

        api = config.new_client_from_config(str(plane.kubeconfig_path))
        runner = NullStepRunner(client.CoreV1Api(api), plane.work / "pods", REPO, {}, endpoint=s3.endpoint).start()
        log = (plane.work / "operator.log").open("wb")
        operator = subprocess.Popen(
            operator_argv(NS, free_port()),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(sa_config), "POD_NAMESPACE": NS, "MIXTURA_S3_ENDPOINT": s3.endpoint},
        )
        user = f"system:serviceaccount:{NS}:operator"
        base = run_phase(plane, runner, bucket, s3.endpoint, ["base"], args.parallel, args.trials, user, args.timeout)
        names = [f"s{i:03d}" for i in range(args.searches)]
        load = run_phase(plane, runner, bucket, s3.endpoint, names, args.parallel, args.trials, user, args.timeout)
        peak_kib = int(
            next(
                line.split()[1]
                for line in Path(f"/proc/{operator.pid}/status").read_text().splitlines()
                if line.startswith("VmHWM")
            )
        )
    finally:
        if operator:
            operator.kill()
        if runner:
            runner.stop()
        s3.stop()
        plane.stop()

    def row(label: str, b: float, x: float, unit: str) -> str:
        return f"| {label} | {b:.3g} {unit} | {x:.3g} {unit} | {x / b:.2f} |"

    per_trial = {k: sum(p["requests"].values()) / p["trials"] for k, p in (("base", base), ("load", load))}
    print(f"| measurement | 1 search | {args.searches} searches x {args.parallel} parallel | ratio |")
    print("|---|---:|---:|---:|")
    print(row("lag p50, pod finished → next Job", np.median(base["lags"]), np.median(load["lags"]), "s"))
    print(row("lag p99", np.percentile(base["lags"], 99), np.percentile(load["lags"], 99), "s"))
    print(row("operator API requests per trial", per_trial["base"], per_trial["load"], ""))
    print(row("wall time per trial", base["wall"] / base["trials"], load["wall"] / load["trials"], "s"))
    print(f"| operator peak memory (VmHWM) | | {peak_kib / 1024:.0f} MiB | |")
    print(f"requests by verb under load: {dict(load['requests'])}; failed searches: {load['failed']}")
    print(
        f"summary: {args.searches} searches x {args.trials} trials ({args.parallel} parallel): lag p50 "
        f"{np.median(load['lags']):.2f} s, p99 {np.percentile(load['lags'], 99):.2f} s, "
        f"{per_trial['load']:.1f} API requests per trial, peak {peak_kib / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
