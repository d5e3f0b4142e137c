"""Model backends: the seam between the trainer or the embed step and the models.

A backend is built from a `ModelRef` (`models.{embedding,proxy,target}` of the spec: backend, path, config),
turns `list[Sample]` into a batch on its device, scores a batch's answer tokens, and saves a checkpoint that a
`ModelRef` with that path loads again. `tiny` is the built-in TinyVLM (the demo and fast tests), `hf` any
transformers image-text-to-text model from a `save_pretrained` directory. Nothing outside this package knows
which one is in use, except that MergeMix reaches into the tiny model's vision tower.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from mixtura_jobs.data.samples import Sample
from mixtura_jobs.training.device import Placement


@dataclass(frozen=True)
class ModelRef:
    """Which model: `backend` (tiny | hf), `path` (a checkpoint: local path, file:// or s3:// URI; None builds
    random weights, tiny only) and the backend's `config`. `where` is the spec field, for error messages."""

    backend: str = "tiny"
    path: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    where: str = "model"
    endpoint_url: str | None = None  # S3 endpoint for s3:// paths


class Batch(Protocol):
    def to(self, device: torch.device) -> Batch: ...


class VLMBackend(Protocol):
    """A trainable VLM. `model` is the torch module the optimiser steps."""

    name: str
    model: nn.Module

    def collate(self, samples: list[Sample]) -> Any:
        """A batch of `samples` in order, on the model's device; loss masks cover all but answer tokens."""

    def answer_logprobs(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample: the summed log-likelihood of its answer tokens (B,) and how many there are (B,)."""

    def save(self, directory: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write a checkpoint into `directory` (a `ModelRef` path to it, or to the file in it, loads it): the
        model's weights, or `state_dict` (the whole weights gathered from a sharded model)."""


class Embedder(Protocol):
    """Per-sample, per-modality embeddings for MaD-Mix and the concept clusters."""

    def embed(self, samples: list[Sample], modalities: list[str]) -> dict[str, np.ndarray]:
        """{modality: (n, d) float32, L2-normalised} for each of `modalities` (which every sample has)."""


def build_vlm_backend(ref: ModelRef, seed: int, placement: Placement) -> VLMBackend:
    """The proxy or target model of `ref` on `placement`'s device; random weights come from `seed`."""
    if ref.backend == "tiny":
        from mixtura_jobs.training.backends.tiny import build

        return build(ref, seed, placement)
    if ref.backend == "hf":
        from mixtura_jobs.training.backends.hf import build

        return build(ref, seed, placement)
    raise ValueError(f"{ref.where}.backend: unknown backend {ref.backend!r}; expected tiny or hf")


def build_embedder(ref: ModelRef, seed: int, placement: Placement) -> Embedder:
    """The embedding model of `ref`: tiny's per-modality encoders (open_clip, BERT), or an hf VLM's hidden
    states."""
    if ref.backend == "tiny":
        from mixtura_jobs.training.backends.tiny import build_encoders_embedder

        return build_encoders_embedder(ref, seed, placement)
    if ref.backend == "hf":
        from mixtura_jobs.training.backends.hf import build

        return build(ref, seed, placement)  # the hf VLM embeds with its own hidden states
    raise ValueError(f"{ref.where}.backend: unknown backend {ref.backend!r}; expected tiny or hf")
