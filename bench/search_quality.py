"""Search quality on recorded proxy runs: how many trials GP-UCB, RegMix regression and random search need to
find one of the best recorded mixtures, when asking for a mixture returns its recorded score.

Input: one CSV with a row per run (weight columns and score columns), or two CSVs, mixtures and scores, with a
row per run joined on an ID column (default `index`). The weight columns are every column of the mixtures
file but the ID (two files; their totals must agree between runs, or the bench asks to name them), or the
ones named by --weight-prefix or --weight-columns; other columns are ignored. Weights are renormalised to sum
to 1 (with a warning when a row is off by more than 0.02). The score
is --target (one column, or the mean of several: GP-UCB then fits one GP per column, as a search fits one per
domain of a per-domain objective), minimised unless --goal max. Without files: the RegMix
swarm shipped in bench/data/regmix (768 runs at 1M parameters, 17 domains; target
metric/the_pile_pile_cc_val_loss, minimised).

Protocol: per seed, every method starts from the same random batch of --batch runs, then asks for batches of
unasked runs. A run is a hit when its score is within --threshold (relative, default 0.01) of the pool's best.
Reported per method: trials up to and with the first hit (median and quartiles over the seeds), counted after
the shared first batch and in total, in the order the method ranks its batch; the simple regret after 16, 32
and 64 trials; ratios to regression (after the first batch with a 90 % paired bootstrap interval over the seeds:
with a few hits in the pool, a ratio over 20 seeds is far from settled) and to random search's exact median
(computed, not sampled).

    python bench/search_quality.py                                       # the shipped RegMix swarm
    python bench/search_quality.py runs.csv --weight-prefix w_ --target loss --out results/
    python bench/search_quality.py mixtures.csv scores.csv --id run_id --target loss_a loss_b --goal min
"""

import argparse
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from linear_operator.utils.warnings import NumericalWarning

from mixtura_jobs.data.recorded_runs import Layout, Pool, join_pools, load_pool
from mixtura_operator.wording import counted
from pool_search import gp_ucb_pool_batch, regression_pool_batch

DATA = Path(__file__).resolve().parent / "data" / "regmix"
# Every recorded run at the 1M-parameter scale: the candidates are the recorded mixtures (method notes).
DEFAULT_RUNS = (
    (DATA / "train_mixture_1m.csv", DATA / "train_pile_loss_1m.csv"),
    (DATA / "test_mixture_1m.csv", DATA / "test_pile_loss_1m.csv"),
)
DEFAULT_TARGET = "metric/the_pile_pile_cc_val_loss"
# The CRD's default (operator/api/mixturesearch.py), chosen on seeds 100-119 of three swarms (README).
DEFAULT_BETA = 2.0
REGRET_BUDGETS = (16, 32, 64)
# The ratio to regression's median gets a paired bootstrap interval over the seeds: its level and resamples.
INTERVAL_LEVEL = 0.9
BOOTSTRAP_DRAWS = 2000


@dataclass(frozen=True)
class Setup:
    batch: int = 8
    threshold: float = 0.01  # a hit is within this share of the pool's best score

    def hit_level(self, pool: Pool) -> float:
        best = pool.scores.min()
        return best + self.threshold * abs(best)


# A proposer gets the pool, the indices asked for so far, the seed and the batch size; it returns up to that
# many unasked indices.
Proposer = Callable[[Pool, np.ndarray, int, int], np.ndarray]


def random_proposer(pool: Pool, asked: np.ndarray, seed: int, batch: int) -> np.ndarray:
    """The next `batch` of one fixed permutation of the pool: uniform sampling without replacement."""
    order = np.random.default_rng(seed).permutation(len(pool.scores))
    return order[~np.isin(order, asked)][:batch]


