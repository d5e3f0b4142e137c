"""The on-disk format of one domain: a directory of `shard-00000.npz`, `shard-00001.npz`, ...

Each shard holds `prompts` (N,) and `answers` (N,) unicode arrays and, when the domain has them,
`images` (N, 64, 64, 3) and/or `videos` (N, T, 64, 64, 3) uint8 arrays. Every sample carries text
(its prompt and answer), so the text modality counts every sample.
"""

import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixtura_jobs.data.formats import BadSample, DataSource, Item
from mixtura_jobs.data.samples import Sample
from mixtura_operator.domain_index import SHARD_GLOB, ShardIndex, npz_shard_counts, shards

# A fixed timestamp in every zip entry, so the same samples always give byte-identical shards.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass
class DomainSamples:
    """The samples of one domain, held in memory."""

    prompts: list[str]
    answers: list[str]
    images: np.ndarray | None = None
    videos: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def modalities(self) -> list[str]:
        """The modalities present, in the fixed order image, text, video."""
        present = {"image": self.images is not None, "text": True, "video": self.videos is not None}
        return [m for m, has in present.items() if has]

    @property
    def texts(self) -> list[str]:
        """The text modality of each sample: its prompt and answer."""
        return [f"{p} {a}" for p, a in zip(self.prompts, self.answers, strict=True)]

    def sample(self, i: int, key: str) -> Sample:
        """The i-th sample as every reader yields it (see `samples.Sample`)."""
        return Sample(
            key=key,
            turns=((self.prompts[i], self.answers[i]),),
            image=None if self.images is None else self.images[i],
            video=None if self.videos is None else self.videos[i],
        )

    def select(self, idx: np.ndarray | list[int]) -> "DomainSamples":
        """The samples at positions `idx`, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        return DomainSamples(
            prompts=[self.prompts[i] for i in idx],
            answers=[self.answers[i] for i in idx],
            images=None if self.images is None else self.images[idx],
            videos=None if self.videos is None else self.videos[idx],
        )


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # np.savez stamps entries with the current time; write the zip ourselves to stay deterministic.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)


def write_shards(path: str | Path, samples: DomainSamples, shard_size: int = 256) -> list[Path]:
    """Write `samples` as shards under `path`, replacing any shards already there; returns their paths."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(SHARD_GLOB):
        stale.unlink()
    written = []
    for k, start in enumerate(range(0, len(samples), shard_size)):
        part = samples.select(np.arange(start, min(start + shard_size, len(samples))))
        arrays = {"prompts": np.array(part.prompts, dtype=str), "answers": np.array(part.answers, dtype=str)}
        if part.images is not None:
            arrays["images"] = part.images.astype(np.uint8)
        if part.videos is not None:
            arrays["videos"] = part.videos.astype(np.uint8)
        shard = out / f"shard-{k:05d}.npz"
        _write_npz(shard, arrays)
        written.append(shard)
    return written


def read_domain(path: str | Path, max_samples: int | None = None) -> DomainSamples:
    """Read a domain's shards in order, stopping once `max_samples` samples are in hand."""
    prompts: list[str] = []
    answers: list[str] = []
    images: list[np.ndarray] = []
    videos: list[np.ndarray] = []
    for shard in shards(path):
        if max_samples is not None and len(prompts) >= max_samples:
            break
        with np.load(shard, allow_pickle=False) as data:
            n = len(data["prompts"])
            keep = n if max_samples is None else min(n, max_samples - len(prompts))
            prompts += data["prompts"][:keep].tolist()
            answers += data["answers"][:keep].tolist()
            if "images" in data:
                images.append(data["images"][:keep])
            if "videos" in data:
                videos.append(data["videos"][:keep])
    for name, parts in (("images", images), ("videos", videos)):
        if parts and sum(len(p) for p in parts) != len(prompts):
            raise ValueError(f"domain {path}: some shards have `{name}` and others do not")
    return DomainSamples(
        prompts=prompts,
        answers=answers,
        images=np.concatenate(images) if images else None,
        videos=np.concatenate(videos) if videos else None,
    )


class NpzReader:
    """The demo's format: a shard is small and compressed whole, so it is read whole."""

    format = "npz"

    def __init__(self, source: DataSource) -> None:
        self.source = source

    @property
    def bytes_read(self) -> int:
        return self.source.bytes_read

    def list_shards(self) -> list[str]:
        return [k for k in self.source.list() if "/" not in k and k.startswith("shard-") and k.endswith(".npz")]

    def index_shard(self, name: str) -> ShardIndex:
        data = self.source.read(name)
        counts = npz_shard_counts(io.BytesIO(data))
        return ShardIndex(name, counts["text"], counts["image"], counts["video"], len(data))

    def read_shard(self, shard: ShardIndex, positions: Sequence[int] | None = None) -> Iterator[Item]:
        stem = shard.name.removesuffix(".npz")
        wanted = range(shard.samples) if positions is None else positions
        try:
            with np.load(io.BytesIO(self.source.read(shard.name)), allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            for i in wanted:
                yield BadSample(f"{stem}/{i}", f"npz shard does not load: {error}")
            return
        part = DomainSamples(
            prompts=arrays["prompts"].tolist(),
            answers=arrays["answers"].tolist(),
            images=arrays.get("images"),
            videos=arrays.get("videos"),
        )
        for i in wanted:
            yield part.sample(i, f"{stem}/{i}")


class MemoryReader:
    """Samples already in memory as a one-shard domain (tests, and callers that made their samples)."""

    format = "npz"
    bytes_read = 0

    def __init__(self, samples: DomainSamples) -> None:
        self.samples = samples

    def list_shards(self) -> list[str]:
        return ["memory"]

    def index_shard(self, name: str) -> ShardIndex:
        counts = {m: len(self.samples) if m in self.samples.modalities else 0 for m in ("image", "video")}
        return ShardIndex(name, len(self.samples), counts["image"], counts["video"], 0)

    def read_shard(self, shard: ShardIndex, positions: Sequence[int] | None = None) -> Iterator[Item]:
        for i in range(len(self.samples)) if positions is None else positions:
            yield self.samples.sample(i, str(i))
