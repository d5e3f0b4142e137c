"""Asynchronous proposals against rounds on recorded proxy runs, with heavy-tailed trial durations: the simulated
time until a trial within 1 % of the pool's best has finished.

The pool protocol of bench/search_quality.py (the candidates are the recorded mixtures, asking for one returns
its recorded score; every schedule starts from the same random batch), with a clock: each trial takes a
duration drawn from a heavy-tailed law, the i-th trial started getting the i-th duration of the seed's draw, so
both schedules see the same durations in the order they start trials. `parallelTrials` slots:
- rounds: a batch of `parallel` trials, the next batch once the slowest has finished;
- async: as the operator does it (operator/schedule.py): each slot that frees is proposed at once by GP-UCB
  conditioned on the running trials (X_pending), the initial design (random draws here) until `parallel`
  trials have finished.
Proposals take no time (a GP batch is seconds against trial durations of minutes to hours). The result is the
finish time of the first hit, censored at --budget trials; the ratio async / rounds per seed, summarised by the
median over seeds (the median of the time ratios, and the ratio of the median times).

    python bench/async_schedule.py                         # the RegMix swarm, lognormal and Pareto durations
    python bench/async_schedule.py mixtures.csv scores.csv --id run_id --weight-prefix w_ --target loss
"""

import argparse
import heapq
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from search_quality import DEFAULT_BETA, Setup, load_for_gps, random_proposer

from mixtura_jobs.data.recorded_runs import Pool
from pool_search import gp_ucb_pool_batch

# Duration laws, mean about 1 for both: lognormal with sigma 1 (median 0.61), Pareto with shape 1.5 (infinite
# variance; mean 1 after scaling by 1/3).
DURATIONS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "lognormal (sigma 1)": lambda rng, n: rng.lognormal(-0.5, 1.0, n),
    "Pareto (shape 1.5)": lambda rng, n: (rng.pareto(1.5, n) + 1.0) / 3.0,
}


def _gp_pick(pool: Pool, finished: list[int], running: list[int], q: int, seed: int) -> np.ndarray:
    """q unasked runs by GP-UCB on the finished ones, conditioned on the running ones."""
    asked = np.array(finished + running)
    free = np.setdiff1d(np.arange(len(pool.scores)), asked)
    x, y = pool.weights[finished], -pool.scores[finished]
    pending = pool.weights[running] if running else None
    return free[gp_ucb_pool_batch(x, y, pool.weights[free], q, seed=seed, beta=DEFAULT_BETA, pending=pending)]


def _random_pick(pool: Pool, asked: list[int], seed: int, q: int) -> np.ndarray:
    return random_proposer(pool, np.array(asked, dtype=int), seed, q)


def rounds(pool: Pool, seed: int, durations: np.ndarray, setup: Setup, budget: int) -> tuple[float, int]:
    """(finish time of the first hit, trials started by then); inf when none within `budget` trials."""
    level, q = setup.hit_level(pool), setup.batch
    asked: list[int] = []
    clock = 0.0
    while len(asked) < budget:
        n = min(q, budget - len(asked))
        if len(asked) < q:
            batch = _random_pick(pool, asked, seed, n)
        else:
            batch = _gp_pick(pool, asked, [], n, seed + len(asked))
        finish = clock + durations[len(asked) : len(asked) + n]
        asked += batch.tolist()
        hits = finish[pool.scores[batch] <= level]
        if hits.size:
            return float(hits.min()), len(asked)
        clock = float(finish.max())
    return float("inf"), len(asked)


def asynchronous(pool: Pool, seed: int, durations: np.ndarray, setup: Setup, budget: int) -> tuple[float, int]:
    """(finish time of the first hit, trials started by then); inf when none within `budget` trials."""
    level, q = setup.hit_level(pool), setup.batch
    first = _random_pick(pool, [], seed, q).tolist()
    events = [(float(durations[i]), run) for i, run in enumerate(first)]
    heapq.heapify(events)
    asked, finished = list(first), []
    while events:
        clock, run = heapq.heappop(events)
        finished.append(run)
        if pool.scores[run] <= level:
            return clock, len(asked)
        if len(asked) >= budget:
            continue
        running = [r for _, r in events]
        if len(finished) < q:
            pick = int(_random_pick(pool, asked, seed, 1)[0])
        else:
            pick = int(_gp_pick(pool, finished, running, 1, seed + len(asked))[0])
        heapq.heappush(events, (clock + float(durations[len(asked)]), pick))
        asked.append(pick)
    return float("inf"), len(asked)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, help="one CSV (weights and scores) or two (mixtures, scores)")
    parser.add_argument("--id", default="index")
    parser.add_argument("--weight-prefix")
    parser.add_argument("--weight-columns")
    parser.add_argument("--target", nargs="+")
    parser.add_argument("--goal", choices=["min", "max"], default="min")
    parser.add_argument("--parallel", type=int, default=8, help="parallelTrials (the batch of rounds)")
    parser.add_argument("--budget", type=int, default=96, help="trials at most (maxTrials)")
    parser.add_argument("--threshold", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    return parser.parse_args(argv)


def _time_text(times: list[float]) -> str:
    finite = [t for t in times if np.isfinite(t)]
    censored = len(times) - len(finite)
    return f"{statistics.median(times):.2f}" + (f" ({censored} censored)" if censored else "")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    pool = load_for_gps(args)
    setup = Setup(args.parallel, args.threshold)
    print(
        f"pool: {len(pool.scores)} runs, {len(pool.domains)} domains, "
        f"{int(np.sum(pool.scores <= setup.hit_level(pool)))} within {args.threshold:.0%}; parallelTrials "
        f"{args.parallel}, budget {args.budget}, seeds 0-{args.seeds - 1}; time in mean trial durations"
    )
    print(
        "| durations | rounds: time to a hit (median) | async | async / rounds (median of ratios) "
        "| ratio of medians | trials started, rounds / async (median) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    summary = []
    for name, draw in DURATIONS.items():
        times: dict[str, list[float]] = {"rounds": [], "async": []}
        started: dict[str, list[int]] = {"rounds": [], "async": []}
        for seed in range(args.seeds):
            durations = draw(np.random.default_rng([seed, 17]), args.budget)
            for label, schedule in (("rounds", rounds), ("async", asynchronous)):
                time, trials = schedule(pool, seed, durations, setup, args.budget)
                times[label].append(time)
                started[label].append(trials)
        ratios = [a / r for a, r in zip(times["async"], times["rounds"], strict=True)]
        median_ratio = statistics.median(ratios)
        medians = statistics.median(times["async"]) / statistics.median(times["rounds"])
        trials = f"{statistics.median(started['rounds']):.0f} / {statistics.median(started['async']):.0f}"
        print(
            f"| {name} | {_time_text(times['rounds'])} | {_time_text(times['async'])} | {median_ratio:.2f} "
            f"| {medians:.2f} | {trials} |",
            flush=True,
        )
        summary.append(f"{name}: {median_ratio:.2f}")
    print("async / rounds time to within 1 %: " + ", ".join(summary))


if __name__ == "__main__":
    main()
