"""The `tiny` backend: the built-in TinyVLM (random weights from the config, or a checkpoint this backend
saved), and for embeddings the per-modality encoders of `training/encoders.py` (open_clip, BERT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mixtura_jobs.data.batching import resized, stack
from mixtura_jobs.data.samples import Sample
from mixtura_jobs.training.backends import ModelRef
from mixtura_jobs.training.backends.checkpoints import local_checkpoint
from mixtura_jobs.training.device import Placement
from mixtura_jobs.training.encoders import Encoders, build_encoders
from mixtura_jobs.training.tiny_vlm import TinyVLM, VLMBatch, build_vlm

CHECKPOINT = "model.pt"
# Test-only fault injection read by the proxy-train step, not a model setting.
_NOT_MODEL_KEYS = ("failTrials",)


class TinyBackend:
    name = "tiny"

    def __init__(self, model: TinyVLM, config: dict, placement: Placement) -> None:
        self.model = model.to(placement.device)
        self.config = config
        self.device = placement.device

    def collate(self, samples: list[Sample]) -> VLMBatch:
        # Real corpora bring images of any size; the tiny vision tower takes one.
        return self.model.collate(resized(samples, self.model.config["vision"]["image_size"])).to(self.device)

    def answer_logprobs(self, batch: VLMBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.answer_logprobs(batch)

    def save(self, directory: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """`model.pt`: the model config (for `build_vlm`) and the weights."""
        state = {k: v.cpu() for k, v in (state_dict or self.model.state_dict()).items()}
        torch.save({"config": self.config, "state_dict": state}, directory / CHECKPOINT)


def build(ref: ModelRef, seed: int, placement: Placement) -> TinyBackend:
    """A TinyVLM from `ref.config` (random weights from `seed`), with the weights of `ref.path` when given: a
    `model.pt` this backend saved, or a directory holding one."""
    config = {k: v for k, v in ref.config.items() if k not in _NOT_MODEL_KEYS}
    model = build_vlm(config, seed)
    if ref.path is not None:
        path = local_checkpoint(ref.path, ref.where, ref.endpoint_url)
        checkpoint = torch.load(path / CHECKPOINT if path.is_dir() else path, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as error:
            raise ValueError(f"{ref.where}.path: {ref.path} does not fit {ref.where}.config: {error}") from error
    return TinyBackend(model, config, placement)


class EncodersEmbedder:
    """The tiny encoders behind the `Embedder` protocol."""

    def __init__(self, encoders: Encoders) -> None:
        self.encoders = encoders

    def embed(self, samples: list[Sample], modalities: list[str]) -> dict[str, np.ndarray]:
        columns = stack(samples, self.encoders.image_size)
        return {modality: self.encoders.embed(modality, columns) for modality in modalities}


def build_encoders_embedder(ref: ModelRef, seed: int, placement: Placement) -> EncodersEmbedder:
    if ref.path is not None:
        raise ValueError(
            f"{ref.where}.path: the tiny embedding backend takes checkpoints in its config "
            "(image.weights); use backend hf to embed with a checkpoint's hidden states"
        )
    return EncodersEmbedder(build_encoders(ref.config, seed=seed, device=placement.device))
