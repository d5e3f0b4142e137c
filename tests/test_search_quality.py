"""The pool-based search-quality bench: loading recorded runs, the search loop, its metrics; the proposers'
reproducibility."""

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from mixtura_jobs.search.regmix import regression_batch
from mixtura_jobs.search.simplex import random_batch, uniform_weights
from pool_search import gp_ucb_pool_batch, regression_pool_batch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "search_quality.py"
DOMAINS = ("train_a", "train_b", "train_c")
TARGET = "metric/a_val_loss"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sq() -> ModuleType:
    spec = importlib.util.spec_from_file_location("search_quality", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.write_text("\n".join(",".join(str(v) for v in row) for row in [header, *rows]) + "\n")
    return path


def synthetic_runs(tmp_path: Path, m: int = 48, seed: int = 0) -> tuple[Path, Path]:
    """m recorded runs over 3 domains, weights rounded to 3 decimals like the RegMix files; the loss is
    smallest near (0.6, 0.3, 0.1). The score file lists the runs in reverse order."""
    w = random_batch(m, len(DOMAINS), seed).round(3)
    loss = 2.0 + np.sum((w - [0.6, 0.3, 0.1]) ** 2, axis=1)
    mixtures = write_csv(tmp_path / "mix.csv", ["index", *DOMAINS], [[i + 1, *w[i]] for i in range(m)])
    scores = write_csv(
        tmp_path / "loss.csv",
        ["index", "metric/other_val_loss", TARGET],
        [[i + 1, 9.0, loss[i]] for i in reversed(range(m))],
    )
    return mixtures, scores


def toy_pool(sq: ModuleType, scores: list[float]) -> object:
    return sq.Pool(np.tile(uniform_weights(3), (len(scores), 1)), np.array(scores), DOMAINS)


# --- loading ---


def test_loader_joins_on_index_and_renormalises_the_weights(sq: ModuleType, tmp_path: Path) -> None:
    mixtures = write_csv(
        tmp_path / "mix.csv",
        ["index", *DOMAINS],
        [[1, 0.5, 0.5, 0.0], [2, 0.2, 0.3, 0.499], [3, 1.0, 0.0, 0.0], [10, 0.0, 0.0, 1.0]],
    )
    scores = write_csv(tmp_path / "loss.csv", ["index", TARGET, "x"], [[10, 4.0, 0], [2, 3.0, 0], [1, 5.0, 0]])
    pool = sq.load_pool(mixtures, scores, TARGET)
    assert pool.domains == DOMAINS
    # Run 3 has no score and is left out; runs come in `index` order, numerically (10 after 2).
    np.testing.assert_array_equal(pool.scores, [5.0, 3.0, 4.0])
    np.testing.assert_allclose(pool.weights, [[0.5, 0.5, 0.0], np.array([0.2, 0.3, 0.499]) / 0.999, [0, 0, 1]])


@pytest.mark.parametrize(
    ("mix_rows", "target", "message"),
    [
        ([[1, 0.5, 0.5, 0.0, 0.0], [2, 0.2, 0.3, 0.5]], TARGET, "line 2: 5 values for 4 header names"),
        ([[1, 0.5, 0.5, 0.0], [1, 0.2, 0.3, 0.5]], TARGET, "repeated"),
        ([[1, 0.5, 0.5, 0.0], [2, 0.2, 0.3, 0.5]], "metric/missing", "no column"),
        ([[1, 0.5, 0.5, 0.0], [2, -0.2, 0.7, 0.5]], TARGET, "non-negative"),
    ],
)
def test_loader_refuses_malformed_files(
    sq: ModuleType, tmp_path: Path, mix_rows: list[list[object]], target: str, message: str
) -> None:
    mixtures = write_csv(tmp_path / "mix.csv", ["index", *DOMAINS], mix_rows)
    scores = write_csv(tmp_path / "loss.csv", ["index", TARGET], [[1, 1.0], [2, 2.0]])
    with pytest.raises(ValueError, match=message):
        sq.load_pool(mixtures, scores, target)


# --- the search loop and its metrics ---


@pytest.mark.parametrize("method", ["GP-UCB", "regression", "random"])
def test_a_search_never_asks_for_a_mixture_twice(sq: ModuleType, tmp_path: Path, method: str) -> None:
    pool = sq.load_pool(*synthetic_runs(tmp_path), TARGET)
    asked = sq.run_search(pool, sq.METHODS[method], seed=3, budget=32, horizon=32)
    assert asked.size == 32
    assert np.unique(asked).size == asked.size
    # The first batch is the same random one for every method.
    np.testing.assert_array_equal(asked[: sq.Q], sq.random_proposer(pool, np.empty(0, dtype=int), 3))


def test_a_search_runs_until_the_whole_pool_is_asked(sq: ModuleType, tmp_path: Path) -> None:
    pool = sq.load_pool(*synthetic_runs(tmp_path, m=20), TARGET)
    asked = sq.run_search(pool, sq.METHODS["regression"], seed=0, budget=256, horizon=256)
    np.testing.assert_array_equal(np.sort(asked), np.arange(20))


def test_a_proposer_that_repeats_itself_is_caught(sq: ModuleType, tmp_path: Path) -> None:
    pool = sq.load_pool(*synthetic_runs(tmp_path), TARGET)
    with pytest.raises(RuntimeError, match="twice"):
        sq.run_search(pool, lambda p, observed, seed: observed[: sq.Q], seed=0, budget=32, horizon=32)


def test_a_search_stops_past_the_horizon_once_within_one_percent(sq: ModuleType) -> None:
    pool = toy_pool(sq, [1.0] + [2.0] * 63)
    # Seed 0's first random batch decides; every later batch comes from the permutation too.
    asked = sq.run_search(pool, sq.random_proposer, seed=0, budget=64, horizon=16)
    hit = int(np.flatnonzero(asked == 0)[0])
    assert asked.size == max(16, -(-(hit + 1) // sq.Q) * sq.Q)


def test_regret_is_non_negative_non_increasing_and_zero_at_the_best(sq: ModuleType, tmp_path: Path) -> None:
    pool = sq.load_pool(*synthetic_runs(tmp_path), TARGET)
    for seed in range(3):
        curve = sq.regret_curve(pool, np.random.default_rng(seed).permutation(len(pool.scores)))
        assert np.all(curve >= 0)
        assert np.all(np.diff(curve) <= 0)
        assert curve[-1] == 0.0


def test_trials_to_within_one_percent_count_up_to_the_first_hit(sq: ModuleType) -> None:
    pool = toy_pool(sq, [2.0, 2.015, 2.03, 5.0, 6.0])
    assert sq.trials_to_within(pool, np.array([3, 4, 3, 4, 3, 4, 3, 4, 3, 1])) == 10  # 2.015 is within 1 %
    assert sq.trials_to_within(pool, np.array([0, 3])) == 1
    assert sq.trials_to_within(pool, np.array([2, 3, 4])) is None  # 2.03 is 1.5 % above the best
    assert [sq.whole_batches(t) for t in (10, 1, 8, None)] == [16, 8, 8, None]
    np.testing.assert_allclose(sq.regret_curve(pool, np.array([4, 2, 3, 1])), [4.0, 0.03, 0.03, 0.015])


def test_censored_seeds_count_above_every_hit(sq: ModuleType) -> None:
    assert sq.trials_summary([8, 16, None, 24]) == (16.0, 8.0, 24.0, 1)
    median, _, q3, censored = sq.trials_summary([8, None, None, None])
    assert np.isinf(median) and np.isinf(q3) and censored == 3
    assert sq.seed_range("100-104") == [100, 101, 102, 103, 104]
    assert sq.seed_range("1,5") == [1, 5]


# --- reproducibility of the proposers ---


def test_regression_batch_is_reproducible_for_a_seed() -> None:
    x = random_batch(24, 4, seed=1)
    y = -np.sum((x - [0.4, 0.3, 0.2, 0.1]) ** 2, axis=1)
    center = uniform_weights(4)
    a = regression_batch(x, y, 8, seed=5, center=center, n_samples=2000)
    np.testing.assert_array_equal(a, regression_batch(x, y, 8, seed=5, center=center, n_samples=2000))
    assert not np.array_equal(a, regression_batch(x, y, 8, seed=6, center=center, n_samples=2000))


def test_pool_proposers_are_reproducible_and_pick_distinct_candidates() -> None:
    x, pool = random_batch(16, 4, seed=1), random_batch(40, 4, seed=2)
    y = -np.sum((x - [0.4, 0.3, 0.2, 0.1]) ** 2, axis=1)
    for propose in (gp_ucb_pool_batch, regression_pool_batch):
        a = propose(x, y, pool, 8, seed=5)
        np.testing.assert_array_equal(a, propose(x, y, pool, 8, seed=5))
        assert np.unique(a).size == 8 and np.all((a >= 0) & (a < len(pool)))


def test_pools_join_only_over_the_same_domains(sq: ModuleType) -> None:
    a, b = toy_pool(sq, [1.0, 2.0]), toy_pool(sq, [3.0])
    joined = sq.join_pools([a, b])
    np.testing.assert_array_equal(joined.scores, [1.0, 2.0, 3.0])
    assert joined.weights.shape == (3, 3)
    with pytest.raises(ValueError, match="different domains"):
        sq.join_pools([a, sq.Pool(b.weights, b.scores, ("x", "y", "z"))])


def test_random_search_median_is_exact(sq: ModuleType) -> None:
    assert sq.random_search_median(10, 1) == 5  # P(miss after 5 draws) = 5/10
    assert sq.random_search_median(10, 10) == 1
    rng = np.random.default_rng(0)
    firsts = [np.flatnonzero(rng.permutation(512) < 7)[0] + 1 for _ in range(4000)]
    assert abs(np.median(firsts) - sq.random_search_median(512, 7)) <= 3
