"""Training data of a mixture, memory bounded by a shuffle buffer whatever the corpus size.

Each domain is split into train and held-out positions (seeded by its name). A domain of at most
`buffer_size` samples is held whole; a larger one streams its shards (in a seeded random order, pass after
pass) through a buffer of `buffer_size` samples, each group (the domain, or a concept x task cell) keeping
its own slots. A group's pool draws a domain by the group's sample count in it, then a slot; a streamed slot
that was drawn takes the group's next sample from the stream. When every domain is held whole the draws are
those of plain uniform sampling from the train splits.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mixtura_jobs.data.domain import DataError, DomainData
from mixtura_jobs.data.samples import Sample
from mixtura_jobs.data.sampling import group_members


class KeyedGroups(dict):
    """Each sample's group by its key; samples not listed (a domain's text-only rows) are in `default`."""

    def __init__(self, groups: Mapping[str, str], default: str) -> None:
        super().__init__(groups)
        self.default = default

    def __missing__(self, key: str) -> str:
        return self.default


# A domain's groups: one group for all its samples, or each sample's group by its key.
Groups = str | Mapping[str, str]


def split_heldout(name: str, n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) positions of a domain's n samples, in random order (so any prefix is a fair subset).

    Seeded by the domain's name, not the trial's seed: every trial of a search is scored on the same samples.
    """
    if n < 2:
        raise ValueError(f"domain {name} has {n} samples; training and held-out scoring need at least 2")
    order = np.random.default_rng(zlib.crc32(name.encode())).permutation(n)
    k = min(n - 1, max(1, round(n * fraction)))
    return order[k:], order[:k]


def group_of(groups: Groups, key: str) -> str:
    """The group of the sample `key` in a domain's `groups`."""
    return groups if isinstance(groups, str) else groups[key]


def _group_of(groups: Groups) -> Callable[[Sample], str]:
    return lambda sample: group_of(groups, sample.key)


class DomainStream:
    """A streamed domain's training samples: a shuffle buffer of per-group slots over endless passes."""

    def __init__(
        self, data: DomainData, heldout: np.ndarray, groups: Groups, buffer_size: int, rng: np.random.Generator
    ) -> None:
        self.data = data
        self.skip = np.zeros(data.total, dtype=bool)
        self.skip[heldout] = True
        self.group_of = _group_of(groups)
        self.buffer_size = buffer_size
        self.rng = rng
        self.buffers: dict[str, list[Sample]] = {}
        self.size = 0
        self._items = self._passes()
        while self.size < min(buffer_size, data.total - len(heldout)):
            self._keep(next(self._items))

    def _passes(self) -> Iterator[Sample]:
        while True:
            empty = True
            for position, sample in self.data.stream(self.rng):
                if not self.skip[position]:
                    empty = False
                    yield sample
            if empty:
                raise DataError(f"domain {self.data.name}: no readable training sample")

    def _keep(self, sample: Sample) -> None:
        self.buffers.setdefault(self.group_of(sample), []).append(sample)
        self.size += 1

    def next_of(self, group: str) -> Sample:
        """The stream's next sample of `group`; samples of other groups fill free slots or are passed over."""
        for _ in range(self.data.total + 1):
            sample = next(self._items)
            if self.group_of(sample) == group:
                return sample
            if self.size < self.buffer_size:
                self._keep(sample)
        raise DataError(f"domain {self.data.name}: a whole pass holds no training sample of {group}")

    def draw(self, group: str, rank: int, count: int) -> Sample:
        """A slot of `group`'s buffer, `rank` of `count` scaled to the slots; the slot takes the next sample."""
        slots = self.buffers.setdefault(group, [])
        if not slots:
            slots.append(self.next_of(group))
            self.size += 1
        j = rank * len(slots) // count
        sample, slots[j] = slots[j], self.next_of(group)
        return sample


@dataclass
class _Part:
    """One domain's share of a group: its samples held whole, or its stream."""

    domain: str
    count: int
    held: Sequence[Sample] = ()
    stream: DomainStream | None = None

    def draw(self, group: str, rank: int) -> Sample:
        return self.held[rank] if self.stream is None else self.stream.draw(group, rank, self.count)


@dataclass
class GroupPool:
    """A group's training samples across domains, indexable as one sequence of (domain, sample): index u
    falls in a domain's share by the group's sample count there."""

    name: str
    parts: list[_Part] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(part.count for part in self.parts)

    def __getitem__(self, u: int) -> tuple[str, Sample]:
        for part in self.parts:
            if u < part.count:
                return part.domain, part.draw(self.name, u)
            u -= part.count
        raise IndexError(u)


@dataclass
class MixtureData:
    heldout: dict[str, list[Sample]]
    pools: dict[str, GroupPool]


def _held(data: DomainData, train: np.ndarray, heldout: np.ndarray, groups: Groups, pools: dict) -> list[Sample]:
    loaded = dict(data.stream())
    present = [p for p in train if p in loaded]
    group_of = _group_of(groups)
    labels = {data.name: np.array([group_of(loaded[p]) for p in present], dtype=str)}
    for group in ({groups} if isinstance(groups, str) else set(groups.values())) - set(labels[data.name]):
        pools.setdefault(group, GroupPool(group))
    for group, members in group_members({data.name: np.arange(len(present))}, labels).items():
        held = [loaded[present[k]] for _, k in members]
        pools.setdefault(group, GroupPool(group)).parts.append(_Part(data.name, len(held), held))
    return [loaded[p] for p in heldout if p in loaded]


def _streamed(
    data: DomainData,
    train: np.ndarray,
    heldout: np.ndarray,
    groups: Groups,
    pools: dict,
    sizes: tuple[int, int],
    seed: int,
) -> list[Sample]:
    max_heldout, buffer_size = sizes
    picked = dict(data.read(heldout[:max_heldout]))
    stream = DomainStream(
        data, heldout, groups, buffer_size, np.random.default_rng([seed, zlib.crc32(data.name.encode())])
    )
    shares = (
        {groups: 1.0} if isinstance(groups, str) else {g: c / len(groups) for g, c in Counter(groups.values()).items()}
    )
    for group, share in sorted(shares.items()):
        pools.setdefault(group, GroupPool(group)).parts.append(
            _Part(data.name, max(1, round(share * len(train))), stream=stream)
        )
    return [picked[p] for p in heldout[:max_heldout] if p in picked]


def mixture_data(
    domains: Mapping[str, DomainData],
    groups: Mapping[str, Groups] | None,
    heldout_fraction: float,
    max_heldout: int,
    buffer_size: int,
    seed: int,
) -> MixtureData:
    """Every domain's held-out samples (at most `max_heldout`) and the groups' training pools."""
    heldout: dict[str, list[Sample]] = {}
    pools: dict[str, GroupPool] = {}
    for name, data in domains.items():
        train, out = split_heldout(name, data.total, heldout_fraction)
        spec = name if groups is None else groups[name]
        if data.total <= buffer_size:
            heldout[name] = _held(data, train, out, spec, pools)[:max_heldout]
        else:
            heldout[name] = _streamed(data, train, out, spec, pools, (max_heldout, buffer_size), seed)
    return MixtureData(heldout, pools)
