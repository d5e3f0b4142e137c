"""Operator throughput on the test bed: many MixtureSearches on one operator replica.

Everything is real (control plane, job controller, scheduler, KWOK nodes, S3 server, the operator as a
process with its own ServiceAccount token) except the Jobs' work: the pod runner writes each step's outputs
at once instead of training, so what is measured is the operator and the control plane, not the models.

Measures the lag from a Job's pod finishing (exit code recorded) to the operator's next Job for that search
(p50/p99), beside the time the job controller takes to mark that Job Complete (which the operator need not wait
for: it acts on the pod) and how often the next Job came first, the operator's API requests (from the apiserver's
audit log) and S3 requests (by its access key) per trial, its peak memory, and what the finished searches cost
afterwards: the operator's API and S3 requests over a quiet window (watch streams and Lease renewals excluded; they
do not grow with the searches). The baseline is the operator at another revision (`--baseline`, main by default)
run on the same control plane just before; the table shows the ratio, so the machine's load cancels out.

    python bench/operator_lag.py --searches 50 --parallel 8 --trials 16
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import boto3
import numpy as np
import yaml
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

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
from testbed.s3 import CREDENTIALS  # noqa: E402

DOMAINS = ("alpha", "beta", "gamma")
COUNTS_PATH = "/__bench/requests-by-key"


class NullStepRunner(PodRunner):
    """Writes a step's outputs straight to the store (no model), then lets the pod finish."""

    def __init__(self, *args, endpoint: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.endpoint = endpoint
        # namespace/search -> (when its latest pod finished, that pod's Job)
        self.completed: dict[str, tuple[float, str]] = {}
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
            search = f"{pod.metadata.namespace}/{pod.metadata.labels['mixtura.dev/search']}"
            self.completed[search] = (time.monotonic(), pod.metadata.labels["job-name"])


def search_manifest(name: str, namespace: str, bucket: str, endpoint: str, parallel: int, trials: int) -> dict:
    return {
        "apiVersion": "mixtura.dev/v1alpha1",
        "kind": "MixtureSearch",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "domainSetRef": {"name": "corpus"},
            "method": "random",
            "budget": {"maxTrials": trials, "parallelTrials": parallel, "proxySteps": 1},
            "resources": {"gpusPerJob": 1, "backoffLimit": 0, "image": "bench/null"},
            "artifacts": {"uri": f"s3://{bucket}/runs", "endpointUrl": endpoint},
            "finalTraining": {"enabled": True, "steps": 1},
        },
    }


class RequestCounter:
    """Wraps the S3 server's WSGI app: requests by access key (the operator signs with one of its own), served as
    JSON at COUNTS_PATH."""

    def __init__(self, app) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == COUNTS_PATH:
            with self.lock:
                body = json.dumps(self.counts).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        key = environ.get("HTTP_AUTHORIZATION", "").partition("Credential=")[2].partition("/")[0]
        with self.lock:
            self.counts[key] += 1
        return self.app(environ, start_response)


