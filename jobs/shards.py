"""The on-disk format of one domain: a directory of `shard-00000.npz`, `shard-00001.npz`, ...

Each shard holds `prompts` (N,) and `answers` (N,) unicode arrays and, when the domain has them,
`images` (N, 64, 64, 3) and/or `videos` (N, T, 64, 64, 3) uint8 arrays. Every sample carries text
(its prompt and answer), so the text modality counts every sample.
"""

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHARD_GLOB = "shard-*.npz"
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


def _shards(path: str | Path) -> list[Path]:
    shards = sorted(Path(path).glob(SHARD_GLOB))
    if not shards:
        raise FileNotFoundError(f"no {SHARD_GLOB} files in domain directory {path}")
    return shards


def read_domain(path: str | Path, max_samples: int | None = None) -> DomainSamples:
    """Read a domain's shards in order, stopping once `max_samples` samples are in hand."""
    prompts: list[str] = []
    answers: list[str] = []
    images: list[np.ndarray] = []
    videos: list[np.ndarray] = []
    for shard in _shards(path):
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


def _array_length(zf: zipfile.ZipFile, name: str) -> int:
    # Only the .npy header is read (a few hundred bytes), never the pixel data.
    with zf.open(name) as fh:
        major, _ = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, _ = read_header(fh)
    return shape[0]


def count_samples(path: str | Path) -> dict[str, int]:
    """Samples per modality (`image`, `text`, `video`) across a domain's shards, from headers alone."""
    counts = {"image": 0, "text": 0, "video": 0}
    for shard in _shards(path):
        with zipfile.ZipFile(shard) as zf:
            names = set(zf.namelist())
            counts["text"] += _array_length(zf, "prompts.npy")
            for modality, entry in (("image", "images.npy"), ("video", "videos.npy")):
                if entry in names:
                    counts[modality] += _array_length(zf, entry)
    return counts
