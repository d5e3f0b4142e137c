"""Drawing training samples by a mixture's weights: Mixtura's public sampler, for the built-in trainer and
for a user's own (see `mixtura_jobs.training.trainer_run`). It draws keys, (domain, index) pairs; reading them is the
trainer's own business, in whatever format its data is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def sample_batch_indices(
    weights: dict[str, float], members: dict[str, Sequence[tuple[str, int]]], batch_size: int, rng: np.random.Generator
) -> list[tuple[str, int]]:
    """Draw each row's group (a domain, or a concept x task cell) by the mixture weights, then one of the
    group's (domain, index) samples uniformly."""
    unknown = sorted(set(weights) - set(members))
    if unknown:
        raise ValueError(f"mixture weights name unknown domains or cells: {unknown}")
    # Sorted names: the draw must not depend on the order the weights happen to be listed in.
    names = [g for g in sorted(weights) if weights[g] > 0 and len(members[g]) > 0]
    if not names:
        raise ValueError("the mixture puts no weight on any domain or cell that has samples")
    p = np.array([weights[g] for g in names], dtype=np.float64)
    picks = rng.choice(len(names), size=batch_size, p=p / p.sum())
    return [members[names[k]][int(rng.integers(len(members[names[k]])))] for k in picks]


def group_members(
    train: dict[str, np.ndarray], groups: dict[str, np.ndarray] | None = None
) -> dict[str, list[tuple[str, int]]]:
    """Each group's samples as (domain, position in the domain's train split). `train` holds each domain's
    training indices; `groups` each domain's per-sample group (cell id), by default the domain itself. A
    group whose samples are all held out is there, empty."""
    members: dict[str, list[tuple[str, int]]] = {}
    for name, indices in train.items():
        for group in [name] if groups is None else np.unique(groups[name]):
            members.setdefault(str(group), [])
        labels = [name] * len(indices) if groups is None else groups[name][indices]
        for position, group in enumerate(labels):
            members[str(group)].append((name, position))
    return members


class MixtureSampler:
    """Draws (domain, sample index) keys: each row's group (a domain, or a concept x task cell when `groups`
    gives each domain's per-sample cell) by `weights`, then one of the group's samples among `train`."""

    def __init__(
        self,
        weights: Mapping[str, float],
        train: Mapping[str, np.ndarray],
        groups: Mapping[str, np.ndarray] | None = None,
        seed: int = 0,
    ) -> None:
        """`train`: each domain's indices that may be drawn; `groups`: each domain's group per sample index."""
        self.weights = dict(weights)
        self.train = {name: np.asarray(indices, dtype=np.int64) for name, indices in train.items()}
        self.members = group_members(self.train, None if groups is None else dict(groups))
        self.rng = np.random.default_rng(seed)

    def draw(self, batch_size: int) -> list[tuple[str, int]]:
        picks = sample_batch_indices(self.weights, self.members, batch_size, self.rng)
        return [(name, int(self.train[name][position])) for name, position in picks]
