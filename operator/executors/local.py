"""Runs job steps as local subprocesses: the embedded default of `mixtura run`, no cluster needed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mixtura_operator import layout
from mixtura_operator.api.mixturesearch import MixtureSearch
from mixtura_operator.executors.commands import Command, step_commands
from mixtura_operator.executors.launch import Launch, launch_of, torchrun
from mixtura_operator.reconcile import CreateJob, JobState


@dataclass
class _Run:
    job: CreateJob
    commands: list[Command]
    process: subprocess.Popen | None = None
    attempts: int = 0
    stage: int = 0
    log: Path | None = None


class LocalExecutor:
    """At most `max_parallel` steps at once; a failing step is retried `backoff_limit` times, like a Job, unless
    it exits for bad input (as the Jobs' podFailurePolicy)."""

    def __init__(self, log_dir: Path, max_parallel: int, backoff_limit: int, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.max_parallel = max(1, max_parallel)
        self.backoff_limit = backoff_limit
        self.env = {**os.environ, **env}
        self.queue: list[_Run] = []
        self.running: dict[str, _Run] = {}
        self.finished: dict[str, JobState] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def create(self, search: MixtureSearch, job: CreateJob, search_uri: str) -> bool:
        if job.step_key in self.running or job.step_key in self.finished:
            return False
        if any(run.job.step_key == job.step_key for run in self.queue):
            return False
        run = _Run(job, step_commands(search, job, search_uri, _launcher(search, job.step_key)))
        # A proposal goes first: the trials it makes wait for it, the trials already queued need not.
        self.queue.insert(0 if job.step == "propose" else len(self.queue), run)
        return True

    def cancel(self, search: MixtureSearch, step_key: str) -> None:
        self.queue = [run for run in self.queue if run.job.step_key != step_key]
        run = self.running.pop(step_key, None)
        if run is not None and run.process is not None:
            run.process.terminate()
            run.process.wait()
        self.finished.pop(step_key, None)

    def launcher_problem(self, search: MixtureSearch) -> str | None:
        """None: every launcher runs here as torchrun on this machine."""
        return None

    def observe(self, search: MixtureSearch) -> dict[str, JobState]:
        self._poll()
        states = dict(self.finished)
        states.update({key: JobState("Running") for key in self.running})
        states.update({run.job.step_key: JobState("Pending") for run in self.queue})
        return states

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Sleep until a step ends, `stop` is set or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop.is_set():
            if any(run.process and run.process.poll() is not None for run in self.running.values()):
                return
            time.sleep(0.05)

    def shutdown(self) -> None:
        for run in self.running.values():
            if run.process:
                run.process.terminate()
        for run in self.running.values():
            if run.process:
                run.process.wait()

    def _poll(self) -> None:
        for key, run in list(self.running.items()):
            code = run.process.poll() if run.process else None
            if code is None:
                continue
            del self.running[key]
            if code == 0 and run.stage + 1 < len(run.commands):
                run.stage += 1
                self._launch(run)
            elif code == 0:
                self.finished[key] = JobState("Succeeded")
            elif run.attempts <= self.backoff_limit and code != layout.EXIT_BAD_INPUT:
                self.queue.insert(0, run)
            else:
                self.finished[key] = JobState("Failed", _failure_message(code, run.log))
        while self.queue and len(self.running) < self.max_parallel:
            self._start(self.queue.pop(0))

    def _start(self, run: _Run) -> None:
        """A new attempt: the step's commands from the first."""
        run.attempts += 1
        run.stage = 0
        run.log = self.log_dir / f"{run.job.step_key.replace('/', '-')}.log"
        self._launch(run)

    def _launch(self, run: _Run) -> None:
        command = run.commands[run.stage]
        argv = list(command.argv)
        # The jobs (and a `python` trainer) run under this interpreter, which has Mixtura installed.
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        with run.log.open("ab") as log:
            log.write(f"--- attempt {run.attempts}, {command.name}: {' '.join(argv)}\n".encode())
            log.flush()
            try:
                run.process = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, env={**self.env, **command.env}
                )
            except OSError as error:
                self.finished[run.job.step_key] = JobState(
                    "Failed", f"cannot start {command.name} {argv[0]!r}: {error}"
                )
                return
        self.running[run.job.step_key] = run


def _launcher(search: MixtureSearch, step_key: str) -> list[str]:
    """torchrun on this machine for a step of several processes: all the nodes' processes (CPU, gloo, unless
    the machine has GPUs), so that a local run trains as the cluster would."""
    launch = launch_of(search.spec, step_key)
    return torchrun(Launch(processes=launch.world_size)) if launch.distributed else []


def _failure_message(code: int, log: Path | None) -> str:
    lines = log.read_text(errors="replace").strip().splitlines() if log and log.exists() else []
    last = next((line for line in reversed(lines) if line.strip()), "")
    return f"exit code {code}: {last[:300]}" if last else f"exit code {code}"
