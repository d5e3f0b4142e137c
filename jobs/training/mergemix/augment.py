"""The MergeMix training hook: mix each image with a partner by ToMe saliency, score the mixed SimPO loss."""

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .loss import mixed_simpo_loss
from .mixing import (
    derangement,
    gaussian_lambda,
    mix_images,
    num_kept,
    recover_scores,
    sample_lambda,
    topk_mask,
)
from .vision import tome_forward

AugmentHook = Callable[..., tuple[Tensor, dict[str, float]]]


@dataclass(frozen=True)
class MergeMixConfig:
    """MergeMix options; defaults follow the "Mixtura default" column of the method spec."""

    enabled: bool = False
    r: int | tuple[int, float] = 8  # tokens merged per layer, or (r, inflect) for a sloped schedule
    alpha: float = 1.0  # λ ~ Beta(α, α)
    beta: float = 1.0  # SimPO β
    weight: float = 1.0  # total = SFT + weight · SimPO
    detach_loser: bool = False  # True reproduces the released code: no gradient through the mixed image
    lambda_rescale: bool = False  # Gaussian re-scaled λ̂ instead of the mask area
    score_layer: int = -1  # the layer whose CLS attention row is the saliency
    proportional_attention: bool = False

    def __post_init__(self) -> None:
        for name in ("alpha", "beta"):
            if getattr(self, name) <= 0:
                raise ValueError(f"mergemix.{name} must be > 0, got {getattr(self, name)}")
        if self.weight < 0:
            raise ValueError(f"mergemix.weight must be >= 0, got {self.weight}")


def select_samples(batch: Any, index: Tensor) -> Any:
    """The batch restricted to `index`: every per-sample tensor field is indexed, the rest kept."""
    n = batch.has_image.shape[0]
    picked = {
        f.name: value[index]
        for f in fields(batch)
        if f.init and isinstance(value := getattr(batch, f.name), Tensor) and value.shape[:1] == (n,)
    }
    return replace(batch, **picked)


@dataclass(frozen=True)
class MixedImages:
    images: Tensor  # (n, 3, H, W) x̂_i = M_i ⊙ x_i + (1 − M_i) ⊙ x_π(i)
    lam: float  # the Beta draw
    lam_hat: Tensor  # (n,) label ratio: the mask area p/L, or its Gaussian re-scaling
    merged_fraction: float


def mergemix_images(tower: nn.Module, images: Tensor, config: MergeMixConfig, rng: np.random.Generator) -> MixedImages:
    """Mix each of n ≥ 2 images with a partner: its ToMe-salient top-⌊λL⌋ patches over the partner."""
    with torch.no_grad():
        tome = tome_forward(tower, images, config.r, config.score_layer, config.proportional_attention)
    scores = recover_scores(tome.cls_attention, tome.score_source, tome.grid)
    lam = sample_lambda(config.alpha, rng)
    partner = derangement(len(images), rng).to(images.device)
    mixed = mix_images(images, topk_mask(scores, lam, tome.patch_size), partner)
    area = num_kept(lam, scores[0].numel()) / scores[0].numel()
    if config.lambda_rescale:
        z = torch.from_numpy(rng.standard_normal(len(images)))
        lam_hat = gaussian_lambda(z, tome.merged_fraction, area).to(images.device)
    else:
        lam_hat = torch.full((len(images),), area, device=images.device)
    return MixedImages(mixed, lam, lam_hat, tome.merged_fraction)


def make_mergemix_augment(config: MergeMixConfig) -> AugmentHook:
    """Build the per-step hook `(model, batch, step, rng, winner=None) -> (w · L_SimPO^mix, stats)`.

    `model` exposes `vision_tower` (a CLIP vision tower) and `answer_logprobs(batch) -> (sum_logp, n_tokens)`;
    `batch` is a dataclass with `pixel_values`, `has_image` and per-sample tensors; `rng` a numpy Generator.
    `winner`, the trainer's own `answer_logprobs` of the clean batch, saves one forward and backward.
    Only samples with an image take part; with fewer than two there is no partner and the loss is zero.
    """

    def augment(
        model: nn.Module,
        batch: Any,
        step: int,
        rng: np.random.Generator,
        winner: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        index = batch.has_image.nonzero().flatten()
        if not config.enabled or batch.pixel_values is None or index.numel() < 2:
            zero = torch.zeros((), device=batch.has_image.device)
            return zero, {"simpo_loss": 0.0, "lambda": 0.0, "lambda_hat": 0.0, "merged_fraction": 0.0}

        chosen = select_samples(batch, index)
        mixed = mergemix_images(model.vision_tower, chosen.pixel_values, config, rng)
        logp_w, n_tokens = model.answer_logprobs(chosen) if winner is None else (winner[0][index], winner[1][index])
        # The released code runs the loser under no_grad; that also saves its activations' memory.
        with torch.set_grad_enabled(torch.is_grad_enabled() and not config.detach_loser):
            logp_l, _ = model.answer_logprobs(replace(chosen, pixel_values=mixed.images))
        loss = mixed_simpo_loss(logp_w, logp_l, n_tokens, mixed.lam_hat, config.beta, config.detach_loser)
        stats = {
            "simpo_loss": loss.item(),
            "lambda": mixed.lam,
            "lambda_hat": mixed.lam_hat.mean().item(),
            "merged_fraction": mixed.merged_fraction,
        }
        return config.weight * loss, stats

    return augment
