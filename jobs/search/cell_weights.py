"""Cells: image concept x task type (shared/methods/mixatlas.md, step 3), their caps, and the maps between
cell weights, domain weights and factorized (concept, task) weights. Pure numpy, no I/O.

A domain's samples fall into the cells of its task type, split by their image concept; a domain without
the image modality (text, video) puts all its samples in the concept-free cell `none/<task>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NO_CONCEPT = "none"
# Tasks in the API's order (DomainSet `taskType`; a test keeps the two equal), so that a cell's position does
# not depend on how the domains are listed.
TASK_ORDER: tuple[str, ...] = ("captioning", "ocr", "grounding", "detection", "vqa", "text")


def concept_names(k: int) -> list[str]:
    """The names of k concepts, by centroid index."""
    return [f"c{i}" for i in range(k)]


def cell_id(concept: str, task: str) -> str:
    return f"{concept}/{task}"


def sample_cells(task: str, concept_labels: np.ndarray | None, n: int) -> np.ndarray:
    """The cell id of each of a domain's n samples: its concept (centroid index; none without images) and
    the domain's task."""
    if concept_labels is None:
        return np.full(n, cell_id(NO_CONCEPT, task))
    if len(concept_labels) != n:
        raise ValueError(f"{len(concept_labels)} concept labels for {n} samples: the cells step saw other data")
    names = concept_names(int(concept_labels.max()) + 1 if n else 0)
    return np.array([cell_id(names[j], task) for j in concept_labels], dtype=str)


@dataclass(frozen=True)
class DomainConcepts:
    """One domain's samples by concept: `concept_counts` over the samples that were assigned (None for a
    domain without images), `size` the domain's full sample count the counts are scaled to."""

    name: str
    task: str
    size: float
    concept_counts: np.ndarray | None


@dataclass(frozen=True)
class Cells:
    """The non-empty cells, in (concept, task) order."""

    concepts: tuple[str, ...]
    tasks: tuple[str, ...]
    domains: tuple[str, ...]
    concept_of: np.ndarray  # (n_cells,) index into concepts
    task_of: np.ndarray  # (n_cells,) index into tasks
    counts: np.ndarray  # (n_domains, n_cells) samples of each domain in each cell
    caps: np.ndarray  # (n_cells,) the most weight each cell may get

    @property
    def ids(self) -> list[str]:
        return [cell_id(self.concepts[c], self.tasks[t]) for c, t in zip(self.concept_of, self.task_of, strict=True)]

    @property
    def sizes(self) -> np.ndarray:
        return self.counts.sum(axis=0)

    @property
    def natural(self) -> np.ndarray:
        """The size-proportional cell weights."""
        return self.sizes / self.sizes.sum()


def cell_caps(sizes: np.ndarray, max_repetition: float, samples_drawn: int) -> np.ndarray:
    """min(1, maxRepetition * n_cell / samples_drawn): a cell's weight may not make a training run draw
    more than `max_repetition` epochs of it. Refuses caps that leave no mixture (sum below 1)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    caps = np.minimum(1.0, max_repetition * sizes / samples_drawn)
    if caps.sum() < 1.0 - 1e-12:
        # No cell is clipped at 1 at the threshold, so the sum is linear in maxRepetition there.
        needed = samples_drawn / sizes.sum()
        raise ValueError(
            f"spec.search.maxRepetition: {max_repetition:g} epochs of the {sizes.sum():.0f} samples cover only "
            f"{caps.sum():.0%} of the {samples_drawn} samples a training run draws; "
            f"set maxRepetition to at least {needed:.2f}"
        )
    return caps


def build_cells(domains: Sequence[DomainConcepts], k: int, *, max_repetition: float, samples_drawn: int) -> Cells:
    """The non-empty cells of `domains` over k image concepts, with per-domain counts scaled to each domain's
    full size (when only some of its samples were assigned) and caps from `max_repetition`."""
    names = [*concept_names(k), NO_CONCEPT]
    tasks = [t for t in TASK_ORDER if any(d.task == t for d in domains)]
    grid = np.zeros((len(domains), len(names), len(tasks)))
    for i, domain in enumerate(domains):
        t = tasks.index(domain.task)
        if domain.concept_counts is None:
            grid[i, k, t] = domain.size
        elif domain.concept_counts.sum() > 0:
            grid[i, :k, t] = domain.concept_counts * domain.size / domain.concept_counts.sum()
    # Concepts and tasks without samples (centroids reused from another corpus, no concept-free domain,
    # empty domains) are left out, so that every coordinate of the factorized space weighs some cell.
    concepts_used, tasks_used = grid.sum(axis=(0, 2)) > 0, grid.sum(axis=(0, 1)) > 0
    grid = grid[:, concepts_used][:, :, tasks_used]
    concept_of, task_of = np.nonzero(grid.sum(axis=0) > 0)
    counts = grid[:, concept_of, task_of]
    return Cells(
        concepts=tuple(np.array(names)[concepts_used].tolist()),
        tasks=tuple(np.array(tasks)[tasks_used].tolist()),
        domains=tuple(d.name for d in domains),
        concept_of=concept_of,
        task_of=task_of,
        counts=counts,
        caps=cell_caps(counts.sum(axis=0), max_repetition, samples_drawn),
    )


def factor_products(a: np.ndarray, b: np.ndarray, cells: Cells) -> np.ndarray:
    """a_i * b_j on each non-empty cell (rows or a vector), not renormalised."""
    return np.asarray(a)[..., cells.concept_of] * np.asarray(b)[..., cells.task_of]


def factorized_to_cells(a: np.ndarray, b: np.ndarray, cells: Cells) -> np.ndarray:
    """Cell weights a_i * b_j over the non-empty cells, renormalised (rows or a vector)."""
    products = factor_products(a, b, cells)
    total = products.sum(axis=-1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("the concept and task weights put no weight on any non-empty cell")
    return products / total


def cells_to_domains(w: np.ndarray, cells: Cells) -> np.ndarray:
    """Domain marginals: each cell's weight goes to its domains by their share of its samples."""
    share = cells.counts / cells.counts.sum(axis=0)
    return np.asarray(w) @ share.T


