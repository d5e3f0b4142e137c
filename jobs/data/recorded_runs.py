"""Recorded proxy runs from CSV files: one mixture and one score per run, as the search-quality bench and
spec.search.priorRuns need.

A run's weights and scores sit in one CSV, or in two joined on an ID column (RegMix's layout). The weight
columns are named by prefix or list, the score is one column or the mean of several; other columns are
ignored. Every error names the file, and the line and column where there is one.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from mixtura_operator.wording import counted_subject

# Rows whose weights sum further than this from 1 are reported when renormalised (RegMix rounds to 3 decimals).
SUM_TOLERANCE = 0.02
# How many of the runs only one file holds a warning names.
MISSING_LISTED = 5
# Value separators a CSV may use (a comma first: a header with none of them is one column).
DELIMITERS = (",", ";", "\t")
# Which columns are weights when none are named, and what to do when they are not all weights.
TAKEN = "every column but the ID and target"
NAME_THEM = "name the weight columns (--weight-prefix or --weight-columns)"
# Run IDs that are integers of up to this many digits are joined as integers (longer ones, hashes, as text).
INTEGER_ID_DIGITS = 19
# How a score cell says a run has no score (it failed or diverged before it was evaluated), lower-cased.
MISSING = ("", "nan")


@dataclass(frozen=True)
class Pool:
    """Recorded runs: one mixture (a row on the simplex) and one score per run, lower is better."""

    weights: np.ndarray  # (m, d)
    scores: np.ndarray  # (m,)
    domains: tuple[str, ...]
    # (m, M): the score's terms where it is the mean of M > 1 target columns (each column / M, signed as it is).
    parts: np.ndarray | None = None


@dataclass(frozen=True)
class Layout:
    """Where a run's mixture and score are in the files."""

    target: tuple[str, ...]  # score columns; the score is their mean
    id_column: str = "index"
    weight_prefix: str | None = None
    weight_columns: tuple[str, ...] | None = None  # wins over weight_prefix
    maximise: bool = False


@dataclass(frozen=True)
class _Table:
    path: Path
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (line number, values)

    def column(self, name: str) -> int:
        if name not in self.header:
            raise ValueError(f"{self.path}: no column {name!r}; the columns are {', '.join(self.header)}")
        # Which of two same-named columns holds the run's value is a guess: one would be read, the other lost.
        places = [str(i + 1) for i, other in enumerate(self.header) if other == name]
        if len(places) > 1:
            raise ValueError(
                f"{self.path}: column {name!r} appears {len(places)} times (columns {', '.join(places)}); "
                "rename all but one"
            )
        return self.header.index(name)

    def blank(self, name: str, keys: Sequence[int]) -> np.ndarray:
        """Which rows at `keys` hold no value in the column: an empty cell, or NaN as pandas writes a missing one."""
        index = self.column(name)
        return np.array([self.rows[k][1][index].strip().lower() in MISSING for k in keys], dtype=bool)

    def numbers(self, name: str, keys: Sequence[int] | None = None) -> np.ndarray:
        """The column as floats, for the rows at `keys` (row positions; default all)."""
        index = self.column(name)
        rows = self.rows if keys is None else [self.rows[k] for k in keys]
        values = []
        for line, row in rows:
            try:
                value = float(row[index])
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise ValueError(f"{self.path}, line {line}, column {name!r}: {row[index]!r} is not a finite number")
            values.append(value)
        return np.array(values)


def _read(path: Path) -> _Table:
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"{path}: cannot read it ({error.strerror})") from None
    return _parse(path, text)


def _delimiter(text: str) -> str:
    """The header line's delimiter among DELIMITERS (the one it holds most of; a comma when it holds none)."""
    first = text.split("\n", 1)[0]
    return max(DELIMITERS, key=first.count)


