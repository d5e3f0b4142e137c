"""Which mixture the final training uses, per method: pure, from the observations."""

from __future__ import annotations

import numpy as np

from mixtura_jobs.search import gp_ucb
from mixtura_jobs.search.simplex import uniform_weights
from mixtura_jobs.search.spaces import MixtureSpace

MIN_TRIALS_FOR_POSTERIOR = 4


def final_mixture(
    method: str,
    *,
    manual: np.ndarray | None,
    madmix: np.ndarray | None,
    trials_x: np.ndarray,
    trials_score: np.ndarray,
    seed: int,
    d: int,
    space: MixtureSpace | None = None,
    noise: float | None = None,
) -> tuple[np.ndarray, dict]:
    """(weights, provenance): domain weights for the methods that do not search. Searches pick, among the
    trials (`trials_x`: points of `space`, domain weights by default; `trials_score`: their objective, higher
    is better), the observed trial with the best posterior mean (robust to a lucky noisy run; `noise`: the
    observation noise variance measured by repeats, else learned); with few trials, the best observed one."""
    if method == "uniform":
        return uniform_weights(d), {"source": "uniform"}
    if method == "manual":
        return manual / manual.sum(), {"source": "manual"}
    if method == "madmix":
        return madmix, {"source": "madmix"}
    if len(trials_score) == 0:
        raise ValueError(f"method {method}: no successful trial to choose the final mixture from")
    if len(trials_score) < MIN_TRIALS_FOR_POSTERIOR:
        best = int(np.argmax(trials_score))
        return trials_x[best], {"source": "best-observed", "index": best}
    best, mean, std = gp_ucb.posterior_best(trials_x, trials_score, seed=seed, space=space, noise=noise)
    return trials_x[best], {
        "source": "posterior-mean",
        "index": best,
        "posterior_score": mean,
        "posterior_std": std,
    }
