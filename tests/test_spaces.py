"""Cell spaces: every proposer (initial design, GP-UCB, random, regression) stays on the simplices and within
the cells' caps, in the factorized and the full space."""

import numpy as np
import pytest

from mixtura_jobs.search.cell_weights import DomainConcepts, build_cells
from mixtura_jobs.search.gp_ucb import posterior_best, propose_batch
from mixtura_jobs.search.regmix import regression_batch
from mixtura_jobs.search.spaces import FactorizedSpace, SimplexSpace

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A stray cell (c2/captioning: 1 sample) and a small one (c1/ocr: 4) whose caps bind.
CELLS = build_cells(
    [
        DomainConcepts("d0", "captioning", 80, np.array([50, 30, 0])),
        DomainConcepts("d1", "ocr", 124, np.array([0, 2, 60])),
        DomainConcepts("d2", "captioning", 11, np.array([10, 0, 1])),
        DomainConcepts("d3", "text", 40, None),
    ],
    3,
    max_repetition=3.0,
    samples_drawn=400,
)
K = len(CELLS.concepts)


def cell_weights(space, x: np.ndarray) -> np.ndarray:
    return space.cell_weights(x) if isinstance(space, FactorizedSpace) else x


def assert_in_space(space, x: np.ndarray) -> None:
    """On the simplex (each half, for the factorized space) within 1e-9, and every cell within its cap."""
    halves = [x[:, :K], x[:, K:]] if isinstance(space, FactorizedSpace) else [x]
    for half in halves:
        assert np.all(half >= -1e-9)
        np.testing.assert_allclose(half.sum(axis=1), 1.0, atol=1e-9)
    assert np.all(cell_weights(space, x) <= CELLS.caps + 1e-9)
    space.check(x)


def objective(space, x: np.ndarray) -> np.ndarray:
    return -np.sum((cell_weights(space, x) - CELLS.natural) ** 2, axis=1)


@pytest.fixture(params=["factorized", "full"])
def space(request):
    return FactorizedSpace(CELLS) if request.param == "factorized" else SimplexSpace(len(CELLS.ids), CELLS.caps)


def center(space) -> np.ndarray:
    if isinstance(space, FactorizedSpace):
        return space.feasible(np.concatenate([np.full(K, 1 / K), [0.2, 0.6, 0.2]]))
    return space.feasible(CELLS.natural)


def observed(space, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = space.sample(n, center(space), np.random.default_rng(1))
    return x, objective(space, x)


def test_the_caps_bind_the_uniform_mixture(space):
    products = np.full(len(CELLS.ids), 1 / len(CELLS.ids))
    assert np.any(products > CELLS.caps)
    assert_in_space(space, space.uniform()[None])


def test_random_draws_respect_the_caps(space):
    x = space.sample(500, center(space), np.random.default_rng(0))
    assert x.shape == (500, space.dim)
    assert_in_space(space, x)
    assert len(np.unique(x.round(12), axis=0)) == 500


def test_initial_design_and_gp_ucb_proposals_respect_the_caps(space):
    first = propose_batch(np.empty((0, space.dim)), np.empty(0), 4, seed=0, prior_center=center(space), space=space)
    assert first.predicted_mean is None
    np.testing.assert_array_equal(first.weights[0], center(space))
    assert_in_space(space, first.weights)
    x, y = observed(space, 10)
    proposal = propose_batch(x, y, 4, seed=0, prior_center=center(space), space=space, pool_size=1500)
    assert proposal.predicted_mean.shape == (4,)
    assert_in_space(space, proposal.weights)
    index, _, _ = posterior_best(x, y, seed=0, space=space)
    assert 0 <= index < len(x)


def test_regression_proposals_respect_the_caps(space):
    x, y = observed(space, 12)
    batch = regression_batch(x, y, 4, seed=0, center=center(space), space=space, n_samples=2000, top_k=32)
    assert batch.shape == (4, space.dim)
    assert_in_space(space, batch)


def test_feasible_moves_only_points_that_break_a_cap():
    space = FactorizedSpace(CELLS)
    inside = space.sample(3, space.anchor, np.random.default_rng(0))
    np.testing.assert_array_equal(space.feasible(inside), inside)
    outside = np.concatenate([[0.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])  # all on c2: the stray cell breaks its cap
    with pytest.raises(ValueError, match="caps"):
        space.check(outside[None])
    moved = space.feasible(outside)
    assert_in_space(space, moved[None])


def test_draws_the_caps_refuse_are_mapped_into_the_space():
    """Around the stray concept almost every draw breaks its cap; the points still come, all feasible."""
    space = FactorizedSpace(CELLS)
    around = np.concatenate([[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    x = space.sample(200, around, np.random.default_rng(0), strengths=(50.0, 50.0))
    assert x.shape == (200, space.dim)
    assert_in_space(space, x)


def test_a_factorized_space_no_product_can_respect_is_refused():
    # Each concept is nearly all one task: caps 0.9 on c0/vqa and c1/ocr, 0.04 on c0/ocr and c1/vqa. Cell
    # weights that fit under 0.04 off the diagonal need a and b near the same vertex, which puts more than
    # 0.9 on its diagonal cell; a full space has room (0.9 + 0.1 off the diagonal).
    tight = build_cells(
        [DomainConcepts("a", "vqa", 94, np.array([90, 4])), DomainConcepts("b", "ocr", 94, np.array([4, 90]))],
        2,
        max_repetition=1,
        samples_drawn=100,
    )
    np.testing.assert_allclose(tight.caps, [0.04, 0.9, 0.9, 0.04])
    with pytest.raises(ValueError, match=r"spec\.search\.maxRepetition: found no concept weights"):
        FactorizedSpace(tight)
