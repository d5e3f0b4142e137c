"""Pool-mode proposers: the next batch is chosen among a finite set of candidate mixtures.

Offline benchmarks on recorded runs (bench/search_quality.py) can only ask for mixtures that were trained,
so GP-UCB and RegMix pick from the unobserved recorded mixtures instead of sampling new ones. Both
maximise y, like gp_ucb.propose_batch, and return indices into `candidates`, distinct and in pick order.
"""

import numpy as np
import torch

from mixtura_jobs.search.gp_ucb import Inputs, fit_surrogate, ucb_batch
from mixtura_jobs.search.regmix import TOP_FRACTION, regressor


def _check(x: np.ndarray, y: np.ndarray, candidates: np.ndarray, q: int) -> None:
    if x.ndim != 2 or candidates.ndim != 2 or x.shape[1] != candidates.shape[1] or y.shape[:1] != x.shape[:1]:
        raise ValueError(f"need X (n, d), y (n,), candidates (m, d); got {x.shape}, {y.shape}, {candidates.shape}")
    if not 1 <= q <= len(candidates):
        raise ValueError(f"q must be between 1 and the number of candidates ({len(candidates)}), got {q}")


def gp_ucb_pool_batch(
    X: np.ndarray,
    y: np.ndarray,
    candidates: np.ndarray,
    q: int,
    *,
    seed: int,
    beta: float = 2.0,
    inputs: Inputs = "weights+log-ratio",
    pending: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of q candidates by gp_ucb.ucb_batch on gp_ucb's surrogate (on `inputs`) fitted to (X, y), y (n,) or
    the objective's parts (n, M), conditioned on the `pending` mixtures (being evaluated)."""
    x, y, pool = (np.asarray(a, dtype=np.float64) for a in (X, y, candidates))
    _check(x, y, pool, q)
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ucb_batch(fit_surrogate(x, y, inputs=inputs), pool, q, beta, seed, pending)


def regression_pool_batch(
    X: np.ndarray, y: np.ndarray, candidates: np.ndarray, q: int, *, seed: int, top_fraction: float = TOP_FRACTION
) -> np.ndarray:
    """Indices of q candidates by RegMix's regressor (as regmix.regression_batch): the candidate nearest to
    the mean of the top-k predicted candidates (RegMix's averaged mixture is not in the pool; k the same
    share of the candidates as RegMix's 128 of 100,000, at least 1) and the best individual predictions,
    ordered by the regressor's own predictions."""
    x, y, pool = (np.asarray(a, dtype=np.float64) for a in (X, y, candidates))
    _check(x, y, pool, q)
    predicted = regressor(seed).fit(x, y).predict(pool)
    order = np.argsort(-predicted, kind="stable")
    top_k = max(1, round(top_fraction * len(pool)))
    average = pool[order[:top_k]].mean(axis=0)
    nearest = int(np.argmin(np.sum((pool - average) ** 2, axis=1)))
    batch = np.concatenate([[nearest], order[order != nearest][: q - 1]])
    return batch[np.argsort(-predicted[batch], kind="stable")]
