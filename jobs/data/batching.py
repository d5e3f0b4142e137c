"""`Sample`s to the stacked arrays (`DomainSamples`) that the tiny model's collate and the encoders take:
images and video frames of any size resized to one size, multi-turn conversations flattened to a prompt and
the last answer. The minimal adaptor until model backends take `Sample`s themselves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from PIL import Image

from mixtura_jobs.data.npz_shards import DomainSamples
from mixtura_jobs.data.samples import Sample


def _resized(image: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def _stack_videos(videos: list[np.ndarray], size: int | None) -> np.ndarray:
    frames = min(len(v) for v in videos)
    keep = [np.linspace(0, len(v) - 1, frames).round().astype(int) for v in videos]
    return np.stack([np.stack([_resized(v[i], size) for i in k]) for v, k in zip(videos, keep, strict=True)])


def _prompt(sample: Sample) -> str:
    earlier = [part for user, answer in sample.turns[:-1] for part in (user, answer)]
    return " ".join([*earlier, sample.turns[-1][0]])


def stack(samples: Sequence[Sample], image_size: int | None = None) -> DomainSamples:
    """Samples of one modality signature as arrays; images (and frames) resized to `image_size` square where
    they differ from it (None: they must share one size already)."""
    images = [s.image for s in samples]
    videos = [s.video for s in samples]
    return DomainSamples(
        prompts=[_prompt(s) for s in samples],
        answers=[s.answer for s in samples],
        images=None if images[0] is None else np.stack([_resized(i, image_size) for i in images]),
        videos=None if videos[0] is None else _stack_videos(videos, image_size),
    )


def resized(samples: Sequence[Sample], size: int) -> list[Sample]:
    """The samples with their images and video frames resized to `size` square where they differ from it."""
    return [
        replace(
            s,
            image=None if s.image is None else _resized(s.image, size),
            video=None if s.video is None else np.stack([_resized(frame, size) for frame in s.video]),
        )
        for s in samples
    ]


def with_modality(samples: Sequence[Sample], modality: str) -> list[Sample]:
    """The samples that have `modality` (every sample has text), stripped of their other visual input."""
    return [
        replace(s, image=s.image if modality == "image" else None, video=s.video if modality == "video" else None)
        for s in samples
        if modality == "text" or getattr(s, modality) is not None
    ]
