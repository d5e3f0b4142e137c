"""GP-UCB batch proposals over mixture weights (shared/methods/mixatlas.md, steps 5-8).

`propose_batch` reads like the botorch loop: fit the GP, build the acquisition, optimise it over a pool of
candidate mixtures, return the batch. The GP sees all d weights, not the d-1 free coordinates: the
Matérn kernel restricted to the simplex's hyperplane is still a valid kernel, every domain gets its own
lengthscale, and no domain is singled out as the implicit one (with the last weight left implicit the
search came 10-30x further from the optimum on the acceptance test's objective). Beside the weights the
kernel sees their centred log-ratios (`LogRatio`), so that whether a domain is present at all counts. An
objective that is a sum of parts (a per-domain metric) gets one such GP per part, the model their sum
(`fit_surrogate`).
"""

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Real
from typing import Literal, get_args

import numpy as np
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.input import InputTransform
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from botorch.posteriors import GPyTorchPosterior
from botorch.utils.sampling import draw_sobol_normal_samples
from gpytorch.distributions import MultivariateNormal
from gpytorch.mlls import ExactMarginalLogLikelihood
from linear_operator.utils.cholesky import psd_safe_cholesky

from mixtura_jobs.search.spaces import MixtureSpace, SimplexSpace

DTYPE = torch.float64
MC_SAMPLES = 256
# Strengths of the Dirichlet around the best observed mixture: from a wide look around it to a close one.
# Up to 100 only, the acceptance test's search ended within 2 % of the optimum on 7 of 10 seeds (botorch
# 0.18), on 10 of 10 with draws up to 1000 (a spread of about 1 % of a weight: fine enough to finish).
LOCAL_STRENGTHS = (1.0, 1000.0)
# L-BFGS iterations for the marginal likelihood. The likelihood is flat near its optimum: at n=200, d=50 the
# fit reaches 80 % of the converged gain over the prior in 100 iterations and a tenth of the time (~900).
FIT_MAXITER = 100
# A search's later rounds continue from the previous round's hyperparameters (`warm_start`): they start near
# the optimum and keep climbing round after round, so fewer iterations each.
WARM_FIT_MAXITER = 40
# qUCB is evaluated on the candidates with the best marginal UCB only, this many per proposed point: the
# first greedy pick is the best marginal UCB anyway (q=1 qUCB is analytic UCB), and a candidate far down
# that ranking does not make a batch better. Scoring the whole pool jointly was 80 % of a proposal's time.
SHORTLIST_PER_POINT = 16
PREDICT_CHUNK = 256
# LogRatio's offset: weights far below it (1 % of the mixture) count as absent. With 0.1 % the search missed
# the acceptance test's interior optimum on 4 of 10 seeds (dense mixtures, raw weights matter there).
LOG_OFFSET = 1e-2
# The smallest fixed noise variance: repeats that agree to the last digit must not make the kernel matrix singular.
MIN_NOISE = 1e-8
# Candidates closer than this (L1) to a pending or chosen mixture are that mixture: never proposed again.
SAME_MIXTURE_L1 = 1e-3
# What the GP sees (fit_gp's `inputs`): the weights beside their centred log-ratios (the default), the
# log-ratios alone, or the weights alone.
Inputs = Literal["weights+log-ratio", "log-ratio", "weights"]


# Parameter name -> values (nested lists), JSON-ready; a SumOfGPs' are {PARTS: [each part's]}.
Hyperparameters = dict[str, list]
PARTS = "parts"


@dataclass(frozen=True)
class Proposal:
    """q mixtures to evaluate next; the GP's posterior at them, absent for the initial design."""

    weights: np.ndarray  # (q, d), rows on the simplex
    predicted_mean: np.ndarray | None  # (q,) in the objective's units
    predicted_std: np.ndarray | None  # (q,) of the latent objective, without observation noise
    hyperparameters: Hyperparameters | None = None  # the fitted GP's, to warm-start the next round


def srinivas_beta(t: int, n_candidates: int, delta: float = 0.1) -> float:
    """beta_t = 2 log(|D| t^2 pi^2 / (6 delta)) for a finite candidate set D (Srinivas et al. 2010, Thm 1)."""
    if t < 1 or n_candidates < 1 or not 0 < delta < 1:
        raise ValueError(f"need t >= 1, n_candidates >= 1, 0 < delta < 1; got {t}, {n_candidates}, {delta}")
    return 2.0 * math.log(n_candidates * t**2 * math.pi**2 / (6.0 * delta))


