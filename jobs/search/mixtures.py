"""A search's mixtures: points of its space (domains, factorized or full) and the records trials keep.

A record (a trial's or the final `mixture.json`) always has `weights`, the domain marginals; in a cell
space also `cells` (cell id -> weight), which is what training samples by, and in the factorized space
`factors` (concept and task weights), the coordinates the proposers saw. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from mixtura_jobs.search import cell_weights
from mixtura_jobs.search.cell_weights import Cells
from mixtura_jobs.search.spaces import FactorizedSpace, MixtureSpace, SimplexSpace

# The API's `spec.search.space` values.
SpaceKind = Literal["domains", "factorized", "full"]


def _named(names: tuple[str, ...] | list[str], values: np.ndarray) -> dict[str, float]:
    return {name: float(v) for name, v in zip(names, values, strict=True)}


def _vector(names: tuple[str, ...] | list[str], weights: dict[str, float]) -> np.ndarray:
    return np.array([weights.get(name, 0.0) for name in names], dtype=np.float64)


@dataclass(frozen=True)
class NamedSpace:
    """The space of one search, with the names of its coordinates.

    `natural` is the size-proportional mixture in the space's own terms: domain weights for `domains`,
    cell weights otherwise (then `cells` is required).
    """

    kind: SpaceKind
    domains: tuple[str, ...]
    natural: np.ndarray
    cells: Cells | None = None

    def __post_init__(self) -> None:
        if (self.kind == "domains") != (self.cells is None):
            raise ValueError(f"space {self.kind}: cells are needed exactly for the cell spaces")

    @cached_property
    def geometry(self) -> MixtureSpace:
        if self.kind == "factorized":
            return FactorizedSpace(self.cells)
        if self.kind == "full":
            return SimplexSpace(len(self.cells.ids), self.cells.caps)
        return SimplexSpace(len(self.domains))

    @property
    def coordinates(self) -> list[str]:
        """A name for each coordinate of the space's points."""
        if self.kind == "domains":
            return list(self.domains)
        if self.kind == "factorized":
            return [f"concept {c}" for c in self.cells.concepts] + [f"task {t}" for t in self.cells.tasks]
        return list(self.cells.ids)

    @property
    def blocks(self) -> list[np.ndarray]:
        """The groups of coordinates that each sum to 1: the concept and the task weights when factorized."""
        if self.kind == "factorized":
            k = len(self.cells.concepts)
            return [np.arange(k), np.arange(k, k + len(self.cells.tasks))]
        return [np.arange(self.geometry.dim)]

    def center(self, domain_weights: np.ndarray | None = None) -> np.ndarray:
        """The point searches centre on: `domain_weights` (e.g. MaD-Mix's) split over the cells by their
        samples, or the natural mixture; in the factorized space, the factors with its concept and task
        marginals."""
        if self.cells is None:
            return self.natural if domain_weights is None else np.asarray(domain_weights, dtype=np.float64)
        w = self.natural if domain_weights is None else cell_weights.domains_to_cells(domain_weights, self.cells)
        return np.concatenate(cell_weights.fit_factors(w, self.cells)) if self.kind == "factorized" else w

    def record(self, point: np.ndarray) -> dict:
        """The mixture record of a point of the space."""
        point = np.asarray(point, dtype=np.float64)
        if self.cells is None:
            return {"weights": _named(self.domains, point)}
        if self.kind == "factorized":
            k = len(self.cells.concepts)
            a, b = point[:k], point[k:]
            w = cell_weights.factorized_to_cells(a, b, self.cells)
            factors = {"concepts": _named(self.cells.concepts, a), "tasks": _named(self.cells.tasks, b)}
        else:
            w, factors = point, None
        record = {
            "weights": _named(self.domains, cell_weights.cells_to_domains(w, self.cells)),
            "cells": _named(self.cells.ids, w),
        }
        return record if factors is None else {**record, "factors": factors}

    def point(self, record: dict) -> np.ndarray:
        """The point of the space a record was made from."""
        if self.cells is None:
            return _vector(self.domains, record["weights"])
        if self.kind == "factorized":
            factors = record["factors"]
            return np.concatenate(
                [_vector(self.cells.concepts, factors["concepts"]), _vector(self.cells.tasks, factors["tasks"])]
            )
        return _vector(self.cells.ids, record["cells"])
