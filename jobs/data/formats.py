"""The format-reader seam: what every corpus format (npz, WebDataset, LLaVA JSON) provides, and the byte source
the readers read through.

A reader lists its shards, indexes one (sample counts, and for tar shards each sample's byte offsets), and
reads a shard's samples in order, all of them or only chosen positions. Unreadable records come out as
`BadSample`s, for the caller to count and skip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from mixtura_jobs.data.samples import Sample
from mixtura_operator.domain_index import ShardIndex
from mixtura_operator.store import ArtifactStore


@dataclass(frozen=True)
class BadSample:
    """A record that could not be read: its key (or shard and position when the key itself is unreadable)."""

    key: str
    reason: str


Item = Sample | BadSample


class FormatReader(Protocol):
    format: str
    source: DataSource

    @property
    def bytes_read(self) -> int:
        """Bytes read from the store so far."""

    def list_shards(self) -> list[str]:
        """The domain's shard (or JSON file) names, in order."""

    def index_shard(self, name: str) -> ShardIndex:
        """The shard's entry of the domain index, read from the shard itself."""

    def read_shard(self, shard: ShardIndex, positions: Sequence[int] | None = None) -> Iterator[Item]:
        """The shard's samples in order; with `positions` (sorted, within the shard) only those, reading as
        little of the shard as the format allows."""


class _CountingStream:
    def __init__(self, raw: BinaryIO, source: DataSource) -> None:
        self.raw, self.source = raw, source

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.source.bytes_read += len(data)
        return data

    def close(self) -> None:
        self.raw.close()


class DataSource:
    """A domain's files, read through a store, counting the bytes read (the embed step reports them)."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self.bytes_read = 0

    def list(self, prefix: str = "") -> list[str]:
        return self.store.list(prefix)

    def read(self, key: str) -> bytes:
        data = self.store.get_bytes(key)
        self.bytes_read += len(data)
        return data

    def read_range(self, key: str, start: int, stop: int) -> bytes:
        data = self.store.get_range(key, start, stop)
        self.bytes_read += len(data)
        return data

    def open(self, key: str) -> _CountingStream:
        return _CountingStream(self.store.open_read(key), self)
