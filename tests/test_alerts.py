"""Issue 6: the alert rules pass promtool's checks and a unit test per alert."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.prometheus


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("!!! promtool is not installed (Debian package prometheus; tools/build-testbed.sh) !!!")
    return path


def test_rules_are_valid(promtool):
    result = subprocess.run(
        [promtool, "check", "rules", str(REPO / "charts/mixtura/files/alerts.yaml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 rules found" in result.stdout


def test_each_alert_fires_when_it_should(promtool):
    result = subprocess.run(
        [promtool, "test", "rules", str(REPO / "tests/alerts_test.yaml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
