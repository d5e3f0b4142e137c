"""The pool-based search-quality bench: loading recorded runs, the search loop, its metrics; the proposers'
reproducibility."""

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from mixtura_jobs.data.recorded_runs import Layout, Pool, join_pools, load_pool
from mixtura_jobs.search.regmix import regression_batch
from mixtura_jobs.search.simplex import random_batch, uniform_weights
from pool_search import gp_ucb_pool_batch, regression_pool_batch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "search_quality.py"
DOMAINS = ("train_a", "train_b", "train_c")
TARGET = "metric/a_val_loss"
LAYOUT = Layout(target=(TARGET,))
SETUP_ARGS = {"batch": 8, "threshold": 0.01}

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


def toy_pool(sq: ModuleType, scores: list[float]) -> Pool:
    return Pool(np.tile(uniform_weights(3), (len(scores), 1)), np.array(scores), DOMAINS)


# --- loading ---


def test_loader_joins_on_index_and_renormalises_the_weights(sq: ModuleType, tmp_path: Path) -> None:
    mixtures = write_csv(
        tmp_path / "mix.csv",
        ["index", *DOMAINS],
        [[1, 0.5, 0.5, 0.0], [2, 0.2, 0.3, 0.499], [3, 1.0, 0.0, 0.0], [10, 0.0, 0.0, 1.0]],
    )
    scores = write_csv(
        tmp_path / "loss.csv", ["index", TARGET, "x"], [[10, 4.0, 0], [2, 3.0, 0], [1, 5.0, 0], [11, 1.0, 0]]
    )
    with pytest.warns(UserWarning) as caught:
        pool = load_pool([mixtures, scores], LAYOUT)
    assert [str(w.message) for w in caught if "left out" in str(w.message)] == [
        f"{mixtures}: 1 run has no row in {scores} ('index': 3); they are left out",
        f"{scores}: 1 run has no row in {mixtures} ('index': 11); they are left out",
    ]
    assert pool.domains == DOMAINS
    # Runs 3 and 11 are in one file only and left out; runs come in `index` order, numerically (10 after 2).
    np.testing.assert_array_equal(pool.scores, [5.0, 3.0, 4.0])
    np.testing.assert_allclose(pool.weights, [[0.5, 0.5, 0.0], np.array([0.2, 0.3, 0.499]) / 0.999, [0, 0, 1]])


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_loader_reads_what_spreadsheets_write(sq: ModuleType, tmp_path: Path, delimiter: str) -> None:
    """A byte-order mark, another delimiter, spaces around names and IDs and a delimiter ending every line load
    as the plain comma files do."""
    mixtures, scores = synthetic_runs(tmp_path)
    for path in (mixtures, scores):
        lines = path.read_text().splitlines()
        spaced = [delimiter.join(f" {value} " for value in line.split(",")) + delimiter for line in lines]
        (tmp_path / f"excel-{path.name}").write_text("\n".join(spaced) + "\n", encoding="utf-8-sig")
    excel = load_pool([tmp_path / "excel-mix.csv", tmp_path / "excel-loss.csv"], LAYOUT)
    plain = load_pool([mixtures, scores], LAYOUT)
    assert excel.domains == plain.domains
    np.testing.assert_array_equal(excel.weights, plain.weights)
    np.testing.assert_array_equal(excel.scores, plain.scores)


