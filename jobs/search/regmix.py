"""The RegMix baseline: a gradient-boosted regressor on (weights → objective), then the average of the
top predicted mixtures among many sampled from the prior (Liu et al., RegMix)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mixtura_jobs.search.spaces import MixtureSpace, SimplexSpace

if TYPE_CHECKING:
    from lightgbm import LGBMRegressor

# RegMix averages the top 128 of 100,000 simulated mixtures: the share of the candidates a top-k keeps.
TOP_FRACTION = 128 / 100_000


def regressor(seed: int) -> LGBMRegressor:
    """RegMix's LightGBM regressor (the paper's settings; one thread, as a job's CPU share is small)."""
    from lightgbm import LGBMRegressor

    return LGBMRegressor(
        n_estimators=1000, learning_rate=0.01, min_child_samples=2, verbose=-1, random_state=seed, n_jobs=1
    )


def regression_batch(
    X: np.ndarray,
    y: np.ndarray,
    q: int,
    *,
    seed: int,
    center: np.ndarray,
    n_samples: int = 100_000,
    top_k: int = 128,
    space: MixtureSpace | None = None,
) -> np.ndarray:
    """q mixtures maximising y by regression: first the mean of the top-k predicted samples (RegMix's
    recipe), then the next best individual predictions (so a batch explores a little). The samples come from
    `space` (default: plain weights) around `center`."""
    rng = np.random.default_rng([seed, len(y)])
    model = regressor(seed).fit(X, y)
    space = SimplexSpace(len(center)) if space is None else space
    samples = space.sample(n_samples, center, rng)
    order = np.argsort(-model.predict(samples), kind="stable")
    top = samples[order[:top_k]]
    # The average of feasible points can leave a non-convex feasible set (factorized cells with caps).
    return np.vstack([space.feasible(top.mean(axis=0))[None], samples[order[: q - 1]]])[:q]
