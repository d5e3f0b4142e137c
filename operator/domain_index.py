"""What the operator and the jobs both need to know of a domain's data without reading its images: where its
shards are, and the small per-domain index that lists them with their sample counts per modality.

The index (`_mixtura_index.json` beside the shards, or `_mixtura_index-<pattern hash>.json` for a URI that
names its shards by a pattern) is written by `mixtura index URI` or by the embed step when missing:

    {"version": 1, "format": "webdataset",
     "shards": [{"name": "train-000000.tar", "samples": 1000, "image": 1000, "video": 0, "bytes": 5123456,
                 "offsets": [0, 5120, ...]}]}

`samples` counts every record of the shard, bad ones included, so a sample's position in the domain is fixed
by the index alone; `offsets` (WebDataset only) are the byte offsets where each sample's tar members start,
then the end of the last one, so one sample is read with one ranged request. The operator counts samples from
the index, or from npz headers; it never downloads images.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixtura_operator.store import ArtifactNotFound, ArtifactStore, open_store

SHARD_GLOB = "shard-*.npz"
FORMATS = ("webdataset", "llava", "npz")
INDEX_VERSION = 1
MODALITIES = ("image", "text", "video")


@dataclass(frozen=True)
class DomainLocation:
    """A domain URI split into the prefix its files live under and, when the URI names them, the pattern of
    its shard or JSON file names (`train-{000000..000199}.tar`, `conversations.jsonl`)."""

    root: str
    pattern: str | None

    @classmethod
    def parse(cls, uri: str) -> DomainLocation:
        head, _, last = uri.rstrip("/").rpartition("/")
        if "{" in last or last.endswith((".tar", ".json", ".jsonl")):
            return cls(head, last)
        return cls(uri.rstrip("/"), None)

    @property
    def index_key(self) -> str:
        if self.pattern is None:
            return "_mixtura_index.json"
        return f"_mixtura_index-{hashlib.sha256(self.pattern.encode()).hexdigest()[:12]}.json"


@dataclass(frozen=True)
class ShardIndex:
    name: str
    samples: int
    image: int
    video: int
    bytes: int
    offsets: tuple[int, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class DomainIndex:
    format: str
    shards: tuple[ShardIndex, ...]

    @property
    def total(self) -> int:
        return sum(s.samples for s in self.shards)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    def counts(self) -> dict[str, int]:
        """Samples per modality; every sample has text."""
        return {
            "image": sum(s.image for s in self.shards),
            "text": self.total,
            "video": sum(s.video for s in self.shards),
        }

    def starts(self) -> np.ndarray:
        """The domain position of each shard's first sample."""
        return np.concatenate([[0], np.cumsum([s.samples for s in self.shards])[:-1]]).astype(np.int64)

    def to_json(self) -> dict:
        shards = []
        for s in self.shards:
            entry = {"name": s.name, "samples": s.samples, "image": s.image, "video": s.video, "bytes": s.bytes}
            if s.offsets:
                entry["offsets"] = list(s.offsets)
            shards.append(entry)
        return {"version": INDEX_VERSION, "format": self.format, "shards": shards}

    @classmethod
    def from_json(cls, record: dict) -> DomainIndex:
        if record.get("version") != INDEX_VERSION or record.get("format") not in FORMATS:
            raise ValueError(
                f"unsupported domain index (version {record.get('version')}, format {record.get('format')})"
            )
        shards = tuple(
            ShardIndex(s["name"], s["samples"], s["image"], s["video"], s["bytes"], tuple(s.get("offsets", ())))
            for s in record["shards"]
        )
        return cls(record["format"], shards)


def read_index(store: ArtifactStore, location: DomainLocation) -> DomainIndex | None:
    """The domain's index, or None when nobody has written one yet."""
    try:
        return DomainIndex.from_json(json.loads(store.get_bytes(location.index_key)))
    except ArtifactNotFound:
        return None


def write_index(store: ArtifactStore, location: DomainLocation, index: DomainIndex) -> None:
    store.put_bytes(location.index_key, json.dumps(index.to_json()).encode())


def shards(path: str | Path) -> list[Path]:
    found = sorted(Path(path).glob(SHARD_GLOB))
    if not found:
        raise FileNotFoundError(f"no {SHARD_GLOB} files in domain directory {path}")
    return found


def _array_length(zf: zipfile.ZipFile, name: str) -> int:
    # Only the .npy header is read (a few hundred bytes), never the pixel data.
    with zf.open(name) as fh:
        major, _ = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, _ = read_header(fh)
    return shape[0]


def npz_shard_counts(handle) -> dict[str, int]:
    """Samples per modality of one npz shard (a path or an open binary file), from its array headers."""
    with zipfile.ZipFile(handle) as zf:
        names = set(zf.namelist())
        counts = {"image": 0, "text": _array_length(zf, "prompts.npy"), "video": 0}
        for modality, entry in (("image", "images.npy"), ("video", "videos.npy")):
            if entry in names:
                counts[modality] = _array_length(zf, entry)
    return counts


def count_samples(path: str | Path) -> dict[str, int]:
    """Samples per modality (`image`, `text`, `video`) across a local npz domain's shards, from headers alone."""
    counts = dict.fromkeys(MODALITIES, 0)
    for shard in shards(path):
        for modality, n in npz_shard_counts(shard).items():
            counts[modality] += n
    return counts


def count_domain(uri: str, endpoint_url: str | None = None) -> dict[str, int]:
    """Samples per modality from the domain's index, or from npz headers of local data; {} when neither is
    there (counting would need the images)."""
    location = DomainLocation.parse(uri)
    index = read_index(open_store(location.root, endpoint_url), location)
    if index is not None:
        counts = index.counts()
    elif (
        uri.startswith("file://")
        and location.pattern is None
        and list(Path(uri.removeprefix("file://")).glob(SHARD_GLOB))
    ):
        counts = count_samples(uri.removeprefix("file://"))
    else:
        return {}
    return {k: v for k, v in counts.items() if v}
