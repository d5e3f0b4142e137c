"""A trial's objective value from its metrics.json: one pure function, used by the operator (best trial,
status, metrics) and the jobs (the GP's observations, the final pick, the report) alike.

The GP maximises, so `score` turns a value into "higher is better" whatever the goal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mixtura_operator.api.mixturesearch import Objective


class ObjectiveError(ValueError):
    """A run's metrics do not give the objective: the metric is missing or not a number."""


def objective_value(metrics: Mapping[str, Any], objective: Objective) -> float:
    """The metric's value; a per-domain metric ({domain: value}) averaged over its domains, weighted by
    `objective.domainWeights` when given (every domain equally otherwise): the sum of its `objective_parts`."""
    return math.fsum(objective_parts(metrics, objective).values())


def objective_parts(metrics: Mapping[str, Any], objective: Objective) -> dict[str, float]:
    """The terms whose sum is the objective: a per-domain metric's {domain: weight * value}, the weights
    normalised to sum to 1 (the domains weighted 0 left out); one number is its own one part {metric: value}."""
    if objective.metric not in metrics:
        found = ", ".join(sorted(metrics)) or "nothing"
        raise ObjectiveError(f"no {objective.metric!r} (spec.objective.metric) among the metrics: {found}")
    value = metrics[objective.metric]
    if isinstance(value, Mapping):
        return {
            d: w * _number(value[d], f"{objective.metric}.{d}") for d, w in _domain_weights(value, objective).items()
        }
    if objective.domain_weights:
        raise ObjectiveError(
            f"{objective.metric!r} is one number, not one per domain, so spec.objective.domainWeights cannot weight it"
        )
    return {objective.metric: _number(value, objective.metric)}


def _domain_weights(values: Mapping[str, Any], objective: Objective) -> dict[str, float]:
    if not objective.domain_weights:
        if not values:
            raise ObjectiveError(f"{objective.metric!r} has no domains")
        return {d: 1 / len(values) for d in values}
    missing = sorted(d for d, w in objective.domain_weights.items() if w > 0 and d not in values)
    if missing:
        raise ObjectiveError(
            f"{objective.metric!r} has no value for {', '.join(missing)} (spec.objective.domainWeights)"
        )
    weighted = {d: w for d, w in objective.domain_weights.items() if w > 0}
    total = sum(weighted.values())
    return {d: w / total for d, w in weighted.items()}


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ObjectiveError(f"{name!r} is {value!r}, not a number")
    return float(value)


def score(value: float, objective: Objective) -> float:
    """Higher is better: the value itself when maximising, its negative when minimising."""
    return value if objective.goal == "maximize" else -value


def label(objective: Objective) -> str:
    """A short name, e.g. `min heldout_loss` or `max heldout_loss{charts:1,documents:1}`."""
    weights = ",".join(f"{d}:{w:g}" for d, w in sorted(objective.domain_weights.items()))
    return f"{objective.goal[:3]} {objective.metric}" + (f"{{{weights}}}" if weights else "")
