"""Mixture records: a point of each space as the trial's mixture.json and back, and where searches centre."""

import numpy as np
import pytest
from test_cells import make_cells

from mixtura_jobs.search import cell_weights as C
from mixtura_jobs.search.mixtures import NamedSpace


@pytest.mark.parametrize("kind", ["domains", "factorized", "full"])
def test_mixture_records_round_trip_and_carry_domain_marginals(kind):
    cells = None if kind == "domains" else make_cells(max_repetition=4.0)
    natural = np.full(4, 0.25) if cells is None else cells.natural
    space = NamedSpace(kind, ("d0", "d1", "d2", "d3"), natural, cells)
    point = space.geometry.sample(1, space.center(np.array([0.4, 0.3, 0.2, 0.1])), np.random.default_rng(0))[0]
    record = space.record(point)
    np.testing.assert_array_equal(space.point(record), point)
    assert sum(record["weights"].values()) == pytest.approx(1.0, abs=1e-12)
    if kind == "domains":
        assert set(record) == {"weights"}
        return
    assert list(record["cells"]) == cells.ids and sum(record["cells"].values()) == pytest.approx(1.0, abs=1e-12)
    if kind == "factorized":
        a, b = (np.array(list(record["factors"][f].values())) for f in ("concepts", "tasks"))
        np.testing.assert_allclose(list(record["cells"].values()), C.factorized_to_cells(a, b, cells))
    else:
        assert "factors" not in record


def test_centres_follow_the_prior_domain_weights():
    cells = make_cells(max_repetition=4.0)
    full = NamedSpace("full", ("d0", "d1", "d2", "d3"), cells.natural, cells)
    np.testing.assert_array_equal(full.center(), cells.natural)
    v = np.array([0.4, 0.3, 0.2, 0.1])
    np.testing.assert_allclose(full.center(v), C.domains_to_cells(v, cells))
    factorized = NamedSpace("factorized", ("d0", "d1", "d2", "d3"), cells.natural, cells)
    center = factorized.center(v)
    fitted = C.cells_to_factors(C.factorized_to_cells(center[:4], center[4:], cells), cells)
    np.testing.assert_allclose(np.concatenate(fitted), np.concatenate(C.cells_to_factors(full.center(v), cells)))
