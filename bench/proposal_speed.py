"""The time of a GP-UCB batch in the full cell space, against fitting a plain GP in the same run.

gp_ucb.propose_batch for q = 8 with n = 200 observations in the `full` space of 50 capped cells (49 free
dimensions), warm (continuing from the previous round's hyperparameters, as every round after a search's
first GP round does) and cold. The baseline is a plain GP fit on the raw weights, the fit before the surrogate
saw log-ratio inputs.

    python bench/proposal_speed.py [--repeats 3]
"""

import argparse
import warnings

import numpy as np
import torch

from mixtura_jobs.search.gp_ucb import fit_gp, propose_batch
from mixtura_jobs.search.spaces import SimplexSpace
from timing import median_time

# The `full` cell space at its largest (10 concepts x 5 tasks: 49 free dimensions), every cell capped.
D, N, CAP, Q = 50, 200, 0.1, 8
WARM_SECONDS, COLD_SECONDS = 1.0, 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="median of this many calls (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)
    space = SimplexSpace(D, np.full(D, CAP))
    x = space.sample(N, space.uniform(), np.random.default_rng(0))
    optimum = np.random.default_rng(0).dirichlet(np.full(D, 2.0))
    y = -np.sum((x - optimum) ** 2, axis=1)
    # In a running search the round before (n - q observations) left its fit: the warm start.
    warm = propose_batch(x[:-Q], y[:-Q], Q, seed=0, space=space).hyperparameters
    fit = median_time(lambda: fit_gp(x, y, inputs="weights"), args.repeats)
    cases = {
        "warm, pool 10,000 (every round after the first GP round)": lambda: propose_batch(
            x, y, Q, seed=0, space=space, warm_start=warm
        ),
        "warm, pool 500": lambda: propose_batch(x, y, Q, seed=0, space=space, warm_start=warm, pool_size=500),
        "cold, pool 10,000 (a search's first GP round)": lambda: propose_batch(x, y, Q, seed=0, space=space),
    }
    times = {case: median_time(propose, args.repeats) for case, propose in cases.items()}
    print(
        f"| propose q={Q}, d={D} cells capped at {CAP}, n={N} (median of {args.repeats}) | time (s) "
        "| plain GP fit (s) | ratio |\n|---|---:|---:|---:|"
    )
    for case, t in times.items():
        print(f"| {case} | {t:.2f} | {fit:.2f} | {t / fit:.2f} |")
    warm_time, _, cold = times.values()
    print(
        f"\nwarm {warm_time:.2f} s (target < {WARM_SECONDS:.0f} s), cold {cold:.2f} s (target < {COLD_SECONDS:.0f} s)"
    )


if __name__ == "__main__":
    main()
