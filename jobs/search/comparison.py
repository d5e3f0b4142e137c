"""The chosen mixture against a baseline, as the papers measure it: the steps the target model needs on the
chosen mixture to reach the baseline's final held-out loss, over the baseline's steps. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise


def steps_to_reach(curve: Sequence[Sequence[float]], target: float) -> float | None:
    """The first step at which a held-out loss curve ([step, loss] rows, steps increasing) is at or below
    `target`, interpolated linearly between evaluations; None when it never gets there."""
    if curve and curve[0][1] <= target:
        return float(curve[0][0])
    for (s0, l0), (s1, l1) in pairwise(curve):
        if l1 <= target:
            return float(s0 + (s1 - s0) * (l0 - target) / (l0 - l1))
    return None


def steps_ratio(chosen: Sequence[Sequence[float]], baseline: Sequence[Sequence[float]]) -> float | None:
    """Steps the chosen curve needs to reach the baseline's final loss, over the baseline's final step:
    below 1 the chosen mixture is faster (0.5: twice as fast); None when it never reaches it."""
    reached = steps_to_reach(chosen, baseline[-1][1])
    return None if reached is None else reached / float(baseline[-1][0])