def _check_observations(
    x: np.ndarray, y: np.ndarray, space: MixtureSpace | None = None
) -> tuple[np.ndarray, np.ndarray, MixtureSpace]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2 or y.shape[:1] != x.shape[:1] or y.ndim not in (1, 2):
        raise ValueError(f"X must be (n, d) with d >= 2 and y (n,) or (n, M), got {x.shape} and {y.shape}")
    space = SimplexSpace(x.shape[1]) if space is None else space
    space.check(x)
    if not np.all(np.isfinite(y)):
        raise ValueError("y must be finite; leave failed trials out of the observations")
    return x, y, space


@contextmanager
def _torch_seeded(seed: int) -> Iterator[None]:
    """Seed torch for the block and restore the caller's random state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _inputs(w: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(w, dtype=DTYPE)


class LogRatio(InputTransform):
    """Centred log-ratio coordinates, z = log(w + LOG_OFFSET) minus the row's mean, mapped to [0, 1] by the
    fixed bound |z| <= log((1 + LOG_OFFSET) / LOG_OFFSET), the unit cube the lengthscale prior is meant for;
    after the weights themselves when `keep_weights` (2d inputs, ARD picks per coordinate).

    A Matérn kernel on raw weights sees 0 and 0.05 as close, but whether a domain is in the mixture at all
    matters on a log scale; with many sparse domains the raw-weight GP needed 1.3-2x RegMix's trials (issue 16).
    Log-ratios alone lose the dense, smooth case (the acceptance test's quadratic objective), hence both.
    In the factorized space the row is two simplices side by side: the shared centring is still one-to-one.
    """

    transform_on_train = True
    transform_on_eval = True
    transform_on_fantasize = True

    def __init__(self, keep_weights: bool) -> None:
        super().__init__()
        self.keep_weights = keep_weights

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        span = _log_span()
        logs = torch.log(X + LOG_OFFSET)
        ratios = (logs - logs.mean(dim=-1, keepdim=True) + span) / (2.0 * span)
        return torch.cat([X, ratios], dim=-1) if self.keep_weights else ratios


def _log_span() -> float:
    return math.log((1.0 + LOG_OFFSET) / LOG_OFFSET)


def fit_gp(
    x: np.ndarray,
    y: np.ndarray,
    warm_start: Hyperparameters | None = None,
    inputs: Inputs = "weights+log-ratio",
    noise: float | None = None,
) -> SingleTaskGP:
    """SingleTaskGP: Matérn-5/2 with ARD on `inputs` (the weights and their LogRatio coordinates by default),
    standardised outcomes, hyperparameters by marginal likelihood, starting from `warm_start` (another fit's
    `hyperparameters`) when its shapes match. The observation noise is learned with the rest (botorch's
    homoskedastic Gaussian likelihood and its prior), or fixed at the variance `noise` (y units: the seed noise
    measured by repeats, `seed_noise.pooled`).

    The lengthscale prior is botorch's dimension-scaled log-normal (Hvarfner et al. 2024); with the classic
    Gamma(3, 6) prior the median regret on the acceptance test was 1.7x larger.
    """
    if inputs not in get_args(Inputs):
        raise ValueError(f"inputs must be one of {get_args(Inputs)}, got {inputs!r}")
    train_x = _inputs(x)
    dim = train_x.shape[-1] * (2 if inputs == "weights+log-ratio" else 1)
    train_y = torch.as_tensor(y, dtype=DTYPE).unsqueeze(-1)
    model = SingleTaskGP(
        train_x,
        train_y,
        train_Yvar=None if noise is None else torch.full_like(train_y, max(noise, MIN_NOISE)),
        covar_module=get_covar_module_with_dim_scaled_prior(dim, use_rbf_kernel=False),
        outcome_transform=Standardize(m=1),
        input_transform=None if inputs == "weights" else LogRatio(keep_weights=inputs == "weights+log-ratio"),
    )
    current = dict(model.named_parameters())
    # A fit with learned noise warm-starts one with noise fixed by repeats (and back): the kernel's own match.
    if warm_start is not None and _kernel_names(warm_start) != _kernel_names(current):
        raise ValueError(f"warm_start must name this GP's parameters {sorted(current)}")
    # A fit of other inputs (a round proposed before the GP saw log-ratios) has other shapes: start cold.
    shared = {n: v for n, v in (warm_start or {}).items() if n in current}
    warm = warm_start is not None and all(np.shape(v) == current[n].shape for n, v in shared.items())
    if warm:
        model.load_state_dict({name: torch.as_tensor(v, dtype=DTYPE) for name, v in shared.items()}, strict=False)
    maxiter = WARM_FIT_MAXITER if warm else FIT_MAXITER
    fit_gpytorch_mll(
        ExactMarginalLogLikelihood(model.likelihood, model), optimizer_kwargs={"options": {"maxiter": maxiter}}
    )
    return model


class SumOfGPs:
    """The sum of independent GPs, one per part of an objective that is a sum of parts, as one model: its
    posterior's mean and covariance are the sums of theirs. The covariance stays lazy, as each GP's does: a
    dense sum would be factorised at once, without the jitter the batch picks add."""

    def __init__(self, parts: list[SingleTaskGP]) -> None:
        self.parts = parts

    def posterior(self, x: torch.Tensor) -> GPyTorchPosterior:
        posteriors = [part.posterior(x) for part in self.parts]
        mean = sum(p.mean.squeeze(-1) for p in posteriors)
        covariance = sum(p.distribution.lazy_covariance_matrix for p in posteriors)
        return GPyTorchPosterior(MultivariateNormal(mean, covariance))


Surrogate = SingleTaskGP | SumOfGPs


def fit_surrogate(
    x: np.ndarray,
    y: np.ndarray,
    warm_start: Hyperparameters | None = None,
    noise: float | None = None,
    inputs: Inputs = "weights+log-ratio",
) -> Surrogate:
    """fit_gp for y (n,); for y (n, M), the objective's M parts (a per-domain metric's weighted terms: their
    sum is the objective), one fit_gp per part and their sum (Bayesian optimisation of a composite objective,
    Astudillo & Frazier 2019). Each part is a simpler function of the mixture than their sum (one domain's
    loss follows its own mixing law), so the parts' GPs learn it from fewer trials: on the synthetic
    mixing-law swarms the search needed a median 0.73x the trials of one GP on the sum (0.34-1.5x over 14
    swarm and seed sets; README, "One GP per part of the objective").
    Each part's GP warm-starts from its own in `warm_start` (`hyperparameters` of a SumOfGPs) and learns its
    own noise (`noise` is the sum's); a warm start of the other kind (parts for a sum, or back) is not used."""
    parts = (warm_start or {}).get(PARTS)
    if y.ndim == 1:
        return fit_gp(x, y, None if parts is not None else warm_start, inputs, noise)
    starts = parts if parts is not None and len(parts) == y.shape[1] else [None] * y.shape[1]
    return SumOfGPs([fit_gp(x, column, start, inputs) for column, start in zip(y.T, starts, strict=True)])


def _kernel_names(parameters: Mapping[str, object]) -> set[str]:
    return {name for name in parameters if not name.startswith("likelihood.")}


def hyperparameters(model: Surrogate) -> Hyperparameters:
    """The GP's fitted hyperparameters (raw, unconstrained values), for `fit_surrogate(warm_start=...)`, those
    of a SumOfGPs' parts under PARTS; the outcome transform has none (it is refitted to each round's data)."""
    if isinstance(model, SumOfGPs):
        return {PARTS: [hyperparameters(part) for part in model.parts]}
    return {name: value.detach().tolist() for name, value in model.named_parameters()}


def _predict(model: Surrogate, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Marginal posterior mean and std at each row. In chunks: one joint posterior over a large pool builds
    its (m, m) covariance, and one-point batches copy the training data per point; both are 10-20x slower."""
    means, stds = [], []
    with torch.no_grad():
        for chunk in _inputs(w).split(PREDICT_CHUNK):
            posterior = model.posterior(chunk)
            means.append(posterior.mean.reshape(-1))
            stds.append(posterior.variance.clamp_min(0.0).sqrt().reshape(-1))
    return torch.cat(means).numpy(), torch.cat(stds).numpy()


def ucb_batch(
    model: Surrogate,
    candidates: np.ndarray,
    q: int,
    beta: float,
    sampler_seed: int,
    pending: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of q distinct candidates by batch UCB (botorch's qUpperConfidenceBound), picked greedily as
    botorch's optimize_acqf_discrete does: each pick becomes a pending point of the next, after the `pending`
    mixtures (trials still running, asynchronous proposals), so a pick is worth what it adds to them. Only the
    candidates with the best marginal UCB, mean + sqrt(beta) * std (what qUCB is for q=1), are scored jointly;
    a candidate that is a pending or chosen mixture (within SAME_MIXTURE_L1) is never picked."""
    mean, std = _predict(model, candidates)
    pending = np.empty((0, candidates.shape[1])) if pending is None else np.asarray(pending, dtype=np.float64)
    taken = _near(candidates, pending)
    ucb = np.where(taken, -np.inf, mean + math.sqrt(beta) * std)
    order = np.argsort(-ucb, kind="stable")[: SHORTLIST_PER_POINT * q]
    if np.isneginf(ucb[order]).sum() > len(order) - q:
        raise ValueError(f"fewer than q={q} candidates differ from the {len(pending)} pending mixtures")
    with torch.no_grad():
        posterior = model.posterior(_inputs(np.concatenate([pending, candidates[order]])))
        mean, covariance = posterior.mean.reshape(-1), posterior.distribution.covariance_matrix
    return order[greedy_ucb(mean, covariance, len(pending), q, beta, sampler_seed, candidates[order], taken[order])]


def greedy_ucb(
    mean: torch.Tensor,
    covariance: torch.Tensor,
    n_pending: int,
    q: int,
    beta: float,
    seed: int,
    points: np.ndarray,
    excluded: np.ndarray,
) -> list[int]:
    """Indices into `points` of q picks by greedy qUCB; mean and covariance are the joint posterior of the
    n_pending pending mixtures followed by the points. Each pick maximises the Monte Carlo qUCB of the pending
    mixtures, the earlier picks and itself: the mean over draws of the set's largest mean + sqrt(beta pi / 2)
    |f - mean| (botorch's qUpperConfidenceBound), from Sobol base samples of the set's Cholesky factor.
    Points `excluded`, and points within SAME_MIXTURE_L1 of a pick, are never picked.

    botorch's loop (optimize_acqf_discrete) builds each candidate's joint posterior with the pending set anew,
    70 % of a warm proposal. Here one posterior serves every step: the set's factor, then each candidate's
    row of it. Every candidate draws with the same base samples, so candidates are compared on common random
    numbers, as in botorch's loop."""
    scale = math.sqrt(beta * math.pi / 2)
    candidates = torch.arange(n_pending, len(mean))
    fixed = list(range(n_pending))
    excluded = np.array(excluded, dtype=bool)
    chosen: list[int] = []
    for _ in range(q):
        z = draw_sobol_normal_samples(len(fixed) + 1, MC_SAMPLES, seed=seed).to(mean)
        if fixed:
            factor = psd_safe_cholesky(covariance[fixed][:, fixed])
            rows = torch.linalg.solve_triangular(factor, covariance[fixed][:, candidates], upper=False).T
            drawn = mean[fixed] + z[:, :-1] @ factor.T
            best = (mean[fixed] + scale * (drawn - mean[fixed]).abs()).max(dim=1).values
        else:
            rows = mean.new_zeros((len(candidates), 0))
            best = mean.new_full((MC_SAMPLES,), -torch.inf)
        own = (covariance.diagonal()[candidates] - rows.pow(2).sum(dim=1)).clamp_min(0.0).sqrt()
        deviation = z[:, :-1] @ rows.T + z[:, -1:] * own
        values = torch.maximum(best.unsqueeze(1), mean[candidates] + scale * deviation.abs()).mean(dim=0)
        values[torch.as_tensor(excluded)] = -torch.inf
        chosen.append(int(torch.argmax(values)))
        fixed.append(n_pending + chosen[-1])
        excluded |= _near(points, points[chosen[-1:]])
    return chosen


def _near(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Which rows of `points` are (within SAME_MIXTURE_L1) a row of `others`."""
    nearest = np.full(len(points), np.inf)
    # One row of `others` at a time: a pool of 10,000 against 256 pending cell mixtures at once would be a GB.
    for other in others:
        nearest = np.minimum(nearest, np.abs(points - other).sum(axis=1))
    return nearest < SAME_MIXTURE_L1


def _initial_design(
    taken: np.ndarray, q: int, center: np.ndarray, center_first: bool, space: MixtureSpace, rng: np.random.Generator
) -> np.ndarray:
    """Dirichlet draws around `center`, the center itself first unless `taken` (observed or pending) has it."""
    design = space.sample(q, center, rng)
    if center_first and not _near(center[None], taken)[0]:
        design[0] = center
    return design


def _candidate_pool(
    best: np.ndarray, center: np.ndarray, space: MixtureSpace, pool_size: int, rng: np.random.Generator
) -> np.ndarray:
    """Dirichlet candidates: a third around the best mixture, a third around the center, a third uniform."""
    third = pool_size // 3
    return np.concatenate(
        [
            space.sample(third, best, rng, strengths=LOCAL_STRENGTHS),
            space.sample(third, center, rng),
            # Concentration 1 everywhere: uniform over the simplex.
            space.sample(pool_size - 2 * third, space.uniform(), rng, strengths=(1.0, 1.0)),
        ]
    )


def propose_batch(
    X: np.ndarray,
    y: np.ndarray,
    q: int,
    *,
    seed: int,
    beta: float | Literal["srinivas"] = 2.0,
    prior_center: np.ndarray | None = None,
    n_initial: int | None = None,
    space: MixtureSpace | None = None,
    pool_size: int = 10000,
    warm_start: Hyperparameters | None = None,
    pending: np.ndarray | None = None,
    noise: float | None = None,
) -> Proposal:
    """The next q distinct mixtures to evaluate, maximising y, none of them a `pending` one (points of `space`
    being evaluated: asynchronous proposals are conditioned on them).

    X: (n, d) observed points of `space` (default: plain weights over d domains; n may be 0); y: (n,)
    their objective, or (n, M) its parts. While n < n_initial (default q, at least 2) the batch comes from the
    initial design: `prior_center` first (MaD-Mix weights or the natural distribution; once, unless already
    observed), then Dirichlet draws around it (around uniform without one). After that: GP-UCB (ucb_batch)
    over a pool of `pool_size` Dirichlet candidates, the GP (fit_surrogate) fitted from `warm_start` (the
    previous round's `hyperparameters`) when given, with observation noise `noise` (fit_gp). `beta="srinivas"`
    uses srinivas_beta(t=n+1, |D|=pool_size). The result depends only on the arguments.
    """
    x, y, space = _check_observations(X, y, space)
    n, d = x.shape
    pending = np.empty((0, d)) if pending is None else np.asarray(pending, dtype=np.float64).reshape(-1, d)
    if not 1 <= q <= pool_size:
        raise ValueError(f"q must be between 1 and pool_size ({pool_size}), got {q}")
    if beta != "srinivas" and not (isinstance(beta, Real) and beta > 0):
        raise ValueError(f"beta must be positive or 'srinivas', got {beta!r}")
    center = space.uniform() if prior_center is None else np.asarray(prior_center, dtype=np.float64)
    if center.shape != (d,):
        raise ValueError(f"prior_center must have {d} weights, got shape {center.shape}")
    center = space.feasible(center)
    # The draws depend on how many observations there are, so each round gets fresh ones.
    rng = np.random.default_rng([seed, n])
    if n < max(q if n_initial is None else n_initial, 2):
        taken = np.concatenate([x, pending])
        return Proposal(_initial_design(taken, q, center, prior_center is not None, space, rng), None, None)

    with _torch_seeded(int(rng.integers(2**63))):
        model = fit_surrogate(x, y, warm_start, noise)
        observed_mean, _ = _predict(model, x)
        pool = _candidate_pool(x[np.argmax(observed_mean)], center, space, pool_size, rng)
        beta_t = srinivas_beta(n + 1, pool_size) if beta == "srinivas" else float(beta)
        weights = pool[ucb_batch(model, pool, q, beta_t, int(rng.integers(2**31)), pending)]
    mean, std = _predict(model, weights)
    return Proposal(weights, mean, std, hyperparameters(model))


def posterior_at_observations(
    X: np.ndarray, y: np.ndarray, *, seed: int, space: MixtureSpace | None = None, noise: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The GP's posterior mean and std (y units, without observation noise) at each observed point."""
    x, y, _ = _check_observations(X, y, space)
    if x.shape[0] < 2:
        raise ValueError("a posterior needs at least 2 observations")
    with _torch_seeded(seed):
        return _predict(fit_gp(x, y, noise=noise), x)


def posterior_best(
    X: np.ndarray, y: np.ndarray, *, seed: int, space: MixtureSpace | None = None, noise: float | None = None
) -> tuple[int, float, float]:
    """The observed point with the best GP posterior mean (robust to noise): index, mean, std in y units."""
    mean, std = posterior_at_observations(X, y, seed=seed, space=space, noise=noise)
    best = int(np.argmax(mean))
    return best, float(mean[best]), float(std[best])
