"""A synthetic swarm of recorded proxy runs: sparse mixtures over many domains, losses from data mixing laws.

Each of M validation sets j follows a mixing law (Ye et al. 2024, "Data Mixing Laws"):
loss_j(r) = c_j + k_j exp(sum_i t_ij r_i), with r the run's domain weights; domain i helps set j when t_ij < 0.
Every set has a few domains that help it a lot (t in [-4, -1]) and small effects of the others (t in
[-0.3, 0.3]); the target, the mean of the M losses, is best at an interior mixture. Each run trains on a few
domains only (like RegMix's swarms, most weights are exactly 0): its support is 1 to d/4 domains, its weights a
Dirichlet on them with a strength log-uniform in [0.1, 5], rounded to 3 decimals. Every loss gets Gaussian
noise (`--noise`, relative). Seeded: the same arguments write the same files.

The files have the layout a user's recorded runs might have, with columns the bench must skip:
`mixtures.csv` (run_id, name, w_00 ... w_{d-1}) and `scores.csv` (run_id, steps, loss_0 ... loss_{M-1}).

    python bench/synthetic_swarm.py --domains 64 --runs 512 --seed 64 --out bench/data/mixlaw-64
"""

import argparse
import csv
from pathlib import Path

import numpy as np

HELPFUL_PER_SET = 3
STEPS = 1000


def swarm_weights(runs: int, domains: int, rng: np.random.Generator) -> np.ndarray:
    """(runs, domains) sparse mixtures on the simplex, rounded to 3 decimals (all-zero rows redrawn)."""
    weights = np.zeros((runs, domains))
    for row in weights:
        while row.sum() == 0:
            support = rng.choice(domains, size=rng.integers(1, max(domains // 4, 1) + 1), replace=False)
            strength = np.exp(rng.uniform(np.log(0.1), np.log(5.0)))
            row[support] = rng.dirichlet(np.full(support.size, strength)).round(3)
    return weights / weights.sum(axis=1, keepdims=True)


def mixing_law_losses(weights: np.ndarray, sets: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """(runs, sets) noisy losses of `weights` under `sets` random mixing laws."""
    domains = weights.shape[1]
    t = rng.uniform(-0.3, 0.3, size=(domains, sets))
    helpful = min(HELPFUL_PER_SET, domains)
    for j in range(sets):
        t[rng.choice(domains, size=helpful, replace=False), j] = rng.uniform(-4.0, -1.0, size=helpful)
    c = rng.uniform(2.0, 4.0, size=sets)
    k = rng.uniform(0.5, 1.5, size=sets)
    losses = c + k * np.exp(weights @ t)
    return losses * (1.0 + noise * rng.standard_normal(losses.shape))


def write_swarm(out: Path, domains: int, runs: int, sets: int, noise: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    weights = swarm_weights(runs, domains, rng)
    losses = mixing_law_losses(weights, sets, noise, rng)
    out.mkdir(parents=True, exist_ok=True)
    ids = [f"r{seed}-{i:04d}" for i in range(runs)]
    with (out / "mixtures.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run_id", "name", *(f"w_{i:02d}" for i in range(domains))])
        writer.writerows([run, f"proxy run {i}", *(f"{w:.6g}" for w in weights[i])] for i, run in enumerate(ids))
    with (out / "scores.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run_id", "steps", *(f"loss_{j}" for j in range(sets))])
        writer.writerows([run, STEPS, *(f"{v:.6f}" for v in losses[i])] for i, run in enumerate(ids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, default=64)
    parser.add_argument("--runs", type=int, default=512)
    parser.add_argument("--sets", type=int, default=4, help="validation sets; the bench's target is their mean")
    parser.add_argument("--noise", type=float, default=0.002, help="relative noise of each loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="folder for mixtures.csv and scores.csv")
    args = parser.parse_args()
    if args.domains < 2 or args.runs < 2 or args.sets < 1:
        parser.error("need --domains >= 2, --runs >= 2 and --sets >= 1")
    write_swarm(args.out, args.domains, args.runs, args.sets, args.noise, args.seed)
    print(f"wrote {args.out / 'mixtures.csv'} and {args.out / 'scores.csv'}")


if __name__ == "__main__":
    main()
