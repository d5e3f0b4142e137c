"""Score recovery, the top-k mask, mixed images and the label ratio."""

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mixtura_jobs.training.mergemix.mixing import (
    derangement,
    gaussian_lambda,
    mix_images,
    recover_scores,
    sample_lambda,
    topk_mask,
)
from mixtura_jobs.training.mergemix.vision import tome_forward
from tiny_models import clip_vision_tower


def test_recovered_score_gives_each_patch_its_group_score():
    # 1 + 4 input tokens merged into CLS, {1, 3}, {2}, {4}
    source = torch.tensor([[1, 0, 0, 0, 0], [0, 1, 0, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 1]]).float()[None]
    attention = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
    scores = recover_scores(attention, source, grid=(2, 2))
    torch.testing.assert_close(scores, torch.tensor([[[0.3, 0.2], [0.3, 0.1]]]))


def test_recovered_score_of_a_merged_tower_has_the_patch_grid_shape():
    with torch.no_grad():
        out = tome_forward(clip_vision_tower(), torch.randn(3, 3, 64, 64), r=8)
    scores = recover_scores(out.cls_attention, out.score_source, out.grid)
    assert scores.shape == (3, 8, 8)
    # Each patch carries its group's score, so a group of size s contributes s times.
    held = (out.cls_attention[:, 1:, None] * out.score_source[:, 1:, 1:]).sum((1, 2))
    torch.testing.assert_close(scores.sum((1, 2)), held)


@settings(max_examples=80, deadline=None)
@given(
    lam=st.floats(0.0, 1.0),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    patch=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_mask_area_is_floor_lambda_l_over_l(lam: float, h: int, w: int, patch: int, seed: int):
    scores = torch.rand(2, h, w, generator=torch.Generator().manual_seed(seed))
    mask = topk_mask(scores, lam, patch)
    assert mask.shape == (2, 1, h * patch, w * patch)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(mask.mean((1, 2, 3)) == math.floor(lam * h * w) / (h * w))
    grid_mask = mask[:, 0, ::patch, ::patch]
    torch.testing.assert_close(grid_mask.repeat_interleave(patch, 1).repeat_interleave(patch, 2), mask[:, 0])
    for b in range(2):
        kept, dropped = scores[b][grid_mask[b] == 1], scores[b][grid_mask[b] == 0]
        if kept.numel() and dropped.numel():
            assert kept.min() >= dropped.max()


def test_lambda_one_gives_the_own_image_and_zero_the_partner():
    x = torch.randn(4, 3, 16, 16)
    scores = torch.rand(4, 4, 4)
    partner = torch.tensor([1, 2, 3, 0])
    torch.testing.assert_close(mix_images(x, topk_mask(scores, 1.0, 4), partner), x)
    torch.testing.assert_close(mix_images(x, topk_mask(scores, 0.0, 4), partner), x[partner])


def test_mixed_pixels_come_from_the_mask_side():
    x = torch.randn(3, 3, 16, 16)
    mask = topk_mask(torch.rand(3, 4, 4), 0.4, 4)
    partner = torch.tensor([2, 0, 1])
    mixed = mix_images(x, mask, partner)
    own = (mixed == x).all(dim=1, keepdim=True).float()
    torch.testing.assert_close(own, mask)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 60), seed=st.integers(0, 2**16))
def test_derangement_has_no_fixed_points(n: int, seed: int):
    perm = derangement(n, np.random.default_rng(seed))
    assert sorted(perm.tolist()) == list(range(n))
    assert torch.all(perm != torch.arange(n))


def test_derangement_needs_two_items():
    with pytest.raises(ValueError, match="at least 2"):
        derangement(1, np.random.default_rng(0))


def test_lambda_is_beta_distributed_in_unit_interval():
    rng = np.random.default_rng(0)
    draws = np.array([sample_lambda(1.0, rng) for _ in range(4000)])
    assert draws.min() >= 0 and draws.max() <= 1
    assert draws.mean() == pytest.approx(0.5, abs=0.03)
    assert np.mean([sample_lambda(0.2, rng) for _ in range(2000)]) == pytest.approx(0.5, abs=0.05)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 32),
    mu=st.floats(0.0, 1.0),
    sigma=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**16),
)
def test_gaussian_rescale_depends_only_on_the_normal_draws(n: int, mu: float, sigma: float, seed: int):
    z = torch.from_numpy(np.random.default_rng(seed).standard_normal(n))
    assume(z.max() - z.min() > 0.1)  # τ = 1e-5 shifts λ̂ by at most τ/(σ·range) < 2e-3 here
    lam_hat = gaussian_lambda(z, mu, sigma)
    assert torch.all((lam_hat >= 0) & (lam_hat <= 1))
    assert lam_hat.min() == 0 and lam_hat.max() == pytest.approx(1.0, abs=5e-3)
    torch.testing.assert_close(lam_hat, gaussian_lambda(z, 0.0, 1.0), atol=5e-3, rtol=0)


def test_gaussian_rescale_of_a_batch_of_one_is_zero():
    assert gaussian_lambda(torch.tensor([0.7]), mu=0.3, sigma=0.5).item() == 0.0
