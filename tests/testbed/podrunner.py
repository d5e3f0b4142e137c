"""The test bed's stand-in for a kubelet: runs the init containers, then the first container, of each Running
Job pod on a KWOK node as local processes with the pod's environment (the first failure ends the pod), then
records the exit code on the pod, where a KWOK Stage turns it into Succeeded or Failed, so that Jobs progress
through the real job controller. A pod's emptyDir volumes become folders of its own, and environment values
under their mount paths point there (a process here cannot mount them).

The test bed's address override: a pod in a subdomain (an Indexed Job's pods with their headless Service) names
its siblings `<hostname>.<subdomain>`, which no DNS here resolves. In its command and environment such a name
becomes 127.0.0.1, and its port one free port of this machine per subdomain and port, so that the pods of
one Job meet on loopback and two Jobs (or two test beds on one machine) never share a port."""

from __future__ import annotations

import base64
import math
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from kubernetes import client
from urllib3.exceptions import MaxRetryError

from testbed.procs import free_port

EXIT_CODE = "testbed.mixtura.dev/exit-code"
OUTPUT = "testbed.mixtura.dev/output"
# Seconds (one attempt a second) the pod runner keeps trying the API server while it is down.
API_ATTEMPTS = 60
TESTBED_ENV = "MIXTURA_TESTBED"
# A pod's terminationGracePeriodSeconds by default.
GRACE_SECONDS = 30


def _resource(container, ref) -> str:
    """A CPU request as the kubelet's Downward API gives it: whole units of the divisor, rounded up."""
    if ref.resource != "requests.cpu":
        raise ValueError(f"pod runner: resourceFieldRef {ref.resource} is not emulated")
    value = (container.resources.requests or {}).get("cpu", "0")
    cores = float(value[:-1]) / 1000 if value.endswith("m") else float(value)
    divisor = str(ref.divisor or "1")
    unit = float(divisor[:-1]) / 1000 if divisor.endswith("m") else float(divisor)
    return str(math.ceil(cores / unit))


def _field(pod, path: str) -> str:
    meta = pod.metadata
    values = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
    }
    if path in values:
        return values[path] or ""
    for kind, mapping in (("labels", meta.labels), ("annotations", meta.annotations)):
        prefix = f"metadata.{kind}['"
        if path.startswith(prefix):
            return (mapping or {}).get(path[len(prefix) : -2], "")
    raise ValueError(f"fieldRef {path} is not supported by the test pod runner")


def _while_the_server_is_down(call, *args):
    """`call(*args)`, tried again each second while the API server is down (restarted by a test), as a kubelet
    retries: a pod whose environment is read, or whose exit code is recorded, during the outage neither fails nor
    is lost. An answer from the server (an ApiException under 500) is raised."""
    for _ in range(API_ATTEMPTS - 1):
        try:
            return call(*args)
        except client.ApiException as error:
            if error.status < 500:
                raise
        except MaxRetryError:
            pass
        time.sleep(1)
    return call(*args)