def _parse(path: Path, text: str) -> _Table:
    """A CSV as spreadsheets and pandas write them too: a byte-order mark, `;` or tabs between values, spaces
    around header names."""
    text = text.removeprefix("\ufeff")
    lines = list(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)))
    if not lines:
        raise ValueError(f"{path}: the file is empty; it needs a header line")
    header = [name.strip() for name in lines[0]]
    rows = []
    for number, row in enumerate(lines[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}, line {number}: {len(row)} values for {len(header)} header names")
        rows.append((number, row))
    return _Table(path, header, rows)


def _weight_names(table: _Table, layout: Layout, other: set[str]) -> list[str]:
    """The weight columns: those named, those with the prefix, or every named column but `other` (the ID, and
    the target where it is in the same file), which is never a weight."""
    if layout.weight_columns is not None:
        for position, name in enumerate(layout.weight_columns):
            table.column(name)
            if name in layout.weight_columns[:position]:
                raise ValueError(f"{table.path}: the weight column {name!r} is named twice")
            if name in other:
                raise ValueError(f"{table.path}: column {name!r} is the run ID or the target, not a weight")
        return list(layout.weight_columns)
    if layout.weight_prefix is not None:
        names = [name for name in table.header if name.startswith(layout.weight_prefix) and name not in other]
        if not names:
            raise ValueError(f"{table.path}: no column starts with {layout.weight_prefix!r}")
        return names
    # A column without a name is what a trailing delimiter on every line makes (some spreadsheet exports).
    names = [name for name in table.header if name not in other and name]
    if len(names) < 2:
        raise ValueError(f"{table.path}: {NAME_THEM}")
    return names


def _run_id(text: str) -> str:
    """A run ID as both files are joined on it: an integer however it is written (`7`, `007`, `7.0`, as pandas
    writes an integer column that has a missing value), anything else as it stands."""
    text = text.strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    integer = value.is_finite() and value.adjusted() < INTEGER_ID_DIGITS and value == value.to_integral_value()
    return str(int(value)) if integer else text


def _keys(table: _Table, id_column: str) -> dict[str, int]:
    index = table.column(id_column)
    keys: dict[str, int] = {}
    for position, (line, row) in enumerate(table.rows):
        key = _run_id(row[index])
        if key in keys:
            raise ValueError(
                f"{table.path}, line {line}, column {id_column!r}: {key!r} is repeated (first at line "
                f"{table.rows[keys[key]][0]}); give one row per run (of a run evaluated at several steps, the last)"
            )
        keys[key] = position
    return keys


def _id_order(key: str) -> tuple[int, str]:
    """Sort key of run IDs: numeric IDs numerically (shorter first), the rest as text."""
    return len(key), key


def _positions(mixtures: _Table, scores: _Table, id_column: str) -> tuple[list[int], list[int]]:
    """Row positions of the runs both files hold, in ID order (numeric IDs numerically); a warning names the
    runs only one file holds (a run that failed before it was scored, a file cut short), which are left out."""
    mixture_keys, score_keys = _keys(mixtures, id_column), _keys(scores, id_column)
    shared = sorted(mixture_keys.keys() & score_keys.keys(), key=_id_order)
    if len(shared) < 2:
        raise ValueError(f"{mixtures.path} and {scores.path} share fewer than 2 values of {id_column!r}")
    for table, other, keys in ((mixtures, scores, mixture_keys), (scores, mixtures, score_keys)):
        alone = sorted(keys.keys() - set(shared), key=_id_order)
        if alone:
            runs_have = counted_subject(len(alone), "run", "has", "have")
            warnings.warn(
                f"{table.path}: {runs_have} no row in {other.path} ({id_column!r}: {_listed(alone)}); "
                "they are left out",
                stacklevel=2,
            )
    return [mixture_keys[k] for k in shared], [score_keys[k] for k in shared]


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names[:MISSING_LISTED]) + (", ..." if len(names) > MISSING_LISTED else "")


def _scored(scores: _Table, rows: list[int], target: tuple[str, ...]) -> np.ndarray:
    """Which of the runs at `rows` have a value in every target column; a warning names the lines of the others
    (a run that failed before it was scored), which are left out, as a run missing from the scores file is."""
    unscored = np.any([scores.blank(name, rows) for name in target], axis=0)
    if unscored.any():
        lines = [str(scores.rows[rows[i]][0]) for i in np.flatnonzero(unscored)]
        runs_have = counted_subject(len(lines), "run", "has", "have")
        warnings.warn(
            f"{scores.path}: {runs_have} no value in {', '.join(map(repr, target))} (empty or NaN; "
            f"lines {_listed(lines)}); they are left out",
            stacklevel=2,
        )
    return ~unscored


