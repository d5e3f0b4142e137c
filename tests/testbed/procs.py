"""Starting and stopping server processes on loopback, with their logs kept for failure reports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """One server process; stdout and stderr go to `<log_dir>/<name>.log`."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        self._handle = self.log.open("ab")
        self.popen = subprocess.Popen(
            argv,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return f"--- {self.name} (exit {self.popen.poll()}) {self.log}\n" + "\n".join(text[-lines:])

    def stop(self, timeout: float = 10) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._handle.close()


def wait_for(what: str, ready: Callable[[], bool], timeout: float, processes: list[Process]) -> None:
    """Poll `ready` until true; on timeout or a dead process, raise with the servers' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [p for p in processes if not p.alive()]
        if dead:
            raise RuntimeError(f"{what}: {dead[0].name} exited\n" + "\n".join(p.tail() for p in processes))
        try:
            if ready():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not ready after {timeout}s\n" + "\n".join(p.tail() for p in processes))


def http_status(port: int, path: str) -> int:
    """The status code of GET http://127.0.0.1:PORT/PATH (a probe, as the kubelet's)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def operator_argv(namespace: str, metrics_port: int, health_port: int | None = None) -> list[str]:
    """`mixtura operator` for one namespace, serving on loopback (the test bed's operator process)."""
    return [
        sys.executable,
        "-m",
        "mixtura_operator.cli",
        "operator",
        "--namespace",
        namespace,
        "--metrics-port",
        str(metrics_port),
        "--health-port",
        str(health_port or free_port()),
        "--bind-address",
        "127.0.0.1",
    ]