def serve_s3(ports: multiprocessing.Queue) -> None:
    """moto's S3 server behind a RequestCounter, run in a process of its own: in the bench's process its
    threads (one per request: werkzeug closes every connection) would hold the GIL while the bench's watch
    timestamps the Jobs it measures."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = RequestCounter(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    ports.put(server.server_port)
    server.serve_forever()


@dataclass
class S3Process:
    process: multiprocessing.Process
    endpoint: str

    def count(self, key: str) -> int:
        with urllib.request.urlopen(self.endpoint + COUNTS_PATH) as response:
            return json.load(response).get(key, 0)

    def stop(self) -> None:
        self.process.terminate()
        self.process.join()


def start_s3_process() -> S3Process:
    ports: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=serve_s3, args=(ports,), daemon=True)
    process.start()
    return S3Process(process, f"http://127.0.0.1:{ports.get(timeout=60)}")


@dataclass
class Variant:
    """An operator to measure: its label and the folder its `mixtura_operator` is imported from."""

    label: str
    slug: str
    pythonpath: Path


def operator_tree(source: Path, into: Path) -> Path:
    """A PYTHONPATH folder whose `mixtura_operator` is `source`/operator."""
    into.mkdir(parents=True, exist_ok=True)
    (into / "mixtura_operator").symlink_to(source / "operator")
    return into


def variant_at(revision: str, work: Path) -> Variant:
    tree = work / revision
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    short = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", revision], check=True, capture_output=True)
    return Variant(f"{revision} ({short.stdout.decode().strip()})", "base", operator_tree(tree, work / "pkgs-base"))


def audit_requests(plane, offset: int, user: str, quiet: bool = False) -> Counter:
    """The operator's requests in the audit log after `offset`, by verb; `quiet`: without its watch streams and
    Lease renewals, which a finished search does not add to."""
    requests: Counter[str] = Counter()
    with plane.audit_log.open("rb") as handle:
        handle.seek(offset)
        for line in handle:
            entry = json.loads(line)
            if entry.get("stage") != "ResponseComplete" or entry["user"]["username"] != user:
                continue
            if quiet and (entry["verb"] == "watch" or entry.get("objectRef", {}).get("resource") == "leases"):
                continue
            requests[f"{entry['verb']} {entry.get('objectRef', {}).get('resource', '')}"] += 1
    return requests


def audit_size(plane) -> int:
    return plane.audit_log.stat().st_size if plane.audit_log.exists() else 0


def run_phase(plane, runner, namespace, bucket, endpoint, names, parallel, trials, timeout) -> dict:
    """Create the searches, wait for all to succeed; lags (whole, control plane's part, operator's part) and
    wall time of this phase."""
    api = config.new_client_from_config(str(plane.kubeconfig_path))
    # (when a search's pod finished, that pod's Job, when the search's next Job appeared)
    steps: list[tuple[float, str, float]] = []
    complete: dict[str, float] = {}
    stop = threading.Event()

    def watch_jobs() -> None:
        seen: set[str] = set()
        while not stop.is_set():
            stream = watch.Watch().stream(client.BatchV1Api(api).list_namespaced_job, namespace, timeout_seconds=60)
            try:
                for event in stream:
                    now = time.monotonic()
                    job = event["object"]
                    name, search = job.metadata.name, job.metadata.labels.get("mixtura.dev/search")
                    if stop.is_set() or search not in names:
                        continue
                    ended = any(
                        c.status == "True" and c.type in ("Complete", "Failed") for c in job.status.conditions or []
                    )
                    if ended:
                        complete.setdefault(name, now)
                    if event["type"] != "ADDED" or name in seen:
                        continue
                    seen.add(name)
                    with runner.lock:
                        done = runner.completed.pop(f"{namespace}/{search}", None)
                    if done is None:
                        continue
                    steps.append((*done, now))
            except (ApiException, ProtocolError):
                time.sleep(0.2)  # a watch the server ended or refused: start a new one

    watcher = threading.Thread(target=watch_jobs, daemon=True)
    watcher.start()
    start = time.monotonic()
    docs = [search_manifest(n, namespace, bucket, endpoint, parallel, trials) for n in names]
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    custom = client.CustomObjectsApi(api)
    while True:
        items = custom.list_namespaced_custom_object("mixtura.dev", "v1alpha1", namespace, "mixturesearches")["items"]
        phases = Counter(i.get("status", {}).get("phase") for i in items if i["metadata"]["name"] in names)
        if phases.get("Succeeded", 0) + phases.get("Failed", 0) == len(names):
            break
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"searches not finished after {timeout}s: {dict(phases)}")
        time.sleep(1)
    wall = time.monotonic() - start
    stop.set()
    watcher.join(timeout=5)
    known = [(done_at, complete[job], next_at) for done_at, job, next_at in steps if job in complete]
    return {
        "lags": {
            "whole": np.array([next_at - done_at for done_at, _, next_at in steps]),
            "control plane": np.array([complete_at - done_at for done_at, complete_at, _ in known]),
        },
        "before complete": np.mean([next_at < complete_at for _, complete_at, next_at in known]) if known else 0.0,
        "wall": wall,
        "failed": phases.get("Failed", 0),
        "trials": len(names) * trials,
    }


def measure(plane, runner, s3: S3Process, bucket: str, variant: Variant, args) -> dict:
    """One operator: its namespace, ServiceAccount and DomainSet, the searches, then the quiet window."""
    namespace = f"bench-{variant.slug}"
    plane.kubectl("create", "namespace", namespace)
    plane.kubectl("create", "serviceaccount", "operator", "-n", namespace)
    plane.kubectl(
        "create",
        "clusterrolebinding",
        f"{namespace}-operator",
        "--clusterrole=cluster-admin",
        f"--serviceaccount={namespace}:operator",
    )
    token = plane.kubectl("create", "token", "operator", "-n", namespace, "--duration=4h").stdout.strip()
    sa_config = plane.work / f"{namespace}.kubeconfig"
    sa_config.write_text(yaml.safe_dump(kubeconfig(plane.server, plane.pki["ca"], token=token)))
    corpus = {
        "apiVersion": "mixtura.dev/v1alpha1",
        "kind": "DomainSet",
        "metadata": {"name": "corpus", "namespace": namespace},
        "spec": {
            "domains": [
                {"name": n, "uri": f"s3://{bucket}/data/{n}", "modalities": ["text"], "taskType": "text"}
                for n in DOMAINS
            ]
        },
    }
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(corpus))
    user, key = f"system:serviceaccount:{namespace}:operator", f"operator-{variant.slug}"
    env = {
        **os.environ,
        "KUBECONFIG": str(sa_config),
        "POD_NAMESPACE": namespace,
        "MIXTURA_S3_ENDPOINT": s3.endpoint,
        "AWS_ACCESS_KEY_ID": key,
        "PYTHONPATH": str(variant.pythonpath),
    }
    with (plane.work / f"{namespace}-operator.log").open("wb") as log:
        operator = subprocess.Popen(
            operator_argv(namespace, free_port()), stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        audit_start, s3_start = audit_size(plane), s3.count(key)
        names = [f"s{i:03d}" for i in range(args.searches)]
        phase = run_phase(
            plane, runner, namespace, bucket, s3.endpoint, names, args.parallel, args.trials, args.timeout
        )
        phase["requests"] = audit_requests(plane, audit_start, user)
        phase["s3"] = s3.count(key) - s3_start
        time.sleep(args.settle)
        quiet_start, s3_quiet = audit_size(plane), s3.count(key)
        time.sleep(args.quiet)
        phase["quiet requests"] = audit_requests(plane, quiet_start, user, quiet=True)
        phase["quiet s3"] = s3.count(key) - s3_quiet
        status = Path(f"/proc/{operator.pid}/status").read_text().splitlines()
        phase["peak MiB"] = int(next(line.split()[1] for line in status if line.startswith("VmHWM"))) / 1024
    finally:
        operator.kill()
        operator.wait()
    return phase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument(
        "--baseline", default="main", help="git revision of the baseline operator; its CRDs must be this tree's"
    )
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the last search ends")
    parser.add_argument("--quiet", type=float, default=30.0, help="the quiet window's seconds")
    args = parser.parse_args()

    s3 = start_s3_process()
    plane = start_control_plane(audit=True)
    runner = None
    work = Path(tempfile.mkdtemp(prefix="operator-lag-"))
    variants = [variant_at(args.baseline, work), Variant("this tree", "this", operator_tree(REPO, work / "pkgs-this"))]
    results = {}
    try:
        for i in range(4):
            node = node_manifest(f"bench-{i}", 128)
            node["status"]["capacity"]["pods"] = node["status"]["allocatable"]["pods"] = "1000"
            plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(node))
        plane.kubectl("apply", "-f", str(REPO / "crds"))
        plane.kubectl("wait", "--for=condition=Established", "crd/mixturesearches.mixtura.dev", "--timeout=60s")
        os.environ.update(CREDENTIALS)
        bucket = "bench"
        boto3.client("s3", endpoint_url=s3.endpoint).create_bucket(Bucket=bucket)
        store = open_store(f"s3://{bucket}", s3.endpoint)
        for name in DOMAINS:
            store.put_bytes(f"data/{name}/shard-00000.npz", b"x")
        api = config.new_client_from_config(str(plane.kubeconfig_path))
        runner = NullStepRunner(client.CoreV1Api(api), plane.work / "pods", REPO, {}, endpoint=s3.endpoint).start()
        for variant in variants:
            results[variant.slug] = measure(plane, runner, s3, bucket, variant, args)
    finally:
        if runner:
            runner.stop()
        s3.stop()
        plane.stop()
    print_table(args, variants, [results[v.slug] for v in variants])


def print_table(args, variants: list[Variant], phases: list[dict]) -> None:
    def row(label: str, values: list[float], unit: str = "", digits: str = ".3g") -> None:
        ratio = f"{values[1] / values[0]:.2f}" if values[0] else ""
        cells = " | ".join(f"{v:{digits}}{unit}" for v in values)
        print(f"| {label} | {cells} | {ratio} |")

    def lag(kind: str, q: float) -> list[float]:
        return [float(np.percentile(p["lags"][kind], q)) if len(p["lags"][kind]) else float("nan") for p in phases]

    print(f"{args.searches} searches x {args.trials} trials, {args.parallel} parallel")
    print(f"| measurement | {variants[0].label} | {variants[1].label} | ratio |")
    print("|---|---:|---:|---:|")
    for q in (50, 99):
        row(f"lag p{q}, pod finished → next Job", lag("whole", q), " s")
    for q in (50, 99):
        row(f"the job controller's p{q}, pod finished → Job Complete", lag("control plane", q), " s")
    row("next Job created before the last one was Complete", [100 * p["before complete"] for p in phases], " %")
    row("operator API requests per trial", [sum(p["requests"].values()) / p["trials"] for p in phases])
    row("operator S3 requests per trial", [p["s3"] / p["trials"] for p in phases])
    row("wall time per trial", [p["wall"] / p["trials"] for p in phases], " s")
    row("operator peak memory (VmHWM)", [p["peak MiB"] for p in phases], " MiB", ".0f")
    quiet = f"{args.quiet:.0f} s after all finished"
    row(f"API requests in {quiet}", [sum(p["quiet requests"].values()) for p in phases], "", "d")
    row(f"S3 requests in {quiet}", [p["quiet s3"] for p in phases], "", "d")
    for variant, phase in zip(variants, phases, strict=True):
        print(
            f"{variant.label}: requests {dict(phase['requests'])}; in the quiet window {dict(phase['quiet requests'])}"
        )
    this, base = phases[1], phases[0]
    p99 = [np.percentile(p["lags"]["whole"], 99) for p in phases]
    quiet_counts = f"{sum(this['quiet requests'].values())}/{this['quiet s3']}"
    print(
        f"summary: {args.searches} searches x {args.trials} trials ({args.parallel} parallel): lag p99 {p99[1]:.2f} s "
        f"(baseline {p99[0]:.2f} s), {sum(this['requests'].values()) / this['trials']:.1f} API requests per trial, "
        f"failed searches {this['failed']} (baseline {base['failed']}), quiet-window API/S3 requests {quiet_counts}"
    )


if __name__ == "__main__":
    main()
