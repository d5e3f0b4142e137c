"""The `hf` backend: any transformers image-text-to-text model (LLaVA, Qwen2-VL, ...) with its processor and
chat template, loaded from a `save_pretrained` directory (local, or s3:// downloaded once per pod).

A sample becomes a chat: its turns as user/assistant messages, its image (or video) first in the first user
turn. The processor expands the visual placeholders and pads on the right; the labels cover the assistant
messages only. A video goes to the processor's video processor when it has one (Qwen2-VL), else its frames go
in as images (LLaVA). Embeddings for MaD-Mix are one intermediate layer's hidden states, mean-pooled over the
visual token positions and over the text positions separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForImageTextToText, AutoProcessor, BatchFeature

from mixtura_jobs.data.samples import Sample
from mixtura_jobs.training.backends import ModelRef
from mixtura_jobs.training.backends.checkpoints import local_checkpoint
from mixtura_jobs.training.device import Placement
from mixtura_jobs.training.tiny_vlm import IGNORE, evenly_spaced_frames

DEFAULTS = {
    "dtype": "float32",  # of the weights; on a GPU bf16 autocast runs the matmuls in any case
    "attn_implementation": None,  # None: transformers' default (sdpa)
    "gradient_checkpointing": False,
    "video_frames": 4,  # evenly spaced frames of each video
    "layer": None,  # hidden-state layer of the embeddings; None: the middle one (negative counts from the end)
    "embed_batch_size": 16,
}
_PLACEHOLDERS = ("<image>", "<video>")


@dataclass
class HFBatch:
    inputs: BatchFeature  # what the processor returned: input_ids, attention_mask, pixel values, grids
    labels: torch.Tensor  # (B, T): input ids on answer tokens, IGNORE elsewhere
    visual_modality: list[str | None]  # per row: image, video or None

    def to(self, device: torch.device) -> HFBatch:
        return HFBatch(self.inputs.to(device), self.labels.to(device), self.visual_modality)


class HFBackend:
    name = "hf"

    def __init__(self, model: torch.nn.Module, processor, config: dict, placement: Placement) -> None:
        self.model = model.to(placement.device)
        self.processor = processor
        self.processor.tokenizer.padding_side = "right"  # the label spans are counted from the left
        self.config = config
        self.device = placement.device
        if config["gradient_checkpointing"]:
            self.model.gradient_checkpointing_enable()
        cfg = model.config
        visual = [getattr(cfg, "image_token_id", None) or getattr(cfg, "image_token_index", None)]
        visual.append(getattr(cfg, "video_token_id", None))
        self.visual_ids = torch.tensor([i for i in visual if i is not None])
        self.native_video = getattr(processor, "video_processor", None) is not None

    def _chat(self, sample: Sample) -> tuple[list[dict], list[np.ndarray], list[np.ndarray]]:
        """The sample's messages, and its images and videos in the order the messages place them."""
        images, videos, visual = [], [], []
        if sample.video is not None:
            frames = evenly_spaced_frames(sample.video, self.config["video_frames"])
            if self.native_video:
                videos, visual = [frames], [{"type": "video"}]
            else:
                images, visual = list(frames), [{"type": "image"}] * len(frames)
        elif sample.image is not None:
            images, visual = [sample.image], [{"type": "image"}]
        messages = []
        for k, (user, assistant) in enumerate(sample.turns):
            for placeholder in _PLACEHOLDERS:
                user = user.replace(placeholder, "")
            text = [{"type": "text", "text": user.strip()}] if user.strip() else []
            messages.append({"role": "user", "content": (visual if k == 0 else []) + text})
            messages.append({"role": "assistant", "content": [{"type": "text", "text": assistant}]})
        return messages, images, videos

    def _template(self, messages: list[dict], generation_prompt: bool = False) -> str:
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def _token_count(self, text: str) -> int:
        return len(self.processor.tokenizer(text)["input_ids"])

    def collate(self, samples: list[Sample]) -> HFBatch:
        chats = [self._chat(s) for s in samples]
        texts = [self._template(messages) for messages, _, _ in chats]
        visual = {
            "images": [image for _, images, _ in chats for image in images],
            "videos": [video for _, _, videos in chats for video in videos],
        }
        inputs = self.processor(text=texts, padding=True, return_tensors="pt", **{k: v for k, v in visual.items() if v})
        labels = torch.full_like(inputs["input_ids"], IGNORE)
        for row, ((messages, _, _), text) in enumerate(zip(chats, texts, strict=True)):
            ids = inputs["input_ids"][row]
            # Every visual placeholder sits in the first user turn, so each prefix holds all of them: a prefix's
            # length in the batch is its tokenizer length plus what the processor's expansion added.
            expansion = int(torch.isin(ids, self.visual_ids).sum()) - int(
                torch.isin(torch.tensor(self.processor.tokenizer(text)["input_ids"]), self.visual_ids).sum()
            )
            for turn in range(1, len(messages), 2):
                start = self._token_count(self._template(messages[:turn], generation_prompt=True)) + expansion
                end = self._token_count(self._template(messages[: turn + 1])) + expansion
                labels[row, start:end] = ids[start:end]
        modality = ["video" if s.video is not None else "image" if s.image is not None else None for s in samples]
        return HFBatch(inputs, labels, modality).to(self.device)

    def answer_logprobs(self, batch: HFBatch) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(**batch.inputs, use_cache=False).logits
        nll = F.cross_entropy(
            logits[:, :-1].float().transpose(1, 2), batch.labels[:, 1:], ignore_index=IGNORE, reduction="none"
        )
        return -nll.sum(1), (batch.labels[:, 1:] != IGNORE).sum(1)

    def _layer(self) -> int:
        if self.config["layer"] is not None:
            return self.config["layer"]
        return self.model.config.get_text_config().num_hidden_layers // 2

    def embed(self, samples: list[Sample], modalities: list[str]) -> dict[str, np.ndarray]:
        """Per modality, each sample's hidden states at the chosen layer, mean-pooled over its image (video)
        token positions, or over its other (text) positions; L2-normalised."""
        parts: dict[str, list[torch.Tensor]] = {m: [] for m in modalities}
        size = self.config["embed_batch_size"]
        with torch.inference_mode():
            for start in range(0, len(samples), size):
                batch = self.collate(samples[start : start + size])
                out = self.model(**batch.inputs, output_hidden_states=True, use_cache=False)
                states = out.hidden_states[self._layer()].float()
                ids, real = batch.inputs["input_ids"], batch.inputs["attention_mask"].bool()
                is_visual = torch.isin(ids, self.visual_ids.to(ids.device))
                for modality in modalities:
                    mask = real & ~is_visual if modality == "text" else is_visual
                    if modality != "text" and any(m != modality for m in batch.visual_modality):
                        raise ValueError(f"embedding {modality}: some samples have no {modality}")
                    weights = mask.unsqueeze(-1).to(states.dtype)
                    parts[modality].append((states * weights).sum(1) / weights.sum(1).clamp(min=1))
        return {m: F.normalize(torch.cat(p), dim=-1).cpu().numpy().astype(np.float32) for m, p in parts.items()}

    def save(self, directory: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """A `save_pretrained` directory `model/`: weights (safetensors), config, processor and chat template."""
        self.model.save_pretrained(directory / "model", state_dict=state_dict)
        self.processor.save_pretrained(directory / "model")


def build(ref: ModelRef, seed: int, placement: Placement) -> HFBackend:
    if ref.path is None:
        raise ValueError(
            f"{ref.where}.path: the hf backend loads a save_pretrained directory; give a local path or an s3:// URI"
        )
    config = {**DEFAULTS, **{k: v for k, v in ref.config.items() if k != "failTrials"}}
    local = local_checkpoint(ref.path, ref.where, ref.endpoint_url)
    options = {"dtype": getattr(torch, config["dtype"])}
    if config["attn_implementation"]:
        options["attn_implementation"] = config["attn_implementation"]
    try:
        # Seeded: weights a checkpoint lacks (e.g. a new head) are drawn the same way on every run.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForImageTextToText.from_pretrained(local, **options)
        processor = AutoProcessor.from_pretrained(local)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            f"{ref.where}.path: {ref.path} is not a transformers image-text-to-text checkpoint: {error}"
        ) from error
    return HFBackend(model, processor, config, placement)
