"""Search spaces: where the proposers draw mixtures from, in the coordinates the GP sees.

A space turns "a Dirichlet draw around this point" into feasible points of its own coordinates; the
proposers (gp_ucb, the random baseline) only ever call `sample`, `uniform`, `feasible` and `check`, so a
new space (cells with caps, a product of simplices) needs no change to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mixtura_jobs.search.cell_weights import Cells, factor_products
from mixtura_jobs.search.simplex import apply_caps, dirichlet_design, uniform_weights

# RegMix draws the Dirichlet strength log-uniformly from this range (shared/methods/mixatlas.md, step 5).
DEFAULT_STRENGTHS = (0.1, 5.0)
# Cell weights may exceed their caps by this much (rounding), no more.
CAP_TOLERANCE = 1e-12
# FactorizedSpace.sample: rounds of Dirichlet draws before the missing points are mapped by `feasible`; the
# most draws one round makes for each point still missing (when few draws respect the caps), and in all
# (memory: a round holds its draws and their cell weights).
MAX_DRAW_ROUNDS = 8
MAX_OVERSAMPLING = 64
MAX_ROUND_DRAWS = 200_000


class MixtureSpace(Protocol):
    @property
    def dim(self) -> int:
        """Number of coordinates of a point (the GP's input dimension)."""

    def uniform(self) -> np.ndarray:
        """The space's most even point (the centre of uniform sampling)."""

    def feasible(self, point: np.ndarray) -> np.ndarray:
        """The feasible point nearest in spirit to `point` (e.g. with caps applied)."""

    def sample(
        self, n: int, around: np.ndarray, rng: np.random.Generator, strengths: tuple[float, float] = DEFAULT_STRENGTHS
    ) -> np.ndarray:
        """n feasible points drawn RegMix-style around `around` (Dirichlet, strength log-uniform in `strengths`)."""

    def check(self, x: np.ndarray) -> None:
        """Raise ValueError unless every row of x is a point of the space."""


def _check_rows_on_simplex(x: np.ndarray, what: str) -> None:
    if np.any(x < -1e-12) or np.any(np.abs(x.sum(axis=1) - 1.0) > 1e-6):
        raise ValueError(f"every row of {what} must be a mixture: non-negative weights summing to 1")


def _check_width(x: np.ndarray, d: int) -> None:
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"expected {d} weights per row, got shape {x.shape}")


@dataclass(frozen=True)
class SimplexSpace:
    """Plain mixture weights over d items (domains, or cells in the `full` space), optionally capped."""

    d: int
    caps: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return self.d

    def uniform(self) -> np.ndarray:
        return self.feasible(uniform_weights(self.d))

    def feasible(self, point: np.ndarray) -> np.ndarray:
        return point if self.caps is None else apply_caps(point, self.caps)

    def sample(
        self, n: int, around: np.ndarray, rng: np.random.Generator, strengths: tuple[float, float] = DEFAULT_STRENGTHS
    ) -> np.ndarray:
        return self.feasible(dirichlet_design(n, around, rng, strength_range=strengths))

    def check(self, x: np.ndarray) -> None:
        _check_width(x, self.d)
        _check_rows_on_simplex(x, "X")


