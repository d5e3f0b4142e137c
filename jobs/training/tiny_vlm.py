"""A tiny LLaVA-style VLM: CLIP vision tower -> linear projector -> Llama causal LM, built from a config.

A sample's sequence is [visual tokens][BOS prompt "\\n" answer EOS]: an image gives its patch tokens
and a video the patch tokens of a few frames, both average-pooled on the patch grid to keep sequences
short; a text-only sample has no visual tokens. Only answer tokens (and EOS) are scored.
For augmentations (MergeMix): `vision_tower` is the transformers CLIPVisionModel, `image_tokens` its
output, and `answer_logprobs` the per-sample answer log-likelihoods.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

from mixtura_jobs.data.samples import Sample
from mixtura_jobs.training import tokenizer

IGNORE = -100
# CLIP's pixel statistics, so a pretrained CLIP tower could be dropped in unchanged.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_SEPARATOR = tokenizer.encode("\n")
_IMAGE_GRID = {"image_size": 64, "patch_size": 8}  # the shards' 64x64 pixels, an 8x8 patch grid
# At these sizes eager attention trains ~30% faster on CPU than SDPA (whose backward dominates).
_EAGER = {"attn_implementation": "eager"}

PRESETS: dict[str, dict] = {
    "proxy": {
        "vision": {
            **_IMAGE_GRID,
            **_EAGER,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        "lm": {
            **_EAGER,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        "max_text_tokens": 96,
        "image_pool": 2,
        "video_frames": 4,
        "video_pool": 4,
    },
    "target": {
        "vision": {
            **_IMAGE_GRID,
            **_EAGER,
            "hidden_size": 96,
            "intermediate_size": 192,
            "num_hidden_layers": 3,
            "num_attention_heads": 3,
        },
        "lm": {
            **_EAGER,
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
        },
        "max_text_tokens": 96,
        "image_pool": 2,
        "video_frames": 4,
        "video_pool": 4,
    },
}


@dataclass
class VLMBatch:
    """A collated batch. Rows without an image (video) hold zeros in `pixel_values` (`video_values`)."""

    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor  # (B, T) long, 1 on real tokens (right padding)
    labels: torch.Tensor  # (B, T) long, the input id on answer tokens, IGNORE on prompt and padding
    has_image: torch.Tensor  # (B,) bool
    pixel_values: torch.Tensor | None  # (B, 3, 64, 64) CLIP-normalised, None when no row has an image
    has_video: torch.Tensor  # (B,) bool
    video_values: torch.Tensor | None  # (B, F, 3, 64, 64), None when no row has a video

    def to(self, device: torch.device) -> VLMBatch:
        return VLMBatch(**{k: None if v is None else v.to(device) for k, v in vars(self).items()})


def to_pixel_values(images: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> CLIP-normalised float (..., 3, H, W)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div(255.0).movedim(-1, -3)
    shape = (3, 1, 1)
    return (x - torch.tensor(CLIP_MEAN).view(shape)) / torch.tensor(CLIP_STD).view(shape)


def _text_row(sample: Sample, max_tokens: int) -> tuple[list[int], list[int]]:
    """[BOS context "\\n" answer EOS], the context being every turn before the last answer, one per line."""
    history = [part for turn in sample.turns[:-1] for part in turn] + [sample.prompt]
    context = tokenizer.encode("\n".join(history), add_bos=True) + _SEPARATOR
    target = tokenizer.encode(sample.answer, add_eos=True)
    ids = (context + target)[:max_tokens]
    labels = ([IGNORE] * len(context) + target)[:max_tokens]
    return ids, labels


def evenly_spaced_frames(video: np.ndarray, frames: int) -> np.ndarray:
    """`frames` evenly spaced frames of a (T, H, W, 3) video (repeated when it has fewer)."""
    keep = np.linspace(0, video.shape[0] - 1, frames).round().astype(int)
    return video[keep]


def _pixels(arrays: list[np.ndarray | None]) -> torch.Tensor | None:
    """Stack per-row pixel arrays, zeros for rows without one; None when no row has one."""
    shape = next((a.shape for a in arrays if a is not None), None)
    if shape is None:
        return None
    return to_pixel_values(np.stack([a if a is not None else np.zeros(shape, np.uint8) for a in arrays]))


def collate(samples: list[Sample], max_text_tokens: int = 96, video_frames: int = 4) -> VLMBatch:
    """One batch of samples, in order. A video takes precedence over an image."""
    rows = [_text_row(s, max_text_tokens) for s in samples]
    ids = [torch.tensor(r[0]) for r in rows]
    images = [s.image if s.video is None else None for s in samples]
    videos = [None if s.video is None else evenly_spaced_frames(s.video, video_frames) for s in samples]
    return VLMBatch(
        input_ids=pad_sequence(ids, batch_first=True, padding_value=tokenizer.PAD_ID),
        attention_mask=pad_sequence([torch.ones_like(t) for t in ids], batch_first=True),
        labels=pad_sequence([torch.tensor(r[1]) for r in rows], batch_first=True, padding_value=IGNORE),
        has_image=torch.tensor([a is not None for a in images]),
        pixel_values=_pixels(images),
        has_video=torch.tensor([v is not None for v in videos]),
        video_values=_pixels(videos),
    )


def resolve_config(config: dict | None) -> dict:
    """A full model config: a preset (`proxy` by default) with the given keys laid over it."""
    config = dict(config or {})
    resolved = copy.deepcopy(PRESETS[config.pop("preset", "proxy")])
    for key, value in config.items():
        resolved[key] = {**resolved.get(key, {}), **value} if isinstance(value, dict) else value
    return resolved


class TinyVLM(nn.Module):
    """Vision tower, projector and causal LM. `config` is a resolved config (see `resolve_config`)."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = config
        self.vision_tower = CLIPVisionModel(CLIPVisionConfig(**config["vision"]))
        lm_config = LlamaConfig(
            vocab_size=tokenizer.VOCAB_SIZE,
            pad_token_id=tokenizer.PAD_ID,
            bos_token_id=tokenizer.BOS_ID,
            eos_token_id=tokenizer.EOS_ID,
            max_position_embeddings=512,
            **config["lm"],
        )
        self.lm = LlamaForCausalLM(lm_config)
        self.projector = nn.Linear(config["vision"]["hidden_size"], config["lm"]["hidden_size"])

    def collate(self, samples: list[Sample]) -> VLMBatch:
        """`collate` with this model's text length and video frame count."""
        return collate(samples, self.config["max_text_tokens"], self.config["video_frames"])

    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The vision tower's output tokens (N, 1 + L, Hv), CLS first: the hook for token merging."""
        return self.vision_tower(pixel_values=pixel_values).last_hidden_state

    def _pooled_patches(self, tokens: torch.Tensor, pool: int) -> torch.Tensor:
        """Patch tokens (CLS dropped), average-pooled `pool` x `pool` on the grid to shorten the LM input.

        Token sets that are not a full grid (e.g. after token merging) are returned unpooled.
        """
        patches = tokens[:, 1:]
        side = self.vision_tower.config.image_size // self.vision_tower.config.patch_size
        if pool == 1 or patches.shape[1] != side * side:
            return patches
        grid = patches.transpose(1, 2).reshape(len(patches), -1, side, side)
        return F.avg_pool2d(grid, pool).flatten(2).transpose(1, 2)

    def _visual_embeds(self, batch: VLMBatch, image_tokens: torch.Tensor | None) -> list[torch.Tensor | None]:
        visual: list[torch.Tensor | None] = [None] * len(batch.input_ids)
        if batch.has_image.any():
            if image_tokens is None:
                image_tokens = self.image_tokens(batch.pixel_values[batch.has_image])
            embeds = self.projector(self._pooled_patches(image_tokens, self.config["image_pool"]))
            for row, row_embeds in zip(batch.has_image.nonzero()[:, 0].tolist(), embeds, strict=True):
                visual[row] = row_embeds
        if batch.has_video.any():
            videos = batch.video_values[batch.has_video]
            n, frames = videos.shape[:2]
            # Frames' pooled patch tokens, concatenated in time order.
            tokens = self._pooled_patches(self.image_tokens(videos.flatten(0, 1)), self.config["video_pool"])
            embeds = self.projector(tokens.reshape(n, frames * tokens.shape[1], -1))
            for row, row_embeds in zip(batch.has_video.nonzero()[:, 0].tolist(), embeds, strict=True):
                visual[row] = row_embeds
        return visual

    def forward(self, batch: VLMBatch, image_tokens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, S, vocab) over [visual tokens][text] and the labels (B, S) aligned with them.

        `image_tokens` replaces `image_tokens(pixel_values[has_image])`, one row per image in batch order.
        """
        text = self.lm.get_input_embeddings()(batch.input_ids)
        embeds, labels = [], []
        for row, visual in enumerate(self._visual_embeds(batch, image_tokens)):
            n = int(batch.attention_mask[row].sum())
            embeds.append(text[row, :n] if visual is None else torch.cat([visual, text[row, :n]]))
            skip = batch.labels.new_full((0 if visual is None else len(visual),), IGNORE)
            labels.append(torch.cat([skip, batch.labels[row, :n]]))
        mask = pad_sequence([torch.ones(len(e), dtype=torch.long, device=e.device) for e in embeds], batch_first=True)
        logits = self.lm(
            inputs_embeds=pad_sequence(embeds, batch_first=True), attention_mask=mask, use_cache=False
        ).logits
        return logits, pad_sequence(labels, batch_first=True, padding_value=IGNORE)

    def answer_logprobs(
        self, batch: VLMBatch, image_tokens: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample: the summed log-likelihood of its answer tokens (B,) and how many there are (B,)."""
        logits, labels = self(batch, image_tokens)
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=IGNORE, reduction="none")
        return -nll.sum(1), (labels[:, 1:] != IGNORE).sum(1)

    def loss(self, batch: VLMBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """`sft_loss` of this batch."""
        return sft_loss(*self.answer_logprobs(batch))


def sft_loss(sum_logp: torch.Tensor, n_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss over all answer tokens of a batch, and each sample's mean over its own."""
    return -sum_logp.sum() / n_tokens.sum().clamp(min=1), -sum_logp / n_tokens.clamp(min=1)


def build_vlm(config: dict | None = None, seed: int = 0) -> TinyVLM:
    """A TinyVLM with random weights drawn from `seed` (the global torch RNG is left as it was).

    `config`: `preset` (`proxy` | `target`), overrides of `vision` / `lm` (transformers config fields),
    `max_text_tokens`, `image_pool`, `video_frames`, `video_pool`.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyVLM(resolve_config(config))