def _model_proposer(batch_of: Callable[..., np.ndarray], parts: bool = False, **options: object) -> Proposer:
    """Fit on the asked mixtures (maximising -score, or its -parts where the pool has them and `parts`), choose
    among the unasked ones."""

    def propose(pool: Pool, asked: np.ndarray, seed: int, batch: int) -> np.ndarray:
        free = np.setdiff1d(np.arange(len(pool.scores)), asked)
        y = -(pool.parts if parts and pool.parts is not None else pool.scores)[asked]
        x = pool.weights[asked]
        return free[batch_of(x, y, pool.weights[free], min(batch, free.size), seed=seed, **options)]

    return propose


def methods(beta: float) -> dict[str, Proposer]:
    """Every method the bench compares, by name; GP-UCB at `beta`, with each surrogate variant."""
    return {
        "GP-UCB": _model_proposer(gp_ucb_pool_batch, parts=True, beta=beta),
        "GP-UCB (one GP on the mean)": _model_proposer(gp_ucb_pool_batch, beta=beta),
        "GP-UCB (raw weights)": _model_proposer(gp_ucb_pool_batch, parts=True, beta=beta, inputs="weights"),
        "GP-UCB (log-ratios alone)": _model_proposer(gp_ucb_pool_batch, parts=True, beta=beta, inputs="log-ratio"),
        "regression (RegMix)": _model_proposer(regression_pool_batch),
        "random": random_proposer,
    }


def run_search(pool: Pool, propose: Proposer, seed: int, budget: int, horizon: int, setup: Setup) -> np.ndarray:
    """The indices asked for, in order: the first batch from random_proposer (the same for every method), then
    `propose`. Stops at `budget` trials, or earlier once past `horizon` trials and a hit."""
    asked = random_proposer(pool, np.empty(0, dtype=int), seed, setup.batch)
    level = setup.hit_level(pool)
    budget = min(budget, len(pool.scores))
    while asked.size < budget and not (asked.size >= horizon and pool.scores[asked].min() <= level):
        batch = propose(pool, asked, seed, setup.batch)
        if np.any(np.isin(batch, asked)) or np.unique(batch).size != batch.size:
            raise RuntimeError(f"the proposer asked for a mixture twice: {batch}")
        asked = np.concatenate([asked, batch])
    return asked[:budget]


def regret_curve(pool: Pool, asked: np.ndarray) -> np.ndarray:
    """Simple regret after each trial: the best score so far minus the pool's best."""
    return np.minimum.accumulate(pool.scores[asked]) - pool.scores.min()


def trials_to_hit(pool: Pool, asked: np.ndarray, setup: Setup) -> int | None:
    """Trials spent until (and with) the first hit; None if never."""
    hits = np.flatnonzero(pool.scores[asked] <= setup.hit_level(pool))
    return None if hits.size == 0 else int(hits[0] + 1)


def after_first_batch(trials: int | None, batch: int) -> int | None:
    """A trial count without the shared first batch (0 when that batch hit)."""
    return None if trials is None else max(trials - batch, 0)


def random_search_median(m: int, hits: int) -> int:
    """The exact median trials random search (without replacement) needs to draw one of `hits` among m runs:
    a median over 20 seeds is noisy (for 7 of 512 runs, 48: 90 % of 20-seed medians fall in 28-77)."""
    miss = 1.0
    for t in range(1, m - hits + 2):
        miss *= (m - hits - t + 1) / (m - t + 1)
        if miss <= 0.5:
            return t
    raise ValueError(f"need 1 <= hits <= m, got hits={hits}, m={m}")


def _censored_as_inf(trials: list[int | None]) -> np.ndarray:
    return np.array([np.inf if t is None else t for t in trials], dtype=np.float64)


def trials_summary(trials: list[int | None]) -> tuple[float, float, float, int]:
    """Median, first and third quartile of trials-to-hit (a censored seed counts as infinite: it ranks above
    every hit, so the quantiles stay exact while they fall on hits), and the number of censored seeds."""
    values = _censored_as_inf(trials)
    q1, median, q3 = np.percentile(values, [25, 50, 75], method="inverted_cdf")
    return float(median), float(q1), float(q3), sum(t is None for t in trials)


