"""What the operator needs to know of a domain's data without the jobs' code: its shards and how many samples
of each modality they hold, read from the npz headers alone (never the pixel data)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

SHARD_GLOB = "shard-*.npz"


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


def count_samples(path: str | Path) -> dict[str, int]:
    """Samples per modality (`image`, `text`, `video`) across a domain's shards, from headers alone."""
    counts = {"image": 0, "text": 0, "video": 0}
    for shard in shards(path):
        with zipfile.ZipFile(shard) as zf:
            names = set(zf.namelist())
            counts["text"] += _array_length(zf, "prompts.npy")
            for modality, entry in (("image", "images.npy"), ("video", "videos.npy")):
                if entry in names:
                    counts[modality] += _array_length(zf, entry)
    return counts
