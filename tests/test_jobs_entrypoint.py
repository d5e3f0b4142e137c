"""The jobs' entrypoint records any failure in the store itself, and tells bad input by its exit code."""

from __future__ import annotations

import os
import subprocess
import sys

from mixtura_operator import layout
from mixtura_operator.store import open_store


def test_a_step_that_raises_writes_failed_with_the_error_and_exits_for_bad_input(tmp_path):
    store = open_store(tmp_path.as_uri())
    run = subprocess.run(
        [sys.executable, "-m", "mixtura_jobs", "proxy-train", "--search-uri", store.uri, "--trial", "007"],
        capture_output=True,
        text=True,
        env={**os.environ, "MIXTURA_THREADS": "1"},
        timeout=300,
    )
    assert run.returncode == layout.EXIT_BAD_INPUT, run.stderr
    message = store.get_bytes(layout.failure_marker("trial/007")).decode()
    assert message.startswith("ArtifactNotFound") and layout.SNAPSHOT in message