def domains_to_cells(v: np.ndarray, cells: Cells) -> np.ndarray:
    """Cell weights from domain weights: each domain's weight split over its cells by its samples in them
    (a domain without samples has no cell, so the rest is renormalised)."""
    totals = cells.counts.sum(axis=1, keepdims=True)
    w = np.asarray(v) @ (cells.counts / np.where(totals > 0, totals, 1.0))
    return w / w.sum(axis=-1, keepdims=True)


def cells_to_factors(w: np.ndarray, cells: Cells) -> tuple[np.ndarray, np.ndarray]:
    """The concept and task marginals of cell weights (a vector)."""
    w = np.asarray(w, dtype=np.float64)
    return (
        np.bincount(cells.concept_of, w, minlength=len(cells.concepts)),
        np.bincount(cells.task_of, w, minlength=len(cells.tasks)),
    )


def fit_factors(w: np.ndarray, cells: Cells, iterations: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Concept and task weights (a, b) whose cell weights have the concept and task marginals of `w`.

    With every cell non-empty these are the marginals themselves; with empty cells the product of the
    marginals would shift weight (towards the concepts that meet more tasks), so iterative proportional
    fitting scales a and b in turn until the marginals match (the quasi-independence fit).
    """
    target_a, target_b = cells_to_factors(w, cells)
    a, b = target_a.copy(), target_b.copy()
    for _ in range(iterations):
        a = a * _ratio(target_a, cells_to_factors(factorized_to_cells(a, b, cells), cells)[0])
        b = b * _ratio(target_b, cells_to_factors(factorized_to_cells(a, b, cells), cells)[1])
        a, b = a / a.sum(), b / b.sum()
        fitted_a, fitted_b = cells_to_factors(factorized_to_cells(a, b, cells), cells)
        if max(np.abs(fitted_a - target_a).max(), np.abs(fitted_b - target_b).max()) < 1e-10:
            break
    return a, b


def _ratio(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    return np.divide(target, current, out=np.zeros_like(target), where=current > 0)


def to_record(cells: Cells) -> dict:
    """The JSON form (cells.json's core): names, and per cell its samples by domain, cap and natural share."""
    return {
        "concepts": list(cells.concepts),
        "tasks": list(cells.tasks),
        "domains": list(cells.domains),
        "cells": [
            {
                "id": cell_id,
                "concept": cells.concepts[cells.concept_of[j]],
                "task": cells.tasks[cells.task_of[j]],
                "samples": float(cells.sizes[j]),
                "cap": float(cells.caps[j]),
                "natural": float(cells.natural[j]),
                "domains": {d: float(n) for d, n in zip(cells.domains, cells.counts[:, j], strict=True) if n > 0},
            }
            for j, cell_id in enumerate(cells.ids)
        ],
    }


def from_record(record: dict) -> Cells:
    concepts, tasks, domains = record["concepts"], record["tasks"], record["domains"]
    entries = record["cells"]
    return Cells(
        concepts=tuple(concepts),
        tasks=tuple(tasks),
        domains=tuple(domains),
        concept_of=np.array([concepts.index(c["concept"]) for c in entries], dtype=np.int64),
        task_of=np.array([tasks.index(c["task"]) for c in entries], dtype=np.int64),
        counts=np.array([[c["domains"].get(d, 0.0) for c in entries] for d in domains], dtype=np.float64),
        caps=np.array([c["cap"] for c in entries], dtype=np.float64),
    )
