"""Issue 6: the exported metrics are exactly the README's table, with bounded labels."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

from mixtura_operator import metrics

README = Path(__file__).resolve().parents[1] / "README.md"
ALLOWED_LABELS = {"namespace", "search", "phase", "state", "step", "baseline"}


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    section = README.read_text().split("## Metrics", 1)[1]
    rows = re.findall(r"^\| `(mixtura_\w+)` \| (\w+) \| ?([\w, ]*?) ?\|", section, flags=re.MULTILINE)
    return {name: (kind, tuple(x.strip() for x in labels.split(",") if x.strip())) for name, kind, labels in rows}


def exported() -> dict[str, tuple[str, tuple[str, ...]]]:
    kinds = {Gauge: "gauge", Counter: "counter", Histogram: "histogram"}
    out = {}
    for value in vars(metrics).values():
        for cls, kind in kinds.items():
            if isinstance(value, cls):
                name = value._name + ("_total" if kind == "counter" else "")
                out[name] = (kind, tuple(value._labelnames))
    return out


def test_metrics_match_the_readme():
    assert exported() == documented()


def test_labels_are_bounded():
    for name, (_, labels) in exported().items():
        assert set(labels) <= ALLOWED_LABELS, name
