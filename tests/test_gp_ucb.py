"""GP-UCB proposals and the simplex helpers they rely on."""

import json
import math

import numpy as np
import pytest
import torch
from botorch.acquisition import qUpperConfidenceBound
from botorch.optim import optimize_acqf_discrete
from botorch.sampling import SobolQMCNormalSampler
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mixtura_jobs.search.gp_ucb import (
    PARTS,
    SAME_MIXTURE_L1,
    SHORTLIST_PER_POINT,
    LogRatio,
    SumOfGPs,
    fit_gp,
    fit_surrogate,
    posterior_best,
    propose_batch,
    srinivas_beta,
    ucb_batch,
)
from mixtura_jobs.search.seed_noise import pooled, repeat_groups, spread
from mixtura_jobs.search.simplex import (
    apply_caps,
    dirichlet_design,
    random_batch,
    uniform_weights,
)
from mixtura_jobs.search.spaces import SimplexSpace

D = 6
W_STAR = np.array([0.30, 0.25, 0.15, 0.12, 0.10, 0.08])


def objective(w: np.ndarray) -> np.ndarray:
    """Smooth, concave, maximised at the interior point W_STAR."""
    return -np.sum((w - W_STAR) ** 2, axis=-1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def observed(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = random_batch(n, D, seed)
    return x, objective(x)


def assert_on_simplex(w: np.ndarray, atol: float = 1e-9) -> None:
    assert np.all(w >= -atol)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=atol)


def assert_distinct(w: np.ndarray) -> None:
    assert len(np.unique(w.round(12), axis=0)) == len(w)


# --- simplex helpers ---


simplex_points = (
    arrays(np.float64, st.integers(2, 8), elements=st.floats(0.0, 1.0))
    .filter(lambda a: a.sum() > 1e-3)
    .map(lambda a: a / a.sum())
)


@settings(max_examples=100, deadline=None)
@given(simplex_points, st.data())
def test_caps_keep_mixtures_on_simplex_and_under_caps(w: np.ndarray, data: st.DataObject) -> None:
    raw = data.draw(arrays(np.float64, w.size, elements=st.floats(0.01, 1.0)))
    caps = raw / raw.sum() * data.draw(st.floats(0.5, 3.0))
    if caps.sum() < 1.0 - 1e-12:
        with pytest.raises(ValueError, match="sum to at least 1"):
            apply_caps(w, caps)
        return
    capped = apply_caps(w, caps)
    assert_on_simplex(capped, atol=1e-12)
    assert np.all(capped <= caps + 1e-12)
    if np.all(w <= caps):
        np.testing.assert_allclose(capped, w, atol=1e-15)


def test_caps_apply_row_wise_and_refuse_infeasible_caps() -> None:
    w = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(
        apply_caps(w, np.array([0.5, 0.5, 0.5])),
        [[0.5, 0.3333333333333333, 0.1666666666666667], [0.25, 0.25, 0.5]],
    )
    with pytest.raises(ValueError, match="sum to at least 1"):
        apply_caps(w, np.array([0.3, 0.3, 0.3]))


def test_dirichlet_design_handles_zero_center_entries() -> None:
    design = dirichlet_design(500, np.array([0.5, 0.5, 0.0]), np.random.default_rng(0))
    assert_on_simplex(design, atol=1e-12)
    assert np.median(design[:, 2]) < 1e-3
    assert np.all(np.isfinite(design))


def test_srinivas_beta_follows_the_formula() -> None:
    assert srinivas_beta(t=3, n_candidates=100, delta=0.1) == pytest.approx(2 * math.log(100 * 9 * math.pi**2 / 0.6))
    assert srinivas_beta(10, 100) > srinivas_beta(9, 100)


# --- proposals ---


def test_initial_design_starts_from_the_prior_center() -> None:
    center = np.array([0.4, 0.2, 0.1, 0.1, 0.1, 0.1])
    first = propose_batch(np.empty((0, D)), np.empty(0), 4, seed=1, prior_center=center)
    assert first.predicted_mean is None and first.predicted_std is None
    np.testing.assert_array_equal(first.weights[0], center)
    assert_on_simplex(first.weights)
    assert_distinct(first.weights)
    # Once observed, the center is not proposed again.
    x = first.weights[:2]
    again = propose_batch(x, objective(x), 4, seed=1, prior_center=center, n_initial=8)
    assert not np.any(np.all(again.weights == center, axis=1))


def test_proposals_are_distinct_mixtures_on_the_simplex() -> None:
    x, y = observed(12)
    p = propose_batch(x, y, 5, seed=3, pool_size=2000)
    assert p.weights.shape == (5, D)
    assert_on_simplex(p.weights)
    assert_distinct(p.weights)
    assert p.predicted_mean.shape == p.predicted_std.shape == (5,)
    assert np.all(p.predicted_std >= 0)


def test_proposals_respect_caps() -> None:
    caps = np.array([0.2, 0.2, 0.5, 0.5, 0.5, 0.5])
    x, y = observed(12)
    for n in (0, 12):  # the initial design and GP-UCB
        space = SimplexSpace(D, caps)
        p = propose_batch(x[:n], y[:n], 4, seed=0, space=space, pool_size=2000, prior_center=uniform_weights(D))
        assert_on_simplex(p.weights)
        assert np.all(p.weights <= caps + 1e-12)


def test_proposals_are_deterministic_for_a_seed_and_leave_global_rng_alone() -> None:
    x, y = observed(10)
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    a = propose_batch(x, y, 4, seed=7, pool_size=2000)
    b = propose_batch(x, y, 4, seed=7, pool_size=2000, beta=2)
    c = propose_batch(x, y, 4, seed=8, pool_size=2000)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.predicted_mean, b.predicted_mean)
    assert not np.array_equal(a.weights, c.weights)


