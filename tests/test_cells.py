"""Concept x task cells: counts, caps, the maps between cell, domain and factorized weights."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixtura_jobs.search import cell_weights as C
from mixtura_jobs.search.cell_weights import DomainConcepts, build_cells

# Three image concepts; d1 had half its samples assigned; d3 has no images.
DOMAINS = [
    DomainConcepts("d0", "captioning", 80, np.array([50, 30, 0])),
    DomainConcepts("d1", "ocr", 124, np.array([0, 2, 60])),
    DomainConcepts("d2", "captioning", 11, np.array([10, 0, 1])),
    DomainConcepts("d3", "text", 40, None),
]


def make_cells(max_repetition: float = 2.0, samples_drawn: int = 400) -> C.Cells:
    return build_cells(DOMAINS, 3, max_repetition=max_repetition, samples_drawn=samples_drawn)


def test_cells_are_the_non_empty_concept_task_pairs_with_scaled_counts():
    cells = make_cells()
    assert cells.concepts == ("c0", "c1", "c2", "none") and cells.tasks == ("captioning", "ocr", "text")
    assert cells.ids == ["c0/captioning", "c1/captioning", "c1/ocr", "c2/captioning", "c2/ocr", "none/text"]
    np.testing.assert_allclose(cells.sizes, [60, 30, 4, 1, 120, 40])
    np.testing.assert_allclose(cells.counts[:, 0], [50, 0, 10, 0])
    np.testing.assert_allclose(cells.natural.sum(), 1.0)


def test_caps_follow_max_repetition():
    cells = make_cells(max_repetition=2.0, samples_drawn=400)
    # min(1, 2 * n / 400)
    np.testing.assert_allclose(cells.caps, [0.3, 0.15, 0.02, 0.005, 0.6, 0.2])
    np.testing.assert_allclose(make_cells(max_repetition=8.0).caps[[0, 4]], [1.0, 1.0])
    np.testing.assert_allclose(C.cell_caps(np.array([10.0, 30.0]), 4, 100), [0.4, 1.0])


def test_caps_that_leave_no_mixture_are_refused_naming_the_field():
    # 255 samples, 2 epochs of them at most, 600 drawn: 85 %.
    with pytest.raises(ValueError, match=r"spec\.search\.maxRepetition: .* 85% .* at least 2\.35"):
        make_cells(max_repetition=2.0, samples_drawn=600)


def test_concepts_and_tasks_without_samples_are_left_out():
    cells = build_cells(
        [DomainConcepts("a", "vqa", 10, np.array([0, 4, 0])), DomainConcepts("b", "ocr", 5, np.array([1, 0, 0]))],
        3,
        max_repetition=4,
        samples_drawn=20,
    )
    assert cells.concepts == ("c0", "c1") and cells.tasks == ("ocr", "vqa") and cells.ids == ["c0/ocr", "c1/vqa"]


@settings(max_examples=30, deadline=None)
@given(st.permutations(range(len(DOMAINS))))
def test_cells_do_not_depend_on_the_order_of_the_domains(order):
    cells, shuffled = make_cells(), build_cells([DOMAINS[i] for i in order], 3, max_repetition=2, samples_drawn=400)
    assert shuffled.ids == cells.ids
    np.testing.assert_allclose(shuffled.sizes, cells.sizes)
    np.testing.assert_allclose(shuffled.caps, cells.caps)


def test_factorized_weights_multiply_to_the_cell_weights():
    full = build_cells(
        [DomainConcepts("a", "vqa", 10, np.array([3, 7])), DomainConcepts("b", "ocr", 10, np.array([5, 5]))],
        2,
        max_repetition=4,
        samples_drawn=10,
    )
    a, b = np.array([0.3, 0.7]), np.array([0.6, 0.4])  # tasks in API order: ocr, vqa
    np.testing.assert_allclose(C.factorized_to_cells(a, b, full), np.outer(a, b).ravel(), atol=1e-15)
    # With empty cells: the products on the non-empty ones, renormalised.
    cells = make_cells()
    a, b = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.5, 0.3, 0.2])
    products = np.array([0.1 * 0.5, 0.2 * 0.5, 0.2 * 0.3, 0.3 * 0.5, 0.3 * 0.3, 0.4 * 0.2])
    np.testing.assert_allclose(C.factorized_to_cells(a, b, cells), products / products.sum(), atol=1e-15)
    with pytest.raises(ValueError, match="no weight on any non-empty cell"):
        C.factorized_to_cells(np.array([1.0, 0, 0, 0]), np.array([0, 0, 1.0]), cells)


simplex4 = st.lists(st.floats(0.01, 1.0), min_size=4, max_size=4).map(lambda v: np.array(v) / sum(v))


@settings(max_examples=50, deadline=None)
@given(simplex4)
def test_domain_and_cell_weights_map_onto_each_other(v):
    cells = make_cells()
    w = C.domains_to_cells(v, cells)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-12)
    back = C.cells_to_domains(w, cells)
    assert back.sum() == pytest.approx(1.0, abs=1e-12)
    # Domains alone in all their cells (d1, d3) keep their weight; d0 and d2 share c0/captioning.
    np.testing.assert_allclose(back[[1, 3]], v[[1, 3]], atol=1e-12)


def test_natural_cells_give_the_size_proportional_domain_weights():
    cells = make_cells()
    sizes = np.array([d.size for d in DOMAINS])
    np.testing.assert_allclose(C.cells_to_domains(cells.natural, cells), sizes / sizes.sum(), atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(simplex4)
def test_fitted_factors_keep_the_concept_and_task_marginals(v):
    cells = make_cells()
    w = C.domains_to_cells(v, cells)
    a, b = C.fit_factors(w, cells)
    fitted = C.cells_to_factors(C.factorized_to_cells(a, b, cells), cells)
    for got, want in zip(fitted, C.cells_to_factors(w, cells), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-8)


def test_the_record_round_trips():
    cells = make_cells()
    again = C.from_record(C.to_record(cells))
    assert again.ids == cells.ids and again.domains == cells.domains
    np.testing.assert_array_equal(again.counts, cells.counts)
    np.testing.assert_array_equal(again.caps, cells.caps)


def test_each_sample_gets_its_cell_id():
    assert C.sample_cells("ocr", np.array([2, 0, 2]), 3).tolist() == ["c2/ocr", "c0/ocr", "c2/ocr"]
    assert C.sample_cells("text", None, 2).tolist() == ["none/text", "none/text"]
    with pytest.raises(ValueError, match="2 concept labels for 3 samples"):
        C.sample_cells("ocr", np.array([0, 1]), 3)


def test_task_order_is_the_api_task_types() -> None:
    """The pure math keeps its own copy of the task order (it imports no API model)."""
    from typing import get_args

    from mixtura_operator.api.domainset import TaskType

    assert get_args(TaskType) == C.TASK_ORDER
