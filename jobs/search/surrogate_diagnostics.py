"""How far to trust the GP surrogate: leave-one-out predictions, sensitivities, a posterior slice. Pure.

At the observed points the GP interpolates them, which says nothing of how it predicts. Leave-one-out
(LOO) does: for a GP with fixed hyperparameters the prediction at x_i from the other n - 1 points has a
closed form (Rasmussen & Williams 2006, eq. 5.12), with K the training covariance including the noise and
m the constant prior mean:

    mean_i = y_i - [K^-1 (y - m)]_i / [K^-1]_ii,    var_i = 1 / [K^-1]_ii

so n refits become one solve. The hyperparameters stay those fitted on all n points (the usual shortcut;
refitting each fold would cost n fits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from botorch.models import SingleTaskGP
from scipy.stats import spearmanr


@dataclass(frozen=True)
class LeaveOneOut:
    """LOO predictions in the objective's units, and how well they rank and fit the observations."""

    observed: np.ndarray  # (n,)
    predicted: np.ndarray  # (n,) mean at x_i from the other points
    std: np.ndarray  # (n,) predictive std there, observation noise included
    r2: float
    spearman: float


def loo_closed_form(covariance: np.ndarray, y: np.ndarray, prior_mean: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean, variance) of each point's LOO prediction, from the noisy training covariance K (n, n)."""
    precision = np.linalg.inv(np.asarray(covariance, dtype=np.float64))
    alpha = precision @ (np.asarray(y, dtype=np.float64) - prior_mean)
    diagonal = np.diag(precision)
    return y - alpha / diagonal, 1.0 / diagonal


def r_squared(observed: np.ndarray, predicted: np.ndarray) -> float:
    """1 - SS_res / SS_tot: 1 for perfect predictions, 0 for predicting the mean, negative for worse; 0 when
    the observations are all equal (there is nothing to explain, and status takes no NaN)."""
    total = float(np.sum((observed - np.mean(observed)) ** 2))
    residual = float(np.sum((observed - predicted) ** 2))
    return 1.0 - residual / total if total > 0 else 0.0


def spearman(observed: np.ndarray, predicted: np.ndarray) -> float:
    """Rank correlation; 0 when either side is constant (nothing is ranked)."""
    if np.ptp(observed) == 0 or np.ptp(predicted) == 0:
        return 0.0
    return float(spearmanr(observed, predicted).statistic)


def gp_leave_one_out(model: SingleTaskGP) -> LeaveOneOut:
    """LOO of a fitted SingleTaskGP (constant mean, Gaussian noise, optional Standardize transform), in the
    units of the y it was fitted on."""
    # In eval mode the model holds its training inputs through its input transform (log-ratios), as the kernel
    # sees them.
    model.eval()
    train_x = model.train_inputs[0]
    with torch.no_grad():
        noise = model.likelihood.noise.expand(len(train_x))
        covariance = model.covar_module(train_x).to_dense() + torch.diag_embed(noise)
        z = model.train_targets.numpy()
        mean, variance = loo_closed_form(covariance.numpy(), z, float(model.mean_module.constant.detach()))
        shift, scale = 0.0, 1.0
        transform = getattr(model, "outcome_transform", None)
        if transform is not None:
            shift, scale = float(transform.means.squeeze()), float(transform.stdvs.squeeze())
    observed, predicted = shift + scale * z, shift + scale * mean
    return LeaveOneOut(
        observed, predicted, scale * np.sqrt(variance), r_squared(observed, predicted), spearman(observed, predicted)
    )


def posterior_at(model: SingleTaskGP, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and std (y units, latent: without observation noise) at the rows of x."""
    with torch.no_grad():
        posterior = model.posterior(torch.as_tensor(x, dtype=torch.float64))
    return posterior.mean.reshape(-1).numpy(), posterior.variance.clamp_min(0.0).sqrt().reshape(-1).numpy()


def lengthscales(model: SingleTaskGP, d: int) -> np.ndarray:
    """The ARD lengthscale of each of the d mixture coordinates: a short one means the objective is sensitive
    to it. A GP that sees a coordinate in several views (its weight and its log-ratio) has one lengthscale per
    view; the shortest counts."""
    kernel = model.covar_module
    kernel = getattr(kernel, "base_kernel", kernel)
    return kernel.lengthscale.detach().reshape(-1, d).numpy().min(axis=0)


def most_sensitive(scales: np.ndarray, k: int = 2) -> np.ndarray:
    """Indices of the k coordinates with the shortest lengthscales, most sensitive first."""
    return np.argsort(scales, kind="stable")[:k]


def slice_points(
    center: np.ndarray, i: int, j: int, grid: np.ndarray, blocks: list[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Points that set coordinates i and j of `center` to every pair of `grid` values and rescale the other
    coordinates of each one's block (a simplex: all coordinates by default; the concept and the task
    weights in the factorized space) to keep the block's sum. Returns (points (g, g, d), valid (g, g)):
    a pair that leaves a block no room (or negative room) is invalid."""
    center = np.asarray(center, dtype=np.float64)
    blocks = [np.arange(len(center))] if blocks is None else blocks
    g = len(grid)
    points = np.broadcast_to(center, (g, g, len(center))).copy()
    points[:, :, i] = grid[:, None]
    points[:, :, j] = grid[None, :]
    valid = np.ones((g, g), dtype=bool)
    for block in blocks:
        fixed = [c for c in (i, j) if c in block]
        if not fixed:
            continue
        rest = np.setdiff1d(block, fixed)
        room = center[block].sum() - points[:, :, fixed].sum(axis=-1)
        before = center[rest].sum()
        valid &= room >= -1e-12
        if before > 0:
            points[:, :, rest] = center[rest] * (np.clip(room, 0, None) / before)[..., None]
        else:
            valid &= np.abs(room) <= 1e-12
    return points, valid


def posterior_slice(
    model: SingleTaskGP,
    center: np.ndarray,
    i: int,
    j: int,
    grid: np.ndarray,
    blocks: list[np.ndarray] | None = None,
) -> np.ndarray:
    """The posterior mean (y units) over `slice_points`; NaN where the pair is invalid."""
    points, valid = slice_points(center, i, j, grid, blocks)
    surface = posterior_at(model, points.reshape(-1, len(center)))[0].reshape(valid.shape).copy()
    surface[~valid] = np.nan
    return surface
