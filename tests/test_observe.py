"""Reading the store into observations: the concept source a search reuses centroids from."""

from mixtura_operator import layout
from mixtura_operator.observe import concept_source
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
