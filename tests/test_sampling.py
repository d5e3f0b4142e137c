"""Issue 20: the public mixture sampler a user's trainer draws its batches with."""

from __future__ import annotations

from collections import Counter

import numpy as np

from mixtura_jobs.data.sampling import MixtureSampler


def test_draws_follow_the_weights_and_never_a_held_out_index():
    train = {"a": np.array([4, 7, 9]), "b": np.arange(10)}
    keys = MixtureSampler({"a": 3.0, "b": 1.0}, train, seed=1).draw(4000)
    counts = Counter(name for name, _ in keys)
    assert abs(counts["a"] / 4000 - 0.75) < 0.03
    assert {i for name, i in keys if name == "a"} == {4, 7, 9}


def test_cell_weights_draw_the_samples_of_their_cell():
    groups = {"a": np.array(["x", "y", "x", "y"]), "b": np.array(["y", "y"])}
    train = {"a": np.arange(4), "b": np.arange(2)}
    keys = MixtureSampler({"x": 1.0, "y": 0.0}, train, groups, seed=0).draw(200)
    assert set(keys) == {("a", 0), ("a", 2)}


def test_the_same_seed_draws_the_same_keys():
    def draw(seed: int) -> list[tuple[str, int]]:
        return MixtureSampler({"a": 1.0, "b": 1.0}, {"a": np.arange(5), "b": np.arange(5)}, seed=seed).draw(50)

    assert draw(3) == draw(3) != draw(4)