@pytest.mark.parametrize(
    ("mix_rows", "target", "message"),
    [
        ([[1, 0.5, 0.5, 0.0, 0.0], [2, 0.2, 0.3, 0.5]], TARGET, "line 2: 5 values for 4 header names"),
        ([[1, 0.5, 0.5, 0.0], [1, 0.2, 0.3, 0.5]], TARGET, r"line 3, .* '1' is repeated \(first at line 2"),
        ([[1, 0.5, 0.5, 0.0], [2, 0.2, 0.3, 0.5]], "metric/missing", "loss.csv: no column 'metric/missing'"),
        ([[1, 0.5, 0.5, 0.0], [2, -0.2, 0.7, 0.5]], TARGET, "mix.csv, line 3, column 'train_a': weights must be"),
        ([[1, 0.5, 0.5, 0.0], [2, "n/a", 0.7, 0.5]], TARGET, "mix.csv, line 3, column 'train_a': 'n/a' is not a"),
        ([[1, 0.5, 0.5, 0.0], [2, 0.0, 0.0, 0.0]], TARGET, "mix.csv, line 3: the run has no positive weight"),
    ],
)
def test_loader_refuses_malformed_files(
    sq: ModuleType, tmp_path: Path, mix_rows: list[list[object]], target: str, message: str
) -> None:
    mixtures = write_csv(tmp_path / "mix.csv", ["index", *DOMAINS], mix_rows)
    scores = write_csv(tmp_path / "loss.csv", ["index", TARGET], [[1, 1.0], [2, 2.0]])
    with pytest.raises(ValueError, match=message):
        load_pool([mixtures, scores], Layout(target=(target,)))


def test_integer_run_ids_join_however_each_file_writes_them(tmp_path: Path) -> None:
    """pandas writes an integer ID column that has a missing value as floats (7.0), other tools pad (007)."""
    mixtures, scores = synthetic_runs(tmp_path)
    lines = scores.read_text().splitlines()
    ids = [f"{i}.0" if i % 2 else f"{i:03d}" for i in range(len(lines) - 1, 0, -1)]
    padded = [lines[0]] + [f"{run}{line[line.index(',') :]}" for run, line in zip(ids, lines[1:], strict=True)]
    written = tmp_path / "written.csv"
    written.write_text("\n".join(padded) + "\n")
    joined, plain = load_pool([mixtures, written], LAYOUT), load_pool([mixtures, scores], LAYOUT)
    np.testing.assert_array_equal(joined.weights, plain.weights)
    np.testing.assert_array_equal(joined.scores, plain.scores)


