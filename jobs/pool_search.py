"""Pool-mode proposers: the next batch is chosen among a finite set of candidate mixtures.

Offline benchmarks on recorded runs (bench/search_quality.py) can only ask for mixtures that were trained,
so GP-UCB and RegMix pick from the unobserved recorded mixtures instead of sampling new ones. Both
maximise y, like gp_ucb.propose_batch, and return indices into `candidates`, distinct and in pick order.
"""

import numpy as np
import torch
from botorch.acquisition import qUpperConfidenceBound
from botorch.sampling import SobolQMCNormalSampler

from mixtura_jobs.gp_ucb import DTYPE, MC_SAMPLES, fit_gp

# The acquisition is evaluated on the pool in chunks of this many candidates (botorch's default).
_CHUNK = 2048


def _check(x: np.ndarray, y: np.ndarray, candidates: np.ndarray, q: int) -> None:
    if x.ndim != 2 or candidates.ndim != 2 or x.shape[1] != candidates.shape[1] or y.shape != (x.shape[0],):
        raise ValueError(f"need X (n, d), y (n,), candidates (m, d); got {x.shape}, {y.shape}, {candidates.shape}")
    if not 1 <= q <= len(candidates):
        raise ValueError(f"q must be between 1 and the number of candidates ({len(candidates)}), got {q}")


def gp_ucb_pool_batch(
    X: np.ndarray, y: np.ndarray, candidates: np.ndarray, q: int, *, seed: int, beta: float = 2.0
) -> np.ndarray:
    """Indices of q candidates by qUCB on gp_ucb's GP fitted to (X, y), picked greedily as in botorch's
    optimize_acqf_discrete (each pick becomes a pending point for the next)."""
    x, y, pool = (np.asarray(a, dtype=np.float64) for a in (X, y, candidates))
    _check(x, y, pool, q)
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    choices = torch.as_tensor(pool, dtype=DTYPE).unsqueeze(-2)
    chosen: list[int] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = fit_gp(x, y)
        acquisition = qUpperConfidenceBound(
            model, beta=beta, sampler=SobolQMCNormalSampler(sample_shape=torch.Size([MC_SAMPLES]), seed=seed)
        )
        for _ in range(q):
            acquisition.set_X_pending(choices[chosen].squeeze(-2) if chosen else None)
            with torch.no_grad():
                values = torch.cat([acquisition(chunk) for chunk in choices.split(_CHUNK)])
            values[chosen] = -torch.inf
            chosen.append(int(torch.argmax(values)))
    return np.array(chosen)


def regression_pool_batch(
    X: np.ndarray, y: np.ndarray, candidates: np.ndarray, q: int, *, seed: int, top_k: int = 128
) -> np.ndarray:
    """Indices of q candidates by RegMix's regressor (as regmix.regression_batch): first the candidate nearest
    to the mean of the top-k predicted candidates (RegMix's averaged mixture is not in the pool), then the
    best individual predictions."""
    from lightgbm import LGBMRegressor

    x, y, pool = (np.asarray(a, dtype=np.float64) for a in (X, y, candidates))
    _check(x, y, pool, q)
    model = LGBMRegressor(
        n_estimators=1000, learning_rate=0.01, min_child_samples=2, verbose=-1, random_state=seed, n_jobs=1
    )
    model.fit(x, y)
    order = np.argsort(-model.predict(pool), kind="stable")
    average = pool[order[:top_k]].mean(axis=0)
    nearest = int(np.argmin(np.sum((pool - average) ** 2, axis=1)))
    return np.concatenate([[nearest], order[order != nearest][: q - 1]])
