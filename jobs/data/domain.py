"""One domain's data, whatever its format: its index, seeded random subsets read shard by shard, and whole
passes streamed one shard at a time. Bad samples are skipped and counted here, for every caller alike."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import numpy as np

from mixtura_jobs.data.bad_samples import BadSampleTally
from mixtura_jobs.data.formats import BadSample, DataSource, FormatReader
from mixtura_jobs.data.npz_shards import DomainSamples, MemoryReader, NpzReader
from mixtura_jobs.data.samples import Sample
from mixtura_operator.api.domainset import Domain
from mixtura_operator.domain_index import DomainIndex, DomainLocation, read_index, write_index
from mixtura_operator.store import open_store

# A stream checks the bad share at shard ends once it has seen this many samples (a few bad samples in the
# first shard say little about the domain).
_CHECK_AFTER = 1000


class DataError(ValueError):
    """A domain whose data cannot be read at all; the message names the domain."""


class DomainData:
    def __init__(self, name: str, reader: FormatReader, index: DomainIndex, max_bad_fraction: float = 0.01) -> None:
        self.name = name
        self.reader = reader
        self.index = index
        self.tally = BadSampleTally(name, max_bad_fraction)
        self._starts = index.starts()

    @property
    def total(self) -> int:
        return self.index.total

    @property
    def bytes_read(self) -> int:
        return self.reader.bytes_read

    def _good(self, positions: Iterable[int], items: Iterable[Sample | BadSample]) -> Iterator[tuple[int, Sample]]:
        for position, item in zip(positions, items, strict=False):
            if isinstance(item, BadSample):
                self.tally.skip(item)
            else:
                self.tally.good()
                yield position, item

    def read(self, positions: Iterable[int]) -> Iterator[tuple[int, Sample]]:
        """The good samples at `positions` (domain positions, any order) with their positions, in position
        order; only the shards holding them are read."""
        wanted = np.unique(np.fromiter(positions, dtype=np.int64))
        shard_of = np.searchsorted(self._starts, wanted, side="right") - 1
        for k in np.unique(shard_of):
            chosen = wanted[shard_of == k]
            local = (chosen - self._starts[k]).tolist()
            yield from self._good(chosen.tolist(), self.reader.read_shard(self.index.shards[k], local))
        self.tally.check()

    def stream(self, rng: np.random.Generator | None = None) -> Iterator[tuple[int, Sample]]:
        """One pass over every good sample with its position: shards in order, or in `rng`'s order."""
        order = range(len(self.index.shards)) if rng is None else rng.permutation(len(self.index.shards))
        for k in order:
            start = int(self._starts[k])
            yield from self._good(itertools.count(start), self.reader.read_shard(self.index.shards[k]))
            if self.tally.seen >= _CHECK_AFTER:
                self.tally.check()
        self.tally.check()

    def draw(self, n: int, seed: int) -> np.ndarray:
        """`n` positions uniformly at random without replacement (all of them when n covers the domain),
        sorted: the same seed always draws the same samples."""
        if n >= self.total:
            return np.arange(self.total)
        return np.sort(np.random.default_rng(seed).choice(self.total, size=n, replace=False))


def in_memory(name: str, samples: DomainSamples) -> DomainData:
    reader = MemoryReader(samples)
    return DomainData(name, reader, build_index(reader))


def detect_format(source: DataSource, location: DomainLocation) -> str:
    names = [location.pattern] if location.pattern else source.list()
    if any(".tar" in n for n in names):
        return "webdataset"
    if any(n.rsplit("/", 1)[-1].startswith("shard-") and n.endswith(".npz") for n in names):
        return "npz"
    if any(n.endswith((".json", ".jsonl")) for n in names):
        return "llava"
    raise DataError(f"no .tar shards, shard-*.npz files or LLaVA .json/.jsonl files at {location.root}")


def make_reader(fmt: str, source: DataSource, domain: Domain, location: DomainLocation, endpoint_url: str | None):
    from mixtura_jobs.data.llava import LlavaReader
    from mixtura_jobs.data.webdataset_shards import WebDatasetReader

    if fmt == "webdataset":
        return WebDatasetReader(source, location.pattern)
    if fmt == "llava":
        images = source if domain.image_root is None else DataSource(open_store(domain.image_root, endpoint_url))
        return LlavaReader(source, images, location.pattern)
    return NpzReader(source)


def build_index(reader: FormatReader) -> DomainIndex:
    """The domain index, read from every shard (for tar shards, the whole shard: their offsets)."""
    shards = reader.list_shards()
    if not shards:
        raise DataError("no shards to index")
    return DomainIndex(reader.format, tuple(reader.index_shard(name) for name in shards))


def _open(domain: Domain, endpoint_url: str | None) -> tuple[FormatReader, DomainLocation, DomainIndex | None]:
    location = DomainLocation.parse(domain.uri)
    source = DataSource(open_store(location.root, endpoint_url))
    index = read_index(source.store, location)
    fmt = domain.format or (index.format if index is not None else detect_format(source, location))
    if index is not None and index.format != fmt:
        raise DataError(f"its index says format {index.format}, the DomainSet says {fmt}")
    return make_reader(fmt, source, domain, location, endpoint_url), location, index


def _named(domain: Domain, error: Exception) -> DataError:
    return DataError(f"domain {domain.name} ({domain.uri}): {error}")


def index_domain(domain: Domain, endpoint_url: str | None = None) -> DomainIndex:
    """Index the domain from its shards and write the index beside them (`mixtura index`)."""
    try:
        reader, location, _ = _open(domain, endpoint_url)
        index = build_index(reader)
    except (ValueError, KeyError) as error:
        raise _named(domain, error) from None
    write_index(reader.source.store, location, index)
    return index


def open_domain(domain: Domain, endpoint_url: str | None = None) -> DomainData:
    """A domain's data, its index read (or built from the shards, and written beside them, when missing)."""
    try:
        reader, location, index = _open(domain, endpoint_url)
        if index is None:
            index = build_index(reader)
            _write_index(reader.source, location, index, domain.name)
    except (ValueError, KeyError) as error:
        raise _named(domain, error) from None
    reader.source.bytes_read = 0
    return DomainData(domain.name, reader, index, domain.max_bad_sample_fraction)


def _write_index(source: DataSource, location: DomainLocation, index: DomainIndex, name: str) -> None:
    try:
        write_index(source.store, location, index)
    except Exception as error:  # a read-only corpus still trains; the next step indexes it again
        print(f"warning: domain {name}: cannot write its index to {location.root}: {error}", flush=True)