def median_ratio(values: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Ratio of the medians of trials-to-hit (inf for a censored seed) along the last axis: 1 where both are 0 or
    both censored, inf over a median of 0."""
    a, b = (np.percentile(v, 50, axis=-1, method="inverted_cdf") for v in (values, baseline))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.divide(a, b)
    return np.where(a == b, 1.0, ratio)


def ratio_interval(trials: list[int | None], baseline: list[int | None], seed: int = 0) -> tuple[float, float]:
    """The INTERVAL_LEVEL interval of median_ratio over BOOTSTRAP_DRAWS resamples of the seeds, in pairs (a seed's
    two searches share its first batch): how far a ratio over a few seeds is from settled."""
    values, base = _censored_as_inf(trials), _censored_as_inf(baseline)
    if values.shape != base.shape:
        raise ValueError(f"need the same seeds for both, got {values.size} and {base.size}")
    picks = np.random.default_rng(seed).integers(0, values.size, size=(BOOTSTRAP_DRAWS, values.size))
    tail = (1 - INTERVAL_LEVEL) / 2
    low, high = np.quantile(median_ratio(values[picks], base[picks]), [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


@dataclass(frozen=True)
class MethodResult:
    trials: list[int | None]  # per seed, in total
    regrets: np.ndarray  # (seeds, horizon): regret after each trial
    seconds: float


def evaluate(
    pool: Pool, propose: Proposer, seeds: Sequence[int], budget: int, horizon: int, setup: Setup
) -> MethodResult:
    start = time.perf_counter()
    runs = [run_search(pool, propose, seed, budget, horizon, setup) for seed in seeds]
    return MethodResult(
        [trials_to_hit(pool, asked, setup) for asked in runs],
        np.array([regret_curve(pool, asked)[:horizon] for asked in runs]),
        time.perf_counter() - start,
    )


def _trials_text(value: float, budget: int) -> str:
    return f">{budget}" if np.isinf(value) else f"{value:.0f}"


def _quartiles_text(trials: list[int | None], budget: int) -> str:
    median, q1, q3, _ = trials_summary(trials)
    return f"{_trials_text(median, budget)} [{_trials_text(q1, budget)}, {_trials_text(q3, budget)}]"


def _ratio_text(value: float, baseline: float) -> str:
    if baseline == 0:
        return "-" if value == 0 else "inf"
    return "-" if np.isinf(value) else f"{value / baseline:.2f}"


def plot_curves(results: dict[str, MethodResult], pool: Pool, setup: Setup, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, result in results.items():
        trials = np.arange(1, result.regrets.shape[1] + 1)
        q1, median, q3 = np.percentile(result.regrets, [25, 50, 75], axis=0)
        (line,) = ax.plot(trials, median, label=f"{name} (median, IQR)")
        ax.fill_between(trials, q1, q3, color=line.get_color(), alpha=0.2)
    within = setup.hit_level(pool) - pool.scores.min()
    ax.axhline(within, color="grey", linestyle="--", linewidth=1, label=f"{setup.threshold:.0%} of the best")
    # Regret reaches 0 once the pool's best is found: linear near 0, logarithmic above.
    ax.set_yscale("symlog", linthresh=max(within / 10, 1e-12))
    ax.set_ylim(bottom=0)
    ax.set_xticks(np.arange(0, trials[-1] + 1, setup.batch))
    ax.set_xlabel(f"trials (batches of {setup.batch})")
    ax.set_ylabel("simple regret (score above the pool's best)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(results: dict[str, MethodResult], pool: Pool, args: argparse.Namespace, setup: Setup) -> None:
    """The tables: trials to a hit, regret, and the ratios to regression and to random's exact median."""
    budgets = [b for b in args.regret_at if b <= args.horizon]
    regrets = [f"regret @{b} (median)" for b in budgets]
    _header(["trials to a hit after the first batch (median [IQR])", "in total", "censored", *regrets, "time (s)"])
    for name, result in results.items():
        cells = [
            _quartiles_text([after_first_batch(t, setup.batch) for t in result.trials], args.budget),
            _quartiles_text(result.trials, args.budget),
            f"{trials_summary(result.trials)[3]}/{len(args.seeds)}",
            *(f"{np.median(result.regrets[:, b - 1]):.4g}" for b in budgets),
            f"{result.seconds:.0f}",
        ]
        _row(name, cells)

    hits = int(np.sum(pool.scores <= setup.hit_level(pool)))
    random_total = random_search_median(len(pool.scores), hits)
    random_after = max(random_total - setup.batch, 0)
    regression = results.get("regression (RegMix)")
    print(f"\nrandom search's exact median: {random_total} trials in total, {random_after} after the first batch\n")
    ratios = ["÷ random's exact median, after the first batch", "÷ random's exact median, in total"]
    if regression is not None:
        regression_after = [after_first_batch(t, setup.batch) for t in regression.trials]
        regression_medians = trials_summary(regression_after)[0], trials_summary(regression.trials)[0]
        interval = f"÷ regression, after the first batch [{INTERVAL_LEVEL:.0%} interval]"
        ratios = [interval, "÷ regression, in total", *ratios]
    _header(ratios)
    for name, result in results.items():
        trials_after = [after_first_batch(t, setup.batch) for t in result.trials]
        after, total = trials_summary(trials_after)[0], trials_summary(result.trials)[0]
        cells = []
        if regression is not None:
            low, high = ratio_interval(trials_after, regression_after)
            cells = [
                f"{_ratio_text(after, regression_medians[0])} [{low:.2f}, {high:.2f}]",
                _ratio_text(total, regression_medians[1]),
            ]
        cells += [_ratio_text(after, random_after), _ratio_text(total, random_total)]
        _row(name, cells)


def _header(columns: list[str]) -> None:
    """A table's header after its `method` column, every column but that one right-aligned."""
    _row("method", columns)
    print("|---|" + "---:|" * len(columns))


def _row(name: str, cells: list[str]) -> None:
    print(f"| {name} | " + " | ".join(cells) + " |")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        help="one CSV (weights and scores), or two (mixtures, scores) joined on --id; default: the RegMix swarm",
    )
    parser.add_argument("--id", default="index", help="the ID column joining two files (default: %(default)s)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--weight-prefix", help="weight columns: those whose names start with this")
    weights.add_argument("--weight-columns", help="weight columns: comma-separated names")
    parser.add_argument(
        "--target", nargs="+", help=f"score column(s); several are averaged (default: {DEFAULT_TARGET})"
    )
    parser.add_argument("--goal", choices=("min", "max"), default="min", help="default: %(default)s")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.01,
        help="a hit: within this share of the best score (default: %(default)s)",
    )
    parser.add_argument("--batch", type=int, default=8, help="trials per batch (default: %(default)s)")
    parser.add_argument("--seeds", type=seed_range, default=list(range(20)), help="e.g. 0-19 (the default) or 1,5,9")
    parser.add_argument("--budget", type=int, default=256, help="most trials per search (default: %(default)s)")
    parser.add_argument(
        "--regret-at",
        type=budget_list,
        default=list(REGRET_BUDGETS),
        help="trial counts for the regret columns (default: 16,32,64)",
    )
    parser.add_argument("--beta", type=float, default=DEFAULT_BETA, help="GP-UCB's β (default: the CRD's, %(default)s)")
    parser.add_argument("--methods", help="comma-separated subset of: " + ", ".join(methods(DEFAULT_BETA)))
    parser.add_argument("--out", type=Path, help="folder for the regret plot (none without it)")
    args = parser.parse_args(argv)
    if len(args.files) > 2:
        parser.error(f"give one CSV or two (mixtures, scores), got {len(args.files)}")
    if not 0 < args.threshold < 1 or args.batch < 1 or args.beta <= 0:
        parser.error("need 0 < --threshold < 1, --batch >= 1 and --beta > 0")
    if args.budget <= args.batch:
        parser.error(f"--budget ({args.budget}) must exceed --batch ({args.batch}): the first batch is random for all")
    if args.methods:
        unknown = set(listed(args.methods)) - set(methods(DEFAULT_BETA))
        if unknown:
            parser.error(f"unknown methods {sorted(unknown)}; choose from {list(methods(DEFAULT_BETA))}")
    if not args.files and (args.weight_prefix or args.weight_columns):
        parser.error("--weight-prefix and --weight-columns need your own files")
    return args


