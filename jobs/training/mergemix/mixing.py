"""MergeMix mixing: recovered saliency, top-k mask on the patch grid, mixed images and the label ratio."""

import math

import numpy as np
import torch
from torch import Tensor


def recover_scores(cls_attention: Tensor, source: Tensor, grid: tuple[int, int]) -> Tensor:
    """Map CLS attention over merged tokens back to the patch grid: Â_L = Sᵀa without CLS.

    `cls_attention` (B, K) and `source` (B, K, 1 + L) are taken at the same layer; returns (B, h, w).
    """
    per_patch = torch.einsum("bk,bkn->bn", cls_attention, source)[:, 1:]
    return per_patch.reshape(-1, *grid)


def sample_lambda(alpha: float, rng: np.random.Generator) -> float:
    """λ ~ Beta(α, α)."""
    return float(rng.beta(alpha, alpha))


def num_kept(lam: float, num_patches: int) -> int:
    """p = ⌊λL⌋, the number of patches taken from the salient image."""
    return math.floor(lam * num_patches)


def topk_mask(scores: Tensor, lam: float, patch_size: int) -> Tensor:
    """Mask with ones on the ⌊λL⌋ highest-scoring patches of (B, h, w), upsampled to (B, 1, h·ps, w·ps)."""
    batch, h, w = scores.shape
    flat = scores.reshape(batch, h * w)
    top = flat.topk(num_kept(lam, h * w), dim=1).indices
    mask = torch.zeros_like(flat).scatter_(1, top, 1.0).reshape(batch, 1, h, w)
    return mask.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)


def derangement(n: int, rng: np.random.Generator) -> Tensor:
    """A random permutation with no fixed points (a random cycle), for n ≥ 2."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    order = rng.permutation(n)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -1)
    return torch.from_numpy(perm)


def mix_images(images: Tensor, mask: Tensor, partner: Tensor) -> Tensor:
    """x̂_i = M_i ⊙ x_i + (1 − M_i) ⊙ x_π(i)."""
    mask = mask.to(images.dtype)
    return mask * images + (1 - mask) * images[partner]


def gaussian_lambda(z: Tensor, mu: float, sigma: float, tau: float = 1e-5) -> Tensor:
    """Gaussian re-scaled label ratio: λ̂ = clip((λ̃ − min)/(max − min + τ), 0, 1) with λ̃ = μ + σz.

    Min-max over the batch cancels μ and σ (up to τ), so λ̂ depends only on the standard-normal
    draws `z`; a batch of one gives λ̂ = 0.
    """
    raw = mu + sigma * z
    return ((raw - raw.min()) / (raw.max() - raw.min() + tau)).clamp(0.0, 1.0)