def test_srinivas_schedule_explores_more_than_a_small_beta() -> None:
    x, y = observed(10)
    wide = propose_batch(x, y, 4, seed=0, beta="srinivas", pool_size=2000)
    narrow = propose_batch(x, y, 4, seed=0, beta=0.01, pool_size=2000)
    assert wide.predicted_std.mean() > narrow.predicted_std.mean()


def test_posterior_best_picks_the_best_noiseless_observation() -> None:
    x, y = observed(20, seed=2)
    index, mean, std = posterior_best(x, y, seed=0)
    assert index == int(np.argmax(y))
    assert mean == pytest.approx(y[index], abs=0.05 * np.ptp(y))
    assert std >= 0


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.ones((2, D)), np.zeros(2), "mixture"),
        (np.full((2, D), 1 / D), np.array([0.0, np.nan]), "finite"),
        (np.full((2, 1), 1.0), np.zeros(2), "d >= 2"),
    ],
)
def test_bad_observations_are_refused(x: np.ndarray, y: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        propose_batch(x, y, 2, seed=0)


# --- acceptance ---

ROUNDS, Q, SEEDS = 10, 4, range(10)


def gp_ucb_search(seed: int) -> np.ndarray:
    x, y = np.empty((0, D)), np.empty(0)
    for _ in range(ROUNDS):
        w = propose_batch(x, y, Q, seed=seed, pool_size=2000).weights
        x, y = np.vstack([x, w]), np.concatenate([y, objective(w)])
    return y


@pytest.mark.slow
def test_gp_ucb_finds_the_optimum_and_beats_random_search() -> None:
    """40 evaluations (10 rounds of 4) over 6 domain weights, objective -||w - w*||^2 with w* interior.

    "Within 2 %" means simple regret f(w*) - max f(observed) <= 0.02 * (f(w*) - f(uniform)): 2 % of the
    gain that the best mixture has over the uniform one (here a distance of about 0.028 to w*). Required
    for 8 of 10 seeds; the median regret must also beat random search (the Dirichlet design) with the
    same 40 evaluations. The pool is 2,000 candidates instead of 10,000 to keep the test short.
    """
    gap = objective(W_STAR) - objective(uniform_weights(D))
    regret = np.array([objective(W_STAR) - gp_ucb_search(seed).max() for seed in SEEDS]) / gap
    random_regret = (
        np.array([objective(W_STAR) - objective(random_batch(ROUNDS * Q, D, seed)).max() for seed in SEEDS]) / gap
    )
    assert np.sum(regret <= 0.02) >= 8, regret
    assert np.median(regret) < np.median(random_regret), (regret, random_regret)


def test_a_round_warm_starts_from_the_previous_rounds_fit() -> None:
    x, y = observed(16)
    previous = propose_batch(x[:12], y[:12], 4, seed=0, pool_size=2000)
    warm = json.loads(json.dumps(previous.hyperparameters))  # as the propose step stores it
    assert sorted(warm) == [
        "covar_module.raw_lengthscale",
        "likelihood.noise_covar.raw_noise",
        "mean_module.raw_constant",
    ]
    a = propose_batch(x, y, 4, seed=0, pool_size=2000, warm_start=warm)
    b = propose_batch(x, y, 4, seed=0, pool_size=2000, warm_start=warm)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert_on_simplex(a.weights)
    with pytest.raises(ValueError, match="warm_start must name"):
        propose_batch(x, y, 4, seed=0, pool_size=2000, warm_start={"covar_module.raw_lengthscale": [[0.0] * D]})


def test_an_objective_of_parts_is_one_gp_per_part_and_their_sum() -> None:
    x = random_batch(14, D, seed=3)
    parts = np.column_stack([-np.sum((x - W_STAR) ** 2, axis=1), -2.0 * x[:, 0], 0.5 * x[:, 3]])
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = fit_surrogate(x, parts)
    assert isinstance(model, SumOfGPs) and len(model.parts) == 3
    test = torch.as_tensor(random_batch(5, D, seed=4), dtype=torch.float64)
    with torch.no_grad():
        joint, each = model.posterior(test), [part.posterior(test) for part in model.parts]
        np.testing.assert_allclose(joint.mean.reshape(-1), sum(p.mean.reshape(-1) for p in each), atol=1e-10)
        covariance = sum(p.distribution.covariance_matrix for p in each)
        np.testing.assert_allclose(joint.distribution.covariance_matrix, covariance, atol=1e-10)


def test_a_round_of_parts_warm_starts_each_part_and_a_sum_ignores_them() -> None:
    x = random_batch(16, D, seed=5)
    parts = np.column_stack([objective(x), -x[:, 1]])
    previous = propose_batch(x[:12], parts[:12], 4, seed=0, pool_size=2000)
    warm = json.loads(json.dumps(previous.hyperparameters))
    assert list(warm) == [PARTS] and len(warm[PARTS]) == 2
    assert all("covar_module.raw_lengthscale" in part for part in warm[PARTS])
    a = propose_batch(x, parts, 4, seed=0, pool_size=2000, warm_start=warm)
    assert_on_simplex(a.weights) and assert_distinct(a.weights)
    # The predictions are of the objective, the parts' sum.
    assert a.predicted_mean.max() <= parts.sum(axis=1).max() + 0.1 * np.ptp(parts.sum(axis=1))
    # A search whose observations lost their parts (a stopped trial joined) fits one GP, cold.
    assert sorted(propose_batch(x, parts.sum(axis=1), 4, seed=0, pool_size=2000, warm_start=warm).hyperparameters) == [
        "covar_module.raw_lengthscale",
        "likelihood.noise_covar.raw_noise",
        "mean_module.raw_constant",
    ]


def test_log_ratio_inputs_lie_in_the_unit_cube_and_tell_absent_from_small_weights() -> None:
    w = torch.tensor(
        [[1.0, 0, 0, 0], [0, 0.05, 0, 0.95], [0.25, 0.25, 0.25, 0.25], [0, 0, 0.5, 0.5]], dtype=torch.float64
    )
    z = LogRatio(keep_weights=False).transform(w)
    assert torch.all((z >= 0) & (z <= 1))
    # Shifting 5 % of the mixture onto an absent domain moves the point further than spreading the same 5 %
    # between two present ones: presence counts on a log scale.
    moved = torch.tensor([[0.05, 0.0, 0.475, 0.475], [0.0, 0.0, 0.525, 0.475]], dtype=torch.float64)
    shifted = LogRatio(keep_weights=False).transform(moved)
    base = z[3]
    assert torch.dist(shifted[0], base) > 5 * torch.dist(shifted[1], base)


def test_the_gp_sees_weights_and_log_ratios_by_default() -> None:
    x, y = observed(24)
    model = fit_gp(x, y)
    assert model.input_transform.keep_weights and model.covar_module.lengthscale.shape[-1] == 2 * D
    assert not fit_gp(x, y, inputs="log-ratio").input_transform.keep_weights
    assert not hasattr(fit_gp(x, y, inputs="weights"), "input_transform")
    with pytest.raises(ValueError, match="inputs must be"):
        fit_gp(x, y, inputs="sqrt")


def test_a_fit_of_other_inputs_is_no_warm_start() -> None:
    """A search that proposed rounds before the GP saw log-ratios stored fits of d lengthscales: start cold."""
    x, y = observed(16)
    old = propose_batch(x[:8], y[:8], 4, seed=0, pool_size=500).hyperparameters
    raw = {**old, "covar_module.raw_lengthscale": [old["covar_module.raw_lengthscale"][0][:D]]}
    assert propose_batch(x, y, 4, seed=0, pool_size=500, warm_start=raw).weights.shape == (4, D)


def test_pending_mixtures_are_never_proposed_again_even_the_best_ones() -> None:
    """Asynchronous proposals: the running trials are botorch's X_pending; the best candidates by UCB are
    pending, yet no proposal equals (or lies within SAME_MIXTURE_L1 of) one of them."""
    x, y = observed(12)
    candidates = random_batch(300, D, 5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = fit_gp(x, y)
    first = ucb_batch(model, candidates, 3, 2.0, 0)
    pending = candidates[first]
    again = ucb_batch(model, candidates, 3, 2.0, 0, pending=pending)
    assert not set(first) & set(again)
    assert np.abs(candidates[again][:, None] - pending[None]).sum(axis=-1).min() >= SAME_MIXTURE_L1


def qucb_value(model, points: np.ndarray, pending: np.ndarray | None = None) -> float:
    """botorch's own qUpperConfidenceBound of a batch (beta 2), with many Sobol samples."""
    acquisition = qUpperConfidenceBound(
        model, beta=2.0, sampler=SobolQMCNormalSampler(sample_shape=torch.Size([4096]), seed=123)
    )
    if pending is not None:
        acquisition.set_X_pending(torch.as_tensor(pending))
    with torch.no_grad():
        return float(acquisition(torch.as_tensor(points).unsqueeze(0)))


def test_the_batch_is_as_good_as_botorchs_greedy_qucb() -> None:
    """ucb_batch's greedy picks from one joint posterior score, by botorch's qUCB, as well as botorch's own
    greedy loop (optimize_acqf_discrete) over the same shortlist (the best marginal UCBs), with and without
    pending mixtures: within Monte Carlo error each time, and no worse on average."""
    ratios = []
    for seed in range(4):
        for n_pending in (0, 6):
            x, y = observed(12, seed)
            candidates = random_batch(400, D, 10 + seed)
            pending = random_batch(n_pending, D, 20 + seed) if n_pending else None
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = fit_gp(x, y)
            ours = candidates[ucb_batch(model, candidates, 4, 2.0, 0, pending=pending)]
            with torch.no_grad():
                posterior = model.posterior(torch.as_tensor(candidates))
                ucb = posterior.mean.squeeze(-1) + math.sqrt(2.0) * posterior.variance.squeeze(-1).sqrt()
            shortlist = torch.as_tensor(candidates)[torch.argsort(ucb, descending=True)[: SHORTLIST_PER_POINT * 4]]
            acquisition = qUpperConfidenceBound(
                model, beta=2.0, sampler=SobolQMCNormalSampler(sample_shape=torch.Size([256]), seed=0)
            )
            if pending is not None:
                acquisition.set_X_pending(torch.as_tensor(pending))
            reference, _ = optimize_acqf_discrete(acquisition, q=4, choices=shortlist)
            ratios.append(qucb_value(model, ours, pending) / qucb_value(model, reference.numpy(), pending))
    assert min(ratios) >= 0.97 and np.mean(ratios) >= 0.995, ratios


def test_an_async_proposal_avoids_pending_mixtures_in_the_initial_design_and_after() -> None:
    x, y = observed(2)
    center = W_STAR
    pending = np.array([center])
    initial = propose_batch(x, y, 1, seed=0, prior_center=center, n_initial=4, pending=pending)
    assert initial.predicted_mean is None and not np.allclose(initial.weights[0], center)
    x, y = observed(10)
    pending = propose_batch(x, y, 3, seed=1, pool_size=2000).weights
    gp = propose_batch(x, y, 3, seed=1, pool_size=2000, pending=pending)
    assert np.abs(gp.weights[:, None] - pending[None]).sum(axis=-1).min() >= SAME_MIXTURE_L1


def test_the_observation_noise_is_learned_or_fixed_from_the_repeats() -> None:
    x, y = observed(12)
    learned = fit_gp(x, y)
    assert "likelihood.noise_covar.raw_noise" in dict(learned.named_parameters())
    variance = 1e-4
    fixed = fit_gp(x, y, noise=variance)
    assert "likelihood.noise_covar.raw_noise" not in dict(fixed.named_parameters())
    # The likelihood holds it in standardised units: the variance over the outcomes' variance.
    expected = variance / np.var(y, ddof=1)
    np.testing.assert_allclose(fixed.likelihood.noise.detach().numpy(), expected, rtol=1e-6)
    # A learned fit warm-starts a fixed one and back (the kernel's parameters carry over).
    warm = {n: v.detach().tolist() for n, v in learned.named_parameters()}
    assert fit_gp(x, y, warm_start=warm, noise=variance).likelihood.noise.shape == (12,)


def test_seed_noise_is_the_pooled_variance_within_each_rerun_mixture() -> None:
    y = np.array([1.0, 2.0, 1.2, 3.0, 2.1, 3.4])
    groups = repeat_groups(["000", "001", "002", "003", "004", "005"], {"004": "001", "005": "003"})
    assert groups == [[1, 4], [3, 5]]
    noise = pooled(y, groups)
    # (2.0 - 2.05)^2 * 2 + (3.0 - 3.2)^2 * 2 over 2 degrees of freedom
    assert noise.groups == 2 and noise.repeats == 2
    assert math.isclose(noise.variance, (0.005 + 0.08) / 2)
    assert pooled(y, [[0], [2]]) is None
    assert math.isclose(spread(np.array([1.0, 3.0])), math.sqrt(2))
