"""Tiny random-weight models shared by the tests."""

from __future__ import annotations

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel


def clip_vision_tower(layers: int = 2) -> CLIPVisionModel:
    """A transformers CLIP vision tower like the demo's: 64 px images, 8 px patches, width 64, seeded."""
    torch.manual_seed(0)
    config = CLIPVisionConfig(
        image_size=64,
        patch_size=8,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
    )
    return CLIPVisionModel(config).eval()