def _fill_from(b: np.ndarray, cells: Cells, iterations: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Block coordinate ascent on sum a_i b_j subject to a_i b_j <= cap_ij, from task weights b: the largest
    a for the current b, then the largest b for that a, until the sum stops growing."""
    fill = 0.0
    for _ in range(iterations):
        a = np.full(len(cells.concepts), np.inf)
        np.minimum.at(a, cells.concept_of, cells.caps / b[cells.task_of])
        b = np.full(len(cells.tasks), np.inf)
        np.minimum.at(b, cells.task_of, cells.caps / a[cells.concept_of])
        previous, fill = fill, float(factor_products(a, b, cells).sum())
        if fill <= previous * (1 + 1e-12):
            break
    return a, b, fill


def _entropy(w: np.ndarray) -> float:
    w = w[w > 0]
    return float(-(w * np.log(w)).sum())


def roomy_factors(cells: Cells, starts: int = 64, iterations: int = 200) -> tuple[np.ndarray, np.ndarray, float]:
    """Concept and task weights (a, b) whose cell weights respect the caps with room to spare, and `fill`.

    The products a_i b_j are pushed up to the caps by block coordinate ascent, which stops at a local optimum
    (each a_i and b_j held by one cap); normalised, the cell weights are a_i b_j / fill <= cap_ij / fill, so
    they respect the caps when fill >= 1. It runs from equal task weights and from `starts` - 1 random ones
    spread over several orders of magnitude (fixed seed); of the optima that respect the caps, the one whose
    cell weights are the most even (highest entropy) is kept, else the one with the largest fill.
    """
    rng = np.random.default_rng(0)
    t = len(cells.tasks)
    candidates = [np.ones(t), *np.exp(rng.uniform(-8.0, 0.0, size=(starts - 1, t)))]
    optima = [_fill_from(b, cells, iterations) for b in candidates]

    def preference(optimum: tuple[np.ndarray, np.ndarray, float]) -> tuple[bool, float]:
        a, b, fill = optimum
        products = factor_products(a, b, cells)
        return fill >= 1.0, _entropy(products / products.sum()) if fill >= 1.0 else fill

    a, b, fill = max(optima, key=preference)
    return a / a.sum(), b / b.sum(), fill


@dataclass(frozen=True)
class FactorizedSpace:
    """MixAtlas's factorized space: concept weights a and task weights b, cell weight a_i * b_j renormalised
    over the non-empty cells. A point is concat(a, b) (two simplices); it is feasible when its cell weights
    respect the cells' caps, a set that is not convex, so draws that break a cap are redrawn."""

    cells: Cells
    anchor: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        a, b, fill = roomy_factors(self.cells)
        if fill < 1.0:
            raise ValueError(
                "spec.search.maxRepetition: found no concept weights x task weights that keep every cell within "
                f"its cap (at best {1 / fill:.2f}x over); raise maxRepetition or use space full"
            )
        # Below every cap by a factor `fill`: the point `feasible` falls back towards.
        object.__setattr__(self, "anchor", np.concatenate([a, b]))

    @property
    def k(self) -> int:
        return len(self.cells.concepts)

    @property
    def dim(self) -> int:
        return self.k + len(self.cells.tasks)

    def cell_weights(self, x: np.ndarray) -> np.ndarray:
        """The cell weights of points (rows or a vector)."""
        products = factor_products(x[..., : self.k], x[..., self.k :], self.cells)
        return products / products.sum(axis=-1, keepdims=True)

    def _within_caps(self, x: np.ndarray) -> np.ndarray:
        products = factor_products(x[..., : self.k], x[..., self.k :], self.cells)
        total = products.sum(axis=-1, keepdims=True)
        return (total[..., 0] > 0) & np.all(products <= (self.cells.caps + CAP_TOLERANCE) * total, axis=-1)

    def uniform(self) -> np.ndarray:
        return self.feasible(np.concatenate([uniform_weights(self.k), uniform_weights(self.dim - self.k)]))

    def feasible(self, point: np.ndarray) -> np.ndarray:
        """Points (rows or a vector) moved towards the anchor, on both simplices at once, just far enough
        (bisection, 50 halvings) to respect the caps; feasible points are returned unchanged."""
        point = np.asarray(point, dtype=np.float64)
        rows = np.atleast_2d(point)
        low, high = np.zeros(len(rows)), np.ones(len(rows))
        high[self._within_caps(rows)] = 0.0
        for _ in range(50):
            middle = (low + high) / 2
            ok = self._within_caps((1 - middle)[:, None] * rows + middle[:, None] * self.anchor)
            high, low = np.where(ok, middle, high), np.where(ok, low, middle)
        out = (1 - high)[:, None] * rows + high[:, None] * self.anchor
        return out.reshape(point.shape)

    def sample(
        self, n: int, around: np.ndarray, rng: np.random.Generator, strengths: tuple[float, float] = DEFAULT_STRENGTHS
    ) -> np.ndarray:
        """n points: a and b drawn as `dirichlet_design` does around around[:k] and around[k:], keeping the
        draws that respect the caps. After MAX_DRAW_ROUNDS rounds (each sized by the share of draws kept so
        far), the points still missing are rejected draws mapped by `feasible`: closer to the anchor than a
        draw would be, so a space whose caps refuse most draws is explored less widely."""
        around = np.asarray(around, dtype=np.float64)
        kept: list[np.ndarray] = []
        rejected = np.empty((0, self.dim))
        found = drawn = 0
        for _ in range(MAX_DRAW_ROUNDS):
            if found >= n:
                break
            share = max((found + 1) / (drawn + 1), 1 / MAX_OVERSAMPLING)
            m = min(math.ceil((n - found) / share), MAX_ROUND_DRAWS)
            x = np.hstack(
                [
                    dirichlet_design(m, around[: self.k], rng, strength_range=strengths),
                    dirichlet_design(m, around[self.k :], rng, strength_range=strengths),
                ]
            )
            ok = self._within_caps(x)
            kept.append(x[ok])
            rejected = np.vstack([rejected, x[~ok][: n - found]])[:n]
            found, drawn = found + int(ok.sum()), drawn + m
        points = np.vstack([*kept, self.feasible(rejected[: max(0, n - found)])])
        return points[:n]

    def check(self, x: np.ndarray) -> None:
        _check_width(x, self.dim)
        _check_rows_on_simplex(x[:, : self.k], "the concept weights")
        _check_rows_on_simplex(x[:, self.k :], "the task weights")
        if not np.all(self._within_caps(x)):
            raise ValueError("every row's cell weights must respect the cells' caps (spec.search.maxRepetition)")
