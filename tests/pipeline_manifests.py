"""Small manifests for the end-to-end pipeline tests (tests/test_pipeline.py): the demo search, shrunk so
that each job step costs little more than its imports."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

API_VERSION = "mixtura.dev/v1alpha1"


def domain_set(domains: list[dict], name: str = "demo") -> dict:
    """A DomainSet of `domains` (entries as `make_demo_corpus` returns them)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "DomainSet",
        "metadata": {"name": name},
        "spec": {"domains": copy.deepcopy(domains)},
    }


def mixture_search(
    artifacts: Path,
    *,
    name: str = "demo",
    domain_set_name: str = "demo",
    method: str = "madmix+mixatlas",
    max_trials: int = 4,
    parallel_trials: int = 2,
    max_failed_trials: int = 2,
    proxy_steps: int = 10,
    final_training: bool = True,
    final_steps: int = 10,
    fail_trials: tuple[str, ...] = (),
    seed: int = 0,
    search: dict | None = None,
    compare_with: tuple[str, ...] = (),
    **spec: Any,
) -> dict:
    """The demo MixtureSearch with a tiny budget, its artifacts under the local directory `artifacts`;
    `search`: more of spec.search; `spec`: more of the spec (e.g. trainer, objective)."""
    proxy: dict[str, Any] = {"preset": "proxy"}
    if fail_trials:
        proxy["failTrials"] = list(fail_trials)
    return {
        "apiVersion": API_VERSION,
        "kind": "MixtureSearch",
        "metadata": {"name": name},
        "spec": {
            "domainSetRef": {"name": domain_set_name},
            "method": method,
            "models": {
                "embedding": {"config": {}},
                "proxy": {"config": proxy},
                "target": {"config": {"preset": "target"}},
            },
            "madmix": {"samplesPerDomain": 24},
            "search": {"seed": seed, **(search or {})},
            "budget": {
                "maxTrials": max_trials,
                "parallelTrials": parallel_trials,
                "maxFailedTrials": max_failed_trials,
                "proxySteps": proxy_steps,
            },
            # A failing step fails at once: a retry would only rerun the injected failure.
            "resources": {"gpusPerJob": 0, "backoffLimit": 0},
            "artifacts": {"uri": Path(artifacts).resolve().as_uri()},
            "finalTraining": {"enabled": final_training, "steps": final_steps, "compareWith": list(compare_with)},
            **spec,
        },
    }


def write_manifest(path: Path, *documents: dict) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path
