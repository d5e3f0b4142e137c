"""Early stopping: proxy steps a demo-sized search spends until it has trained a mixture within 1 % of the best
of its candidates, with the median and ASHA rules (spec.search.earlyStopping) against none.

Protocol, per seed: 12 candidates drawn from the RegMix swarm in bench/data/regmix (their recorded pile-cc loss
is each one's final objective), run as the demo runs them: rounds of 4, 60 proxy steps, a report every 6 steps
(asha: rungs 6, 18, 54, eta 3; median: Katib's defaults, 3 trials at a step). A candidate's curve is simulated:

    loss(s) = final + c * ((60 / s) ** 0.5 - 1) + noise,   c ~ U(0.5, 1.5) x the pool's spread, noise 0.1 x spread

so that curves cross (a slow starter can end best) and reports are noisy. The rules are the operator's own
(`mixtura_operator.stopping_rules`), applied at every step to the running trials. Steps spent: the sum of
every trial's steps until the first completed trial within 1 % of the best final of the 12 (the search
without stopping always gets there); a seed where the rule stopped every such trial is a miss, charged with
every step it spent. Printed: median steps and the ratio to no stopping over the seeds, misses, and the whole
search's steps.

    python bench/early_stopping.py [--seeds 200]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from search_quality import DEFAULT_RUNS, DEFAULT_TARGET

from mixtura_jobs.data.recorded_runs import Layout, join_pools, load_pool
from mixtura_operator.api.early_stopping import EarlyStopping
from mixtura_operator.stopping_rules import trials_to_stop

TRIALS, PARALLEL, STEPS, EVERY = 12, 4, 60, 6
THRESHOLD = 0.01
RULES = {
    "none": None,
    "median": EarlyStopping(type="median", eval_every=EVERY),
    "asha": EarlyStopping(type="asha", min_resource=EVERY, reduction_factor=3),
}


@dataclass(frozen=True)
class Outcome:
    to_hit: int | None  # steps spent until the first good trial completed; None: every good trial was stopped
    total: int  # steps of the whole search


def curves(finals: np.ndarray, spread: float, rng: np.random.Generator) -> np.ndarray:
    """(trials, STEPS) simulated held-out losses at steps 1..STEPS, ending at each trial's final loss."""
    steps = np.arange(1, STEPS + 1)
    scale = rng.uniform(0.5, 1.5, size=(len(finals), 1)) * spread
    noise = rng.normal(0.0, 0.1 * spread, size=(len(finals), STEPS))
    noise[:, -1] = 0.0
    return finals[:, None] + scale * ((STEPS / steps) ** 0.5 - 1) + noise


def search(losses: np.ndarray, rule: EarlyStopping | None, good: set[int]) -> Outcome:
    """Rounds of PARALLEL trials, every running trial one step a tick; the rule judges at each report."""
    ran = np.zeros(len(losses), dtype=int)
    reports: dict[str, tuple[tuple[int, float], ...]] = {}
    to_hit = None
    for start in range(0, len(losses), PARALLEL):
        running = set(range(start, min(start + PARALLEL, len(losses))))
        while running:
            for i in sorted(running):
                ran[i] += 1
                if ran[i] % EVERY == 0 and ran[i] < STEPS:
                    reports[f"{i:03d}"] = (*reports.get(f"{i:03d}", ()), (int(ran[i]), float(losses[i, ran[i] - 1])))
                if ran[i] == STEPS:
                    running.discard(i)
                    reports[f"{i:03d}"] = (*reports.get(f"{i:03d}", ()), (STEPS, float(losses[i, -1])))
                    if to_hit is None and i in good:
                        to_hit = int(ran.sum())
            if rule is not None:
                stops = trials_to_stop(rule, STEPS, reports, [f"{i:03d}" for i in running], maximize=False)
                running -= {int(tid) for tid in stops}
    return Outcome(to_hit, int(ran.sum()))


def run(seeds: Sequence[int]) -> dict[str, list[Outcome]]:
    pool = join_pools([load_pool(pair, Layout(target=(DEFAULT_TARGET,))) for pair in DEFAULT_RUNS])
    spread = float(np.std(pool.scores))
    out: dict[str, list[Outcome]] = {name: [] for name in RULES}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        finals = pool.scores[rng.choice(len(pool.scores), TRIALS, replace=False)]
        losses = curves(finals, spread, rng)
        best = finals.min()
        good = {i for i, f in enumerate(finals) if f <= best + THRESHOLD * abs(best)}
        for name, rule in RULES.items():
            out[name].append(search(losses, rule, good))
    return out


def report(results: dict[str, list[Outcome]]) -> None:
    baseline = results["none"]
    print(f"{'rule':<8} {'steps to within 1 %':>20} {'ratio':>6} {'misses':>8} {'search steps':>13} {'ratio':>6}")
    ratio = {}
    for name, outcomes in results.items():
        # A miss costs every step the search spent: the rule threw the good trials away.
        steps = [o.to_hit if o.to_hit is not None else o.total for o in outcomes]
        ratio[name] = statistics.median(s / b.to_hit for s, b in zip(steps, baseline, strict=True))
        totals = [o.total / b.total for o, b in zip(outcomes, baseline, strict=True)]
        misses = sum(o.to_hit is None for o in outcomes)
        print(
            f"{name:<8} {statistics.median(steps):>20.0f} {ratio[name]:>6.2f} {misses:>4}/{len(outcomes):<3} "
            f"{statistics.median(o.total for o in outcomes):>13.0f} {statistics.median(totals):>6.2f}"
        )
    print(
        f"proxy steps to within 1 % of the best, against no stopping: median {ratio['median']:.2f}x, "
        f"asha {ratio['asha']:.2f}x (median over {len(baseline)} seeds)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    args = parser.parse_args(argv)
    report(run(range(args.seeds)))


if __name__ == "__main__":
    main()
