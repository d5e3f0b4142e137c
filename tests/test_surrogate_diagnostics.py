"""Leave-one-out diagnostics of the GP surrogate against LOO computed by hand, one refit-free fold at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixtura_jobs.search import gp_ucb
from mixtura_jobs.search.surrogate_diagnostics import (
    gp_leave_one_out,
    lengthscales,
    loo_closed_form,
    most_sensitive,
    posterior_slice,
    r_squared,
    slice_points,
    spearman,
)


def hand_loo(covariance: np.ndarray, y: np.ndarray, prior_mean: float) -> tuple[np.ndarray, np.ndarray]:
    """Each point predicted from the other five: m + k_i^T K_-i^-1 (y_-i - m), var k_ii - k_i^T K_-i^-1 k_i."""
    n = len(y)
    means, variances = np.empty(n), np.empty(n)
    for i in range(n):
        rest = np.delete(np.arange(n), i)
        k = covariance[rest, i]
        solve = np.linalg.solve(covariance[np.ix_(rest, rest)], np.column_stack([y[rest] - prior_mean, k]))
        means[i] = prior_mean + k @ solve[:, 0]
        variances[i] = covariance[i, i] - k @ solve[:, 1]
    return means, variances


@pytest.fixture(scope="module")
def six_points():
    rng = np.random.default_rng(3)
    x = rng.dirichlet(np.ones(3), 6)
    y = 2.0 - 3.0 * x[:, 0] + 0.5 * x[:, 1] + 0.05 * rng.normal(size=6)
    return x, y, gp_ucb.fit_gp(x, y)


def test_the_closed_form_equals_six_folds_by_hand_on_an_rbf_kernel():
    x = np.array([0.0, 0.3, 0.7, 1.1, 1.6, 2.0])
    y = np.array([1.0, 1.4, 0.9, 0.2, -0.3, 0.1])
    covariance = np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / 0.5**2) + 0.01 * np.eye(6)
    mean, variance = loo_closed_form(covariance, y, prior_mean=0.25)
    by_hand_mean, by_hand_variance = hand_loo(covariance, y, 0.25)
    np.testing.assert_allclose(mean, by_hand_mean, rtol=1e-10)
    # Both include the held-out point's observation noise (the 0.01 on the diagonal).
    np.testing.assert_allclose(variance, by_hand_variance, rtol=1e-10)


def test_gp_leave_one_out_equals_six_folds_by_hand_in_the_objectives_units(six_points):
    x, y, model = six_points
    with torch.no_grad():
        # The kernel sees the inputs through the GP's input transform (weights and their log-ratios).
        kernel = model.covar_module(model.input_transform(torch.as_tensor(x))).to_dense().numpy()
    covariance = kernel + float(model.likelihood.noise.detach()) * np.eye(6)
    shift, scale = float(np.mean(y)), float(np.std(y, ddof=1))
    by_hand, _ = hand_loo(covariance, (y - shift) / scale, float(model.mean_module.constant.detach()))
    loo = gp_leave_one_out(model)
    np.testing.assert_allclose(loo.observed, y, rtol=1e-10)
    np.testing.assert_allclose(loo.predicted, shift + scale * by_hand, rtol=1e-8)
    assert loo.r2 == pytest.approx(r_squared(y, shift + scale * by_hand))
    assert loo.spearman == pytest.approx(spearman(y, shift + scale * by_hand))
    # The objective is linear in the first two weights: LOO ranks the six points well.
    assert loo.spearman > 0.5


def test_r2_and_spearman_on_known_values():
    observed = np.array([1.0, 2.0, 3.0, 4.0])
    assert r_squared(observed, observed) == 1.0
    assert r_squared(observed, np.full(4, 2.5)) == 0.0
    assert r_squared(np.ones(4), observed) == 0.0
    assert spearman(observed, observed[::-1]) == pytest.approx(-1.0)
    assert spearman(observed, np.ones(4)) == 0.0


def test_the_most_sensitive_coordinate_has_the_shortest_lengthscale(six_points):
    _, _, model = six_points
    scales = lengthscales(model, 3)
    assert scales.shape == (3,)
    assert most_sensitive(scales)[0] == int(np.argmin(scales))


def test_a_slice_keeps_each_block_on_its_simplex_and_marks_pairs_without_room():
    center = np.array([0.2, 0.3, 0.5, 0.6, 0.4])
    blocks = [np.arange(3), np.arange(3, 5)]
    points, valid = slice_points(center, 0, 3, np.linspace(0, 1, 5), blocks)
    assert valid.all()
    np.testing.assert_allclose(points[..., :3].sum(-1), 1.0)
    np.testing.assert_allclose(points[..., 3:].sum(-1), 1.0)
    points, valid = slice_points(center, 0, 1, np.linspace(0, 1, 5), blocks)
    assert valid[0, 0] and not valid[4, 4]
    np.testing.assert_allclose(points[valid][:, :3].sum(-1), 1.0)


def test_posterior_slice_is_nan_only_where_the_pair_leaves_no_room(six_points):
    x, _, model = six_points
    surface = posterior_slice(model, x[0], 0, 1, np.linspace(0, 1, 6))
    assert surface.shape == (6, 6)
    assert np.isnan(surface[5, 5]) and np.isfinite(surface[0, 0])
