"""Reading the store into observations: the concept source a search reuses centroids from, the report's
summary."""

from mixtura_operator import layout
from mixtura_operator.api.mixturesearch import BaselineComparison, Objective, SurrogateFit
from mixtura_operator.observe import StoreObserver, concept_source
from mixtura_operator.store import open_store


def test_concept_source_is_the_root_once_its_cells_exist(tmp_path):
    store = open_store(tmp_path.as_uri())
    assert concept_source(None, False, "first") == (None, None)
    assert concept_source(store, False, "first") == (None, None)
    store.put_bytes(layout.success_marker("cells"), b"")
    assert concept_source(store, True, "first") == (store.uri, None)


def test_a_finished_search_without_cells_is_a_problem(tmp_path):
    root, problem = concept_source(open_store(tmp_path.as_uri()), True, "first")
    assert root is None and problem == "MixtureSearch 'first' has no concept centroids (its cells step never finished)"
    assert concept_source(None, True, "first")[1] == problem


def test_the_reports_summary_becomes_the_comparison_and_the_surrogate_fit(tmp_path):
    store = open_store(tmp_path.as_uri())
    assert StoreObserver(store, Objective()).observe({}).surrogate is None
    store.put_json(
        layout.REPORT_SUMMARY,
        {"comparison": [{"baseline": "uniform", "objective": 0.9}], "surrogate": {"looR2": 0.1, "looSpearman": 0.2}},
    )
    store.put_bytes(layout.success_marker("report"), b"")
    observed = StoreObserver(store, Objective()).observe({})
    assert observed.comparison == (BaselineComparison(baseline="uniform", objective=0.9),)
    assert observed.surrogate == SurrogateFit(loo_r2=0.1, loo_spearman=0.2)
    assert not observed.surrogate.reliable


def test_a_report_without_a_summary_observes_none(tmp_path):
    store = open_store(tmp_path.as_uri())
    store.put_bytes(layout.success_marker("report"), b"")
    observed = StoreObserver(store, Objective()).observe({})
    assert observed.comparison == () and observed.surrogate is None