def _normalised(weights: np.ndarray, path: Path, names: list[str], named: bool, lines: list[int]) -> np.ndarray:
    """The rows (from the file's `lines`) scaled to sum to 1. Columns taken as weights because none were `named`
    must sum to one total in every row (1, or 100 for percentages): where the totals differ, a column that is not
    a weight (a step count, a seed) was most likely taken, and renormalising would give every run a wrong mixture."""
    if np.any(weights < 0):
        row, col = np.argwhere(weights < 0)[0]
        raise ValueError(f"{path}, line {lines[row]}, column {names[col]!r}: weights must be non-negative")
    sums = weights.sum(axis=1)
    if np.any(sums <= 0):
        raise ValueError(f"{path}, line {lines[int(np.argmin(sums))]}: the run has no positive weight")
    if not named and sums.max() > (1.0 + SUM_TOLERANCE) * sums.min():
        raise ValueError(
            f"{path}: the columns taken as weights ({TAKEN}: {', '.join(names)}) sum to "
            f"{sums.min():.6g} on line {lines[int(np.argmin(sums))]} and to {sums.max():.6g} on line "
            f"{lines[int(np.argmax(sums))]}; {NAME_THEM}"
        )
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if np.any(off):
        warnings.warn(
            f"{path}: the weights of {int(off.sum())} of {len(sums)} runs do not sum to 1 (from {sums.min():.3g} "
            f"to {sums.max():.3g}); every run is renormalised",
            stacklevel=2,
        )
    return weights / sums[:, None]


def load_pool(paths: Sequence[Path], layout: Layout) -> Pool:
    """The runs of one CSV (weights and score columns), or of two (mixtures, scores) joined on the ID column
    (a run missing from either, or with an empty or NaN score, is left out, with a warning). The score is the
    mean of the target columns, negated when maximising, so that lower is better. Weights are renormalised to
    sum to 1, with a warning when a row is off by more than SUM_TOLERANCE."""
    if len(paths) not in (1, 2):
        raise ValueError(f"give one CSV or two (mixtures, scores), got {len(paths)}")
    return _pool(_read(paths[0]), _read(paths[-1]), len(paths) == 2, layout)


def pool_from_text(name: str, text: str, layout: Layout) -> Pool:
    """The runs of one CSV's text (weights and score columns); `name` (its URI) names it in errors."""
    table = _parse(Path(name), text)
    return _pool(table, table, False, layout)


def _pool(mixtures: _Table, scores: _Table, joined: bool, layout: Layout) -> Pool:
    if joined:
        mixture_rows, score_rows = _positions(mixtures, scores, layout.id_column)
        names = _weight_names(mixtures, layout, {layout.id_column})
    else:
        mixture_rows = score_rows = list(range(len(mixtures.rows)))
        names = _weight_names(mixtures, layout, {layout.id_column, *layout.target})
    scored = _scored(scores, score_rows, layout.target)
    mixture_rows = [row for row, keep in zip(mixture_rows, scored, strict=True) if keep]
    score_rows = [row for row, keep in zip(score_rows, scored, strict=True) if keep]
    if len(score_rows) < 2:
        raise ValueError(f"{scores.path}: fewer than 2 runs with a score")
    named = layout.weight_columns is not None or layout.weight_prefix is not None
    try:
        weights = np.column_stack([mixtures.numbers(name, mixture_rows) for name in names])
    except ValueError as error:
        if named:
            raise
        # A run's name or notes beside the weights: say how to leave them out.
        raise ValueError(f"{error} ({TAKEN} is taken as a weight; {NAME_THEM})") from None
    columns = np.column_stack([scores.numbers(name, score_rows) for name in layout.target]) / len(layout.target)
    parts = -columns if layout.maximise else columns
    split = parts if parts.shape[1] > 1 else None
    lines = [mixtures.rows[row][0] for row in mixture_rows]
    return Pool(_normalised(weights, mixtures.path, names, named, lines), parts.sum(axis=1), tuple(names), split)


def join_pools(pools: Sequence[Pool]) -> Pool:
    """One pool of every run of `pools` (recorded runs of the same domains, e.g. two batches of one study)."""
    domains = pools[0].domains
    for pool in pools[1:]:
        if pool.domains != domains:
            raise ValueError(f"the run files name different domains: {domains} and {pool.domains}")
    parts = None if any(p.parts is None for p in pools) else np.vstack([p.parts for p in pools])
    return Pool(np.vstack([p.weights for p in pools]), np.concatenate([p.scores for p in pools]), domains, parts)
