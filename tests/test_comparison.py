"""Steps to reach a baseline's final loss, on curves whose answer is known."""

from __future__ import annotations

import pytest

from mixtura_jobs.search.comparison import steps_ratio, steps_to_reach

CURVE = [[0, 4.0], [10, 3.0], [20, 2.0], [30, 1.5]]


def test_steps_to_reach_interpolates_between_evaluations():
    assert steps_to_reach(CURVE, 2.5) == pytest.approx(15.0)
    assert steps_to_reach(CURVE, 3.0) == pytest.approx(10.0)
    assert steps_to_reach(CURVE, 5.0) == 0.0
    assert steps_to_reach(CURVE, 1.0) is None


def test_the_ratio_is_below_one_when_the_chosen_mixture_is_faster_and_none_when_it_never_gets_there():
    baseline = [[0, 4.0], [10, 3.5], [20, 3.0], [30, 2.5]]
    assert steps_ratio(CURVE, baseline) == pytest.approx(15.0 / 30.0)
    assert steps_ratio(baseline, CURVE) is None
    assert steps_ratio(CURVE, CURVE) == pytest.approx(1.0)
