"""Search spaces: where the proposers draw mixtures from, in the coordinates the GP sees.

A space turns "a Dirichlet draw around this point" into feasible points of its own coordinates; the
proposers (gp_ucb, the random baseline) only ever call `sample`, `uniform`, `feasible` and `check`, so a
new space (cells with caps, a product of simplices) needs no change to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mixtura_jobs.simplex import apply_caps, dirichlet_design, uniform_weights

# RegMix draws the Dirichlet strength log-uniformly from this range (shared/methods/mixatlas.md, step 5).
DEFAULT_STRENGTHS = (0.1, 5.0)


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
        if x.shape[1] != self.d:
            raise ValueError(f"expected {self.d} weights per row, got {x.shape[1]}")
        _check_rows_on_simplex(x, "X")
