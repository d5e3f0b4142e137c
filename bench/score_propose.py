"""Time MaD-Mix scoring and GP-UCB proposals, each as a ratio to a baseline measured in the same run.

Scoring vs number of domains (3 modalities: image 512, text 384, video 512; a third of the domains lack
video), baseline: the plain Gram matrix K = X X^T of the same stacked embeddings.
Proposals (q = 8, d = 8 domains) vs number of observations, baseline: fitting the GP alone.

Usage: python bench/score_propose.py
"""

import numpy as np
import torch

from mixtura_jobs.search.gp_ucb import fit_gp, propose_batch
from mixtura_jobs.search.madmix import madmix_weights
from mixtura_jobs.search.simplex import random_batch
from timing import median_time

DIMS = {"image": 512, "text": 384, "video": 512}
DOMAIN_COUNTS = (8, 32, 128)
OBSERVATION_COUNTS = (16, 64, 256)
Q, D = 8, 8


def score_row(k: int, rng: np.random.Generator) -> tuple[str, float, str, float]:
    embeddings = {v: rng.normal(size=(k, dim)) for v, dim in DIMS.items()}
    present = {v: np.ones(k, dtype=bool) for v in DIMS}
    present["video"][::3] = False
    stacked = np.concatenate([np.where(present[v][:, None], e, 0.0) for v, e in embeddings.items()], axis=1)
    score = median_time(lambda: madmix_weights(embeddings, present), repeats=50, warmup=True)
    gram = median_time(lambda: stacked @ stacked.T, repeats=50, warmup=True)
    return f"score, k={k}", score, "K = X X^T", gram


def propose_row(n: int, rng: np.random.Generator) -> tuple[str, float, str, float]:
    x = random_batch(n, D, seed=n)
    target = rng.dirichlet(np.full(D, 2.0))
    y = -np.sum((x - target) ** 2, axis=1) + 0.001 * rng.normal(size=n)
    propose = median_time(lambda: propose_batch(x, y, Q, seed=0), repeats=2, warmup=True)
    fit = median_time(lambda: fit_gp(x, y), repeats=2, warmup=True)
    return f"propose q={Q}, n={n}", propose, "GP fit", fit


def main() -> None:
    # The GPs are small: intra-op threads gain nothing and, on a shared runner, contend badly.
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    rows = [score_row(k, rng) for k in DOMAIN_COUNTS] + [propose_row(n, rng) for n in OBSERVATION_COUNTS]
    print("| case | time (ms) | baseline | baseline (ms) | ratio |")
    print("|---|---:|---|---:|---:|")
    for name, t, baseline, base in rows:
        print(f"| {name} | {1e3 * t:.2f} | {baseline} | {1e3 * base:.2f} | {t / base:.1f} |")
    score_ratio = max(t / base for name, t, _, base in rows if name.startswith("score"))
    propose_ratio = max(t / base for name, t, _, base in rows if name.startswith("propose"))
    print(
        f"summary: MaD-Mix scoring at most {score_ratio:.1f}x the Gram matrix (k <= {DOMAIN_COUNTS[-1]}); "
        f"a GP-UCB batch of {Q} at most {propose_ratio:.1f}x fitting the GP (n <= {OBSERVATION_COUNTS[-1]})"
    )


if __name__ == "__main__":
    main()