def stop_container(process: subprocess.Popen) -> None:
    """As a kubelet stops a container: SIGTERM (torchrun's agent then stops its workers, which run in sessions
    of their own), SIGKILL after the grace period."""
    process.terminate()
    try:
        process.wait(GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()


class PodRunner:
    def __init__(self, api: client.CoreV1Api, log_dir: Path, cwd: Path, extra_env: dict[str, str]) -> None:
        self.api, self.log_dir, self.cwd, self.extra_env = api, log_dir, cwd, extra_env
        self.started: dict[str, subprocess.Popen | None] = {}
        self.exit_codes: dict[str, int] = {}
        self._ports: dict[tuple[str, str, str], int] = {}
        self._ports_lock = threading.Lock()
        self._stopping: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pod-runner", daemon=True)
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> PodRunner:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for process in list(self.started.values()):
            if process and process.poll() is None:
                stop_container(process)

    def _secret(self, name: str, namespace: str) -> dict[str, str]:
        data = _while_the_server_is_down(self.api.read_namespaced_secret, name, namespace).data or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    def _config_map(self, name: str, namespace: str) -> dict[str, str]:
        return _while_the_server_is_down(self.api.read_namespaced_config_map, name, namespace).data or {}

    def _env(self, pod, container) -> dict[str, str]:
        env = {**self.extra_env, TESTBED_ENV: "1"}
        ns = pod.metadata.namespace
        for source in container.env_from or []:
            if source.secret_ref:
                env.update(self._secret(source.secret_ref.name, ns))
            if source.config_map_ref:
                env.update(self._config_map(source.config_map_ref.name, ns))
        for var in container.env or []:
            if var.value_from is None:
                env[var.name] = var.value or ""
            elif var.value_from.secret_key_ref:
                ref = var.value_from.secret_key_ref
                env[var.name] = self._secret(ref.name, ns)[ref.key]
            elif var.value_from.config_map_key_ref:
                ref = var.value_from.config_map_key_ref
                env[var.name] = self._config_map(ref.name, ns)[ref.key]
            elif var.value_from.field_ref:
                env[var.name] = _field(pod, var.value_from.field_ref.field_path)
            elif var.value_from.resource_field_ref:
                env[var.name] = _resource(container, var.value_from.resource_field_ref)
        return self._mount_empty_dirs(pod, container, env)

    def _loopback(self, pod, text: str) -> str:
        """`text` with the DNS names of the pod's subdomain (`<host>.<subdomain>[.<ns>.svc[.cluster.local]]`,
        with an optional port) pointing at loopback."""
        subdomain, namespace = pod.spec.subdomain, pod.metadata.namespace
        if not subdomain:
            return text
        name = rf"[a-z0-9-]+\.{re.escape(subdomain)}(?:\.{re.escape(namespace)}\.svc(?:\.cluster\.local)?)?"

        def local(match: re.Match) -> str:
            port = match.group(1)
            if port is None:
                return "127.0.0.1"
            with self._ports_lock:
                mapped = self._ports.setdefault((namespace, subdomain, port), free_port())
            return f"127.0.0.1:{mapped}"

        return re.sub(rf"(?<![\w.-]){name}(?::(\d+))?(?![\w.-])", local, text)

    def _mount_empty_dirs(self, pod, container, env: dict[str, str]) -> dict[str, str]:
        empty = {v.name for v in pod.spec.volumes or [] if v.empty_dir is not None}
        for mount in container.volume_mounts or []:
            if mount.name not in empty:
                continue
            folder = self.log_dir / pod.metadata.uid / mount.name
            folder.mkdir(parents=True, exist_ok=True)
            for name, value in env.items():
                if value == mount.mount_path or value.startswith(mount.mount_path.rstrip("/") + "/"):
                    env[name] = str(folder) + value[len(mount.mount_path) :]
        return env

    def execute(self, pod, container, log: Path) -> int:
        """Run the container's command as a local process; its exit code."""
        argv = [self._loopback(pod, arg) for arg in [*(container.command or []), *(container.args or [])]]
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        env = {name: self._loopback(pod, value) for name, value in self._env(pod, container).items()}
        if pod.spec.hostname:
            # What a container's runtime sets: an Indexed Job's pod is `<job>-<index>`.
            env["HOSTNAME"] = pod.spec.hostname
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=container.working_dir or self.cwd
            )
            self.started[pod.metadata.uid] = process
            return process.wait()

    def _run(self, pod) -> None:
        uid = pod.metadata.uid
        log = self.log_dir / f"{pod.metadata.namespace}_{pod.metadata.name}.log"
        try:
            code = 0
            for container in [*(pod.spec.init_containers or []), pod.spec.containers[0]]:
                code = self.execute(pod, container, log)
                if code != 0:
                    break
        except Exception as error:
            log.write_text(f"pod runner could not start the container: {error}\n")
            code = 128
        self.exit_codes[uid] = code
        output = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        patch = {"metadata": {"annotations": {EXIT_CODE: str(code), OUTPUT: output}}}
        try:
            _while_the_server_is_down(self.api.patch_namespaced_pod, pod.metadata.name, pod.metadata.namespace, patch)
        except client.ApiException as error:
            if error.status != 404:
                raise
        finally:
            self.finished(pod)

    def finished(self, pod) -> None:
        """Called once a pod has run and its exit code is recorded, or recording it gave up (a hook for benchmarks)."""

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                pods = self.api.list_pod_for_all_namespaces(field_selector="status.phase=Running").items
            except Exception:
                continue
            running = set()
            for pod in pods:
                uid = pod.metadata.uid
                running.add(uid)
                owned_by_job = any(o.kind == "Job" for o in pod.metadata.owner_references or [])
                annotated = EXIT_CODE in (pod.metadata.annotations or {})
                if owned_by_job and not annotated and uid not in self.started and not pod.metadata.deletion_timestamp:
                    self.started[uid] = None
                    threading.Thread(target=self._run, args=(pod,), daemon=True).start()
            for uid, process in list(self.started.items()):
                ended = uid not in running and process and process.poll() is None and uid not in self.exit_codes
                if ended and uid not in self._stopping:
                    self._stopping.add(uid)
                    threading.Thread(target=stop_container, args=(process,), daemon=True).start()