def test_columns_taken_as_weights_by_default_must_sum_to_one_total(tmp_path: Path) -> None:
    """Without named weight columns every other column is taken: a step count among them would be renormalised
    into every mixture, so totals that differ between runs stop the load; percentages (every run 100) load."""
    rows = [[1, 50, 50, 0, 1000], [2, 20, 30, 50, 2000], [3, 0, 0, 100, 1000]]
    scores = write_csv(tmp_path / "loss.csv", ["index", TARGET], [[1, 1.0], [2, 2.0], [3, 3.0]])
    mixtures = write_csv(tmp_path / "mix.csv", ["index", *DOMAINS, "steps"], rows)
    taken = r"mix.csv: the columns taken as weights \(.*train_c, steps\) sum to 1100 on line 2 and to 2100 on line 3"
    with pytest.raises(ValueError, match=taken + r"; name the weight columns \(--weight-prefix or --weight-columns\)"):
        load_pool([mixtures, scores], LAYOUT)
    percent = write_csv(tmp_path / "percent.csv", ["index", *DOMAINS], [row[:4] for row in rows])
    with pytest.warns(UserWarning, match="do not sum to 1"):
        pool = load_pool([percent, scores], LAYOUT)
    np.testing.assert_allclose(pool.weights, [[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    named = load_pool([mixtures, scores], Layout(target=(TARGET,), weight_columns=DOMAINS))
    np.testing.assert_allclose(named.weights, pool.weights)


# --- the search loop and its metrics ---


@pytest.mark.parametrize("method", ["GP-UCB", "GP-UCB (raw weights)", "regression (RegMix)", "random"])
def test_a_search_never_asks_for_a_mixture_twice(sq: ModuleType, tmp_path: Path, method: str) -> None:
    pool = load_pool(synthetic_runs(tmp_path), LAYOUT)
    asked = sq.run_search(pool, sq.methods(2.0)[method], seed=3, budget=32, horizon=32, setup=sq.Setup())
    assert asked.size == 32
    assert np.unique(asked).size == asked.size
    # The first batch is the same random one for every method.
    np.testing.assert_array_equal(asked[:8], sq.random_proposer(pool, np.empty(0, dtype=int), 3, 8))


def test_a_search_runs_until_the_whole_pool_is_asked(sq: ModuleType, tmp_path: Path) -> None:
    pool = load_pool(synthetic_runs(tmp_path, m=20), LAYOUT)
    asked = sq.run_search(pool, sq.methods(2.0)["regression (RegMix)"], 0, 256, 256, sq.Setup(batch=3))
    np.testing.assert_array_equal(np.sort(asked), np.arange(20))


def test_a_proposer_that_repeats_itself_is_caught(sq: ModuleType, tmp_path: Path) -> None:
    pool = load_pool(synthetic_runs(tmp_path), LAYOUT)
    with pytest.raises(RuntimeError, match="twice"):
        sq.run_search(pool, lambda p, observed, seed, batch: observed[:batch], 0, 32, 32, sq.Setup())


def test_a_search_stops_past_the_horizon_once_within_one_percent(sq: ModuleType) -> None:
    pool = toy_pool(sq, [1.0] + [2.0] * 63)
    # Seed 0's first random batch decides; every later batch comes from the permutation too.
    asked = sq.run_search(pool, sq.random_proposer, seed=0, budget=64, horizon=16, setup=sq.Setup())
    hit = int(np.flatnonzero(asked == 0)[0])
    assert asked.size == max(16, -(-(hit + 1) // 8) * 8)


def test_regret_is_non_negative_non_increasing_and_zero_at_the_best(sq: ModuleType, tmp_path: Path) -> None:
    pool = load_pool(synthetic_runs(tmp_path), LAYOUT)
    for seed in range(3):
        curve = sq.regret_curve(pool, np.random.default_rng(seed).permutation(len(pool.scores)))
        assert np.all(curve >= 0)
        assert np.all(np.diff(curve) <= 0)
        assert curve[-1] == 0.0


def test_trials_to_within_one_percent_count_up_to_the_first_hit(sq: ModuleType) -> None:
    pool = toy_pool(sq, [2.0, 2.015, 2.03, 5.0, 6.0])
    setup = sq.Setup()
    assert sq.trials_to_hit(pool, np.array([3, 4, 3, 4, 3, 4, 3, 4, 3, 1]), setup) == 10  # 2.015 is within 1 %
    assert sq.trials_to_hit(pool, np.array([0, 3]), setup) == 1
    assert sq.trials_to_hit(pool, np.array([2, 3, 4]), setup) is None  # 2.03 is 1.5 % above the best
    assert sq.trials_to_hit(pool, np.array([2, 3, 4]), sq.Setup(threshold=0.02)) == 1
    assert [sq.after_first_batch(t, 8) for t in (10, 1, 8, None)] == [2, 0, 0, None]
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
    joined = join_pools([a, b])
    np.testing.assert_array_equal(joined.scores, [1.0, 2.0, 3.0])
    assert joined.weights.shape == (3, 3)
    with pytest.raises(ValueError, match="different domains"):
        join_pools([a, Pool(b.weights, b.scores, ("x", "y", "z"))])


def test_the_ratio_interval_resamples_seeds_in_pairs(sq: ModuleType) -> None:
    trials = [2, 5, 9, 14, 30, 3]
    assert sq.ratio_interval(trials, trials) == (1.0, 1.0)
    # Halved on every seed: every resample's ratio is 0.5, as the pairs move together.
    assert sq.ratio_interval(trials, [2 * t for t in trials]) == (0.5, 0.5)
    low, high = sq.ratio_interval([1, 40, 2, 50, 3, 60], [10, 10, 10, 10, 10, 10])
    assert low < 1 < high
    assert sq.ratio_interval([None, None], [4, 6]) == (np.inf, np.inf)
    assert sq.ratio_interval([0, 0, 0], [0, 0, 0]) == (1.0, 1.0)
    with pytest.raises(ValueError, match="same seeds"):
        sq.ratio_interval([1, 2], [1, 2, 3])


def test_random_search_median_is_exact(sq: ModuleType) -> None:
    assert sq.random_search_median(10, 1) == 5  # P(miss after 5 draws) = 5/10
    assert sq.random_search_median(10, 10) == 1
    rng = np.random.default_rng(0)
    firsts = [np.flatnonzero(rng.permutation(512) < 7)[0] + 1 for _ in range(4000)]
    assert abs(np.median(firsts) - sq.random_search_median(512, 7)) <= 3


# --- the bench on a user's files ---


def one_file_swarm(tmp_path: Path, m: int = 24) -> Path:
    """m runs in one CSV with an ID, a name and two score columns beside the weights (prefix `w_`); the weights
    sum to 100 (percentages). The mean score is largest near (0.6, 0.3, 0.1)."""
    w = random_batch(m, 3, seed=2)
    score = 5.0 - np.sum((w - [0.6, 0.3, 0.1]) ** 2, axis=1)
    rows = [[f"run-{i}", f"name {i}", *(100 * w[i]).round(4), score[i] + 1.0, score[i] - 1.0] for i in range(m)]
    return write_csv(tmp_path / "runs.csv", ["run_id", "name", "w_a", "w_b", "w_c", "acc_x", "acc_y"], rows)


def test_one_file_with_extra_columns_a_mean_target_and_max_goal(tmp_path: Path) -> None:
    path = one_file_swarm(tmp_path)
    layout = Layout(target=("acc_x", "acc_y"), id_column="run_id", weight_prefix="w_", maximise=True)
    with pytest.warns(UserWarning, match=r"runs.csv: the weights of 24 of 24 runs do not sum to 1.*renormalised"):
        pool = load_pool([path], layout)
    assert pool.domains == ("w_a", "w_b", "w_c")
    np.testing.assert_allclose(pool.weights.sum(axis=1), 1.0)
    w = random_batch(24, 3, seed=2)
    # Maximised: the pool holds the negated mean of the two columns, lower is better.
    np.testing.assert_allclose(pool.scores, -(5.0 - np.sum((w - [0.6, 0.3, 0.1]) ** 2, axis=1)), atol=1e-3)
    # Its parts (each column / 2, negated) are what GP-UCB fits; one column is no parts.
    np.testing.assert_allclose(pool.parts.sum(axis=1), pool.scores)
    np.testing.assert_allclose(pool.parts[:, 0] - pool.parts[:, 1], -1.0, atol=1e-3)
    listed = load_pool([path], Layout(target=("acc_x",), weight_columns=("w_a", "w_b", "w_c")))
    np.testing.assert_allclose(listed.weights, pool.weights)
    assert listed.parts is None and join_pools([pool, pool]).parts.shape == (48, 2)
    assert join_pools([pool, listed]).parts is None


def test_runs_without_a_score_are_left_out_with_a_warning(tmp_path: Path) -> None:
    """A run that failed before it was scored has an empty or NaN score (as pandas writes one): left out, as a
    run missing from the scores file is; text that is no number stays an error."""
    path = one_file_swarm(tmp_path)
    lines = path.read_text().splitlines()
    for line, missing in ((2, ""), (5, "NaN"), (9, " nan ")):
        values = lines[line - 1].split(",")
        values[-1 if line != 5 else -2] = missing
        lines[line - 1] = ",".join(values)
    path.write_text("\n".join(lines) + "\n")
    layout = Layout(target=("acc_x", "acc_y"), weight_prefix="w_")
    with pytest.warns(UserWarning) as caught:
        pool = load_pool([path], layout)
    assert f"{path}: 3 runs have no value in 'acc_x', 'acc_y' (empty or NaN; lines 2, 5, 9); they are left out" in [
        str(w.message) for w in caught
    ]
    assert pool.weights.shape == (21, 3) and np.all(np.isfinite(pool.scores))
    few = write_csv(tmp_path / "few.csv", ["w_a", "w_b", "acc_x"], [[0.5, 0.5, 1.0], [1.0, 0.0, ""], [0.0, 1.0, "nan"]])
    with pytest.warns(UserWarning, match="left out"), pytest.raises(ValueError, match=r"few\.csv: fewer than 2 runs"):
        load_pool([few], Layout(target=("acc_x",), weight_prefix="w_"))
    path.write_text(path.read_text().replace(",NaN,", ",n/a,"))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"runs.csv, line 5, column 'acc_x': 'n/a' is not"):
        load_pool([path], layout)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (Layout(target=("acc_x",), weight_prefix="p_"), "runs.csv: no column starts with 'p_'"),
        (Layout(target=("acc_x",), weight_columns=("w_a", "w_q")), "runs.csv: no column 'w_q'"),
        (Layout(target=("acc_x",)), r"runs.csv, line 2, column 'run_id': 'run-0' is not a finite number \(every"),
        (Layout(target=("acc_x",)), r"taken as a weight; name the weight columns \(--weight-prefix or --weight-col"),
        (Layout(target=("acc_z",), weight_prefix="w_"), "runs.csv: no column 'acc_z'"),
        (Layout(target=("acc_x",), weight_columns=("w_a", "acc_x")), "column 'acc_x' is the run ID or the target"),
    ],
)
def test_errors_name_the_file_and_the_column(tmp_path: Path, layout: Layout, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_pool([one_file_swarm(tmp_path)], layout)


def test_a_column_named_twice_is_refused_not_read_once(tmp_path: Path) -> None:
    """csv headers may repeat a name; reading the first of two `w_a` columns would drop the other's weights."""
    rows = [[0.2, 0.3, 0.5, 1.0], [0.5, 0.1, 0.4, 2.0], [0.1, 0.1, 0.8, 3.0]]
    path = write_csv(tmp_path / "twice.csv", ["w_a", "w_b", "w_a", "loss"], rows)
    with pytest.raises(ValueError, match=r"twice\.csv: column 'w_a' appears 2 times \(columns 1, 3\); rename"):
        load_pool([path], Layout(target=("loss",), weight_prefix="w_"))
    with pytest.raises(ValueError, match=r"twice\.csv: the weight column 'w_b' is named twice"):
        load_pool([path], Layout(target=("loss",), weight_columns=("w_b", "w_b")))


def test_the_target_is_never_a_weight_though_it_has_the_prefix(tmp_path: Path) -> None:
    rows = [[0.5, 0.5, 1.0], [1.0, 0.0, 2.0], [0.0, 1.0, 3.0]]
    path = write_csv(tmp_path / "prefixed.csv", ["w_a", "w_b", "w_loss"], rows)
    pool = load_pool([path], Layout(target=("w_loss",), weight_prefix="w_"))
    assert pool.domains == ("w_a", "w_b")
    np.testing.assert_array_equal(pool.scores, [1.0, 2.0, 3.0])


def test_one_run_left_out_is_one_run(tmp_path: Path) -> None:
    rows = [[0.5, 0.5, 1.0], [1.0, 0.0, ""], [0.0, 1.0, 2.0]]
    path = write_csv(tmp_path / "one.csv", ["w_a", "w_b", "loss"], rows)
    with pytest.warns(UserWarning, match=r"one\.csv: 1 run has no value in 'loss' \(empty or NaN; lines 3\)"):
        load_pool([path], Layout(target=("loss",), weight_prefix="w_"))


def test_two_files_need_the_id_column(tmp_path: Path) -> None:
    mixtures, scores = synthetic_runs(tmp_path)
    with pytest.raises(ValueError, match=r"mix.csv: no column 'run_id'"):
        load_pool([mixtures, scores], Layout(target=(TARGET,), id_column="run_id"))


def test_the_command_runs_on_a_users_file_and_states_no_targets_of_its_own(
    sq: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = one_file_swarm(tmp_path, m=40)
    out = tmp_path / "results"
    argv = [str(path), "--weight-prefix", "w_", "--target", "acc_x", "acc_y", "--goal", "max", "--batch", "4"]
    argv += ["--threshold", "0.002", "--seeds", "0-2", "--methods", "GP-UCB,regression (RegMix),random"]
    argv += ["--regret-at", "8,16"]
    with pytest.warns(UserWarning, match="renormalised"):
        sq.main([*argv, "--out", str(out)])
    text = capsys.readouterr().out
    assert "40 runs over 3 domains; target the mean of acc_x, acc_y (maximised)" in text
    assert "| GP-UCB |" in text and "| random |" in text and "random search's exact median" in text
    assert "÷ regression, after the first batch [90% interval]" in text
    assert re.search(r"\| regression \(RegMix\) \| 1\.00 \[1\.00, 1\.00\] \|", text)
    assert "NOT met" not in text and "target <=" not in text
    assert (out / "search_quality_regret.png").is_file()


def test_every_table_row_has_its_headers_cells(
    sq: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the regression there are no ratios to it, and regret counts past the budget are no columns."""
    argv = [str(one_file_swarm(tmp_path)), "--weight-prefix", "w_", "--target", "acc_x", "--goal", "max"]
    argv += ["--seeds", "0-1", "--methods", "random", "--budget", "12", "--regret-at", "16,32"]
    with pytest.warns(UserWarning, match="renormalised"):
        sq.main(argv)
    tables = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert "regret @" not in tables[0] and "÷ regression" not in tables[3]
    assert [line.count("|") for line in tables] == [6, 6, 6, 4, 4, 4]


def test_a_budget_within_the_first_batch_is_refused(sq: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        sq.parse_args(["--batch", "8", "--budget", "8"])
    assert "--budget (8) must exceed --batch (8)" in capsys.readouterr().err


def test_the_command_reports_bad_files_without_a_traceback(sq: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"error: .*runs.csv: no column 'acc_z'"):
        sq.main([str(one_file_swarm(tmp_path)), "--weight-prefix", "w_", "--target", "acc_z"])


def test_the_command_refuses_a_batch_as_large_as_the_pool(sq: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"--batch 24 must be below the number of runs \(24\)"):
        sq.main([str(one_file_swarm(tmp_path)), "--weight-prefix", "w_", "--target", "acc_x", "--batch", "24"])


def test_listed_names_may_have_spaces_after_the_commas(sq: ModuleType) -> None:
    assert sq.listed("w_a, w_b,w_c") == ["w_a", "w_b", "w_c"]
    assert sq.parse_args(["--methods", "GP-UCB, random"]).methods == "GP-UCB, random"


def test_the_command_refuses_an_empty_seed_range(sq: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        sq.parse_args(["--seeds", "5-2"])
    assert "argument --seeds: '5-2' is an empty range" in capsys.readouterr().err


def test_help_states_the_layout_and_the_defaults(sq: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        sq.main(["--help"])
    text = capsys.readouterr().out
    for phrase in ("two CSVs", "default `index`", "metric/the_pile_pile_cc_val_loss", "minimised unless --goal max"):
        assert phrase in text


def test_the_shipped_regmix_swarm_loads_without_shared_data(sq: ModuleType) -> None:
    pool = sq.load(sq.parse_args([]))
    assert pool.weights.shape == (768, 17)
    assert int(np.sum(pool.scores <= sq.Setup().hit_level(pool))) == 10


def test_regression_orders_its_batch_by_its_own_predictions() -> None:
    x, pool = random_batch(24, 4, seed=1), random_batch(60, 4, seed=2)
    y = -np.sum((x - [0.4, 0.3, 0.2, 0.1]) ** 2, axis=1)
    batch = regression_pool_batch(x, y, pool, 8, seed=0)
    # 60 candidates keep RegMix's share of 128 in 100,000: k = 1, the top prediction itself leads the batch.
    np.testing.assert_array_equal(batch, regression_pool_batch(x, y, pool, 8, seed=0, top_fraction=0.0))
    # With k = 30 the averaged pick joins the 7 best predictions, and the batch keeps the regressor's order
    # (the same model as above: same data and seed) instead of leading with the averaged pick.
    averaged = regression_pool_batch(x, y, pool, 8, seed=0, top_fraction=0.5)
    by_prediction = regression_pool_batch(x, y, pool, 60, seed=0, top_fraction=0.0)
    assert set(batch[:7]) <= set(averaged)
    np.testing.assert_array_equal(averaged, by_prediction[np.isin(by_prediction, averaged)])
