"""Seed noise from repeats: how much a trial's objective moves when only the init seed changes (pure).

`spec.search.repeatTop` reruns the best k mixtures with new seeds; each mixture and its reruns form a group.
The pooled within-group variance is the seed noise (the GP's observation noise once there are repeats); the
spread between mixtures is the std of the budget's trials, so the report can set one beside the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SeedNoise:
    variance: float  # pooled within-group variance, y units
    groups: int  # mixtures with at least one repeat
    repeats: int  # reruns among the observations

    @property
    def std(self) -> float:
        return float(np.sqrt(self.variance))


def repeat_groups(ids: Sequence[str], repeat_of: Mapping[str, str]) -> list[list[int]]:
    """Positions in `ids` of each rerun mixture: its original first, then its repeats (ids absent are left out)."""
    position = {tid: i for i, tid in enumerate(ids)}
    groups: dict[str, list[int]] = {}
    for tid, original in sorted(repeat_of.items()):
        if tid in position and original in position:
            groups.setdefault(original, [position[original]]).append(position[tid])
    return list(groups.values())


def pooled(y: np.ndarray, groups: Sequence[Sequence[int]]) -> SeedNoise | None:
    """The pooled variance of y within the groups (sum of squared deviations from each group's mean over the
    degrees of freedom, sum of n_g - 1), or None without a group of two."""
    groups = [np.asarray(g) for g in groups if len(g) >= 2]
    if not groups:
        return None
    squares = sum(float(np.sum((y[g] - y[g].mean()) ** 2)) for g in groups)
    freedom = sum(len(g) - 1 for g in groups)
    return SeedNoise(squares / freedom, len(groups), freedom)


def spread(y: np.ndarray) -> float:
    """The std between mixtures (sample std of the trials' objectives; 0 for fewer than two)."""
    return float(np.std(y, ddof=1)) if len(y) >= 2 else 0.0
