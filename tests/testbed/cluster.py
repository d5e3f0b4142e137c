"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KWOK (nodes with nvidia.com/gpu capacity, pod lifecycles driven by Stages)."""

from __future__ import annotations

import os
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from testbed.certs import make_pki
from testbed.procs import Process, free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
STAGES = Path(__file__).with_name("stages.yaml")
GPU_NODES = {"kwok-gpu-8": 8, "kwok-gpu-1": 1}


def build_binaries() -> Path:
    """Runs tools/build-testbed.sh (a no-op when the cache is warm); returns the bin directory."""
    result = subprocess.run([str(REPO / "tools" / "build-testbed.sh")], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"tools/build-testbed.sh failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def kubeconfig(
    server: str, ca: Path, *, cert: Path | None = None, key: Path | None = None, token: str | None = None
) -> dict:
    user = {"token": token} if token else {"client-certificate": str(cert), "client-key": str(key)}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testbed", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": "user", "namespace": "default"}}],
        "current-context": "testbed",
    }


def node_manifest(name: str, gpus: int) -> dict:
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": name, "nvidia.com/gpu.count": str(gpus)},
        },
        "spec": {"taints": []},
        "status": {"allocatable": capacity, "capacity": capacity},
    }


AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


@dataclass
class ControlPlane:
    bin_dir: Path
    work: Path
    audit: bool = False
    processes: list[Process] = field(default_factory=list)
    server: str = ""
    kubeconfig_path: Path = Path()
    pki: dict[str, Path] = field(default_factory=dict)

    @property
    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.processes)

    def _start(self, name: str, argv: list[str]) -> Process:
        process = Process(name, argv, self.work)
        self.processes.append(process)
        return process

    def _get(self, path: str) -> bool:
        context = ssl.create_default_context(cafile=str(self.pki["ca"]))
        context.load_cert_chain(str(self.pki["admin"]), str(self.pki["admin-key"]))
        with urllib.request.urlopen(f"{self.server}{path}", context=context, timeout=2) as response:
            return response.status == 200

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig_path), *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def start(self) -> ControlPlane:
        self.pki = make_pki(self.work / "pki")
        api_port = free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        self._start_apiserver(self._start_etcd(), api_port)
        kc = self.work / "admin.kubeconfig"
        p = self.pki
        kc.write_text(yaml.safe_dump(kubeconfig(self.server, p["ca"], cert=p["admin"], key=p["admin-key"])))
        self.kubeconfig_path = kc
        wait_for("kube-apiserver", lambda: self._get("/readyz"), 120, self.processes)
        self._start_controllers(kc)
        self._start_kwok(kc)
        for name, gpus in GPU_NODES.items():
            self.kubectl("apply", "-f", "-", input=yaml.safe_dump(node_manifest(name, gpus)))
        wait_for("KWOK nodes Ready", self._nodes_ready, 60, self.processes)
        wait_for(
            "default ServiceAccount",
            lambda: self.kubectl("get", "sa", "default", check=False).returncode == 0,
            60,
            self.processes,
        )
        return self

    def _start_etcd(self) -> str:
        """etcd on loopback; its client URL."""
        etcd_port, peer_port = free_port(), free_port()
        etcd = f"http://127.0.0.1:{etcd_port}"
        self._start(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name",
                "testbed",
                "--data-dir",
                str(self.work / "etcd"),
                "--listen-client-urls",
                etcd,
                "--advertise-client-urls",
                etcd,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-cluster",
                f"testbed=http://127.0.0.1:{peer_port}",
                "--log-level",
                "warn",
            ],
        )
        return etcd

    def _start_apiserver(self, etcd: str, api_port: int) -> None:
        """kube-apiserver on loopback, TLS from the test bed's PKI, RBAC on."""
        p = self.pki
        self._start(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                "--etcd-servers",
                etcd,
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                str(api_port),
                "--tls-cert-file",
                str(p["server"]),
                "--tls-private-key-file",
                str(p["server-key"]),
                "--client-ca-file",
                str(p["ca"]),
                "--service-account-issuer",
                "https://kubernetes.default.svc",
                "--service-account-key-file",
                str(p["sa-pub"]),
                "--service-account-signing-key-file",
                str(p["sa-key"]),
                "--service-cluster-ip-range",
                "10.96.0.0/16",
                "--authorization-mode",
                "Node,RBAC",
                # Loopback cannot be a Service endpoint, and pods here mount no token volumes.
                "--endpoint-reconciler-type",
                "none",
                "--disable-admission-plugins",
                "ServiceAccount",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=1",
                *self._audit_flags(),
            ],
        )

    def _start_controllers(self, kc: Path) -> None:
        """kube-controller-manager (Jobs, garbage collection) and kube-scheduler."""
        p = self.pki
        self._start_component(
            "kube-controller-manager",
            kc,
            [
                "--controllers",
                "*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
                "--service-account-private-key-file",
                str(p["sa-key"]),
                "--root-ca-file",
                str(p["ca"]),
                "--node-monitor-grace-period",
                "60s",
                "--concurrent-job-syncs",
                "10",
                # The default 20 QPS throttles pod creation long before this machine does.
                "--kube-api-qps",
                "200",
                "--kube-api-burst",
                "400",
            ],
        )
        self._start_component(
            "kube-scheduler",
            kc,
            [],
        )

    def _start_kwok(self, kc: Path) -> None:
        """KWOK: it runs the pods of the nodes annotated as fake, through the stages in STAGES."""
        self._start(
            "kwok",
            [
                str(self.bin_dir / "kwok"),
                "--kubeconfig",
                str(kc),
                "--config",
                str(STAGES),
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector",
                "kwok.x-k8s.io/node=fake",
                "--cidr",
                "10.0.0.1/24",
                "--node-ip",
                "10.0.0.1",
                "--server-address",
                f"127.0.0.1:{free_port()}",
            ],
        )

    def restart_apiserver(self, down_seconds: float = 2) -> None:
        """Stop kube-apiserver and start it again with the same flags; etcd keeps the state."""
        old = next(p for p in self.processes if p.name == "kube-apiserver")
        argv = list(old.popen.args)
        old.stop()
        self.processes.remove(old)
        time.sleep(down_seconds)
        self._start("kube-apiserver", argv)
        wait_for("kube-apiserver", lambda: self._get("/readyz"), 120, self.processes)

    def _start_component(self, name: str, kubeconfig_path: Path, flags: list[str]) -> Process:
        """A controller-manager or scheduler: admin kubeconfig, loopback, no leader election."""
        return self._start(
            name,
            [
                str(self.bin_dir / name),
                "--kubeconfig",
                str(kubeconfig_path),
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                str(free_port()),
                "--leader-elect=false",
                "--v=1",
                *flags,
            ],
        )

    @property
    def audit_log(self) -> Path:
        return self.work / "audit.log"

    def _audit_flags(self) -> list[str]:
        """Every request logged at Metadata level (who, what, when): the bench counts the operator's calls."""
        if not self.audit:
            return []
        policy = self.work / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        return ["--audit-policy-file", str(policy), "--audit-log-path", str(self.audit_log), "--audit-log-maxsize", "0"]

    def _nodes_ready(self) -> bool:
        out = self.kubectl(
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{' '}{end}",
        ).stdout
        return out.split() == ["True"] * len(GPU_NODES)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def start_control_plane(work: Path | None = None, audit: bool = False) -> ControlPlane:
    work = work or Path(tempfile.mkdtemp(prefix="mixtura-testbed-"))
    plane = ControlPlane(build_binaries(), work, audit)
    try:
        return plane.start()
    except BaseException:
        plane.stop()
        raise


def env_for(plane: ControlPlane) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(plane.kubeconfig_path)}