def seed_range(text: str) -> list[int]:
    """'0-19', '3' or '1,4,7'."""
    if "-" in text:
        low, high = (int(v) for v in text.split("-"))
        if low > high:
            raise argparse.ArgumentTypeError(f"{text!r} is an empty range (write low-high)")
        return list(range(low, high + 1))
    return [int(v) for v in text.split(",")]


def listed(text: str) -> list[str]:
    """Comma-separated names, as typed: 'a,b' or 'a, b'."""
    return [name.strip() for name in text.split(",")]


def budget_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def load(args: argparse.Namespace) -> Pool:
    layout = Layout(
        target=tuple(args.target or (DEFAULT_TARGET,)),
        id_column=args.id,
        weight_prefix=args.weight_prefix,
        weight_columns=tuple(listed(args.weight_columns)) if args.weight_columns else None,
        maximise=args.goal == "max",
    )
    if args.files:
        return load_pool(args.files, layout)
    return join_pools([load_pool(pair, layout) for pair in DEFAULT_RUNS])


def load_for_gps(args: argparse.Namespace) -> Pool:
    """The pool of `args` (exit with its error when unreadable), torch and warnings set for many small GPs."""
    try:
        pool = load(args)
    except ValueError as error:
        sys.exit(f"error: {error}")
    # The GPs are small: intra-op threads gain nothing and, on a shared runner, contend badly.
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # Recorded mixtures can lie very close together; the 1e-8 jitter gpytorch then adds is harmless.
    warnings.filterwarnings("ignore", category=NumericalWarning)
    return pool


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    pool = load_for_gps(args)
    if args.batch >= len(pool.scores):
        sys.exit(f"error: --batch {args.batch} must be below the number of runs ({len(pool.scores)})")
    setup = Setup(args.batch, args.threshold)
    args.horizon = min(max(args.regret_at), args.budget, len(pool.scores))
    chosen = methods(args.beta)
    if args.methods:
        chosen = {name: chosen[name] for name in listed(args.methods)}
    best = pool.scores.min()
    hits = int(np.sum(pool.scores <= setup.hit_level(pool)))
    columns = args.target or [DEFAULT_TARGET]
    target = columns[0] if len(columns) == 1 else f"the mean of {', '.join(columns)}"
    within = f"{counted(hits, 'run')} within {args.threshold:.1%} of it"
    goal, shown_best = ("maximised", -best) if args.goal == "max" else ("minimised", best)
    print(
        f"{len(pool.scores)} runs over {len(pool.domains)} domains; target {target} ({goal}), best {shown_best:.6g}; "
        f"{within}\nseeds {args.seeds[0]}..{args.seeds[-1]} ({len(args.seeds)}), "
        f"batch {args.batch}, budget {args.budget}, GP-UCB β {args.beta:g}\n"
    )
    results = {
        name: evaluate(pool, propose, args.seeds, args.budget, args.horizon, setup) for name, propose in chosen.items()
    }
    report(results, pool, args, setup)
    if args.out:
        plot = args.out / "search_quality_regret.png"
        title = f"{len(pool.scores)} runs, {len(args.seeds)} seeds, batch {setup.batch}"
        plot_curves(results, pool, setup, plot, title)
        print(f"\nregret curves: {plot}")


if __name__ == "__main__":
    main()
