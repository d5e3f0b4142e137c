"""Surrogate and acquisition variants for many sparse domains (issue 16), measured against the kept GP-UCB.

`GP-UCB` is the kept one (`gp_ucb.fit_surrogate`: where the target is the mean of several columns, one GP per
column and their sum). None of the others is in jobs/search: each lost on some swarm (README, "Surrogate
study"). The bench keeps them so the numbers can be rerun. Every other variant is one GP on the target
(`gp_ucb.fit_gp`: Matérn-5/2 ARD on the weights and their LogRatio coordinates; `GP-UCB (one GP on the mean)`,
kept before) with one change:
- `+ linear kernel`: plus a linear kernel on the weights (Bayesian linear regression, RegMix's linear form);
- `+ log-linear kernel`: plus a linear kernel on the log-ratio coordinates (a power law in the weights);
- `+ additive kernel`: plus a sum of one-dimensional Matérn kernels, one per weight (shared lengthscale);
- `LOO selection`: the GP with or without the linear kernel, whichever has the better leave-one-out likelihood;
- `Thompson sampling`: a batch of joint posterior draws over the shortlist instead of qUCB;
- `qLogNEI`: batch noisy expected improvement instead of qUCB;
- `MAP-SAAS (weights + log-ratios)`, `MAP-SAAS (log-ratios)`: botorch's MAP version of the sparse axis-aligned
  subspace prior (half-Cauchy on the inverse lengthscales, few inputs matter) on those inputs, instead of the
  dimension-scaled log-normal prior;
- `additive MAP-SAAS`: botorch's sum of MAP-SAAS Matérn kernels with four levels of sparsity;
- `batch by posterior mean`: the kept qUCB batch, ordered by the posterior mean (the order the metric counts in,
  as the regression orders its batch by its predictions);
- `posterior-mean pick first`: the candidate of best posterior mean first, then qUCB with it pending; the batch
  by posterior mean (and the same with `+ linear kernel` and `+ log-linear kernel`);
- `+ log-linear kernel per column`, `+ linear kernel per column`, `+ both linear kernels per column`: the kept
  GP-UCB's per-column GPs, each with the log-linear kernel, the linear one, or both;
- `+ mixing-law mean per column`: the per-column GPs, each with a data mixing law as its prior mean
  (MixingLawMean), the GP on what the law misses;
- `log-warped per column`: the per-column GPs fitted to log(loss - floor) (output warping, the law made
  linear where the floor is its constant), the batch by Monte Carlo qUCB on the sum of the unwarped draws;
- `isotropic Matérn per block per column`: the per-column GPs with one isotropic Matérn on the weights times one
  on the log-ratios (2 lengthscales, for few runs in many dimensions) instead of ARD; `ARD + isotropic Matérn per
  column`: the sum of the two, each with its output scale;
- `log-warped + linear kernel per column`: `log-warped per column` with the linear kernel on the weights (the
  synthetic law's exact form: log(loss - c) is linear in the weights);
- `qLogNEI per column`: the kept per-column GPs, the batch by qLogNEI on their sum instead of qUCB;
- `RBF instead of Matérn per column`: the per-column GPs with a squared-exponential kernel under the same
  dimension-scaled prior (botorch's default, Hvarfner et al. 2024) instead of the Matérn-5/2;
- `shared kernel per column`: the per-column GPs with one Matérn shared by all, its lengthscales fitted to every
  column at once (the sum of their marginal likelihoods);
- `MAP-SAAS (log-ratios) per column`, `MAP-SAAS (weights + log-ratios) per column`: botorch's MAP-SAAS GP on
  those inputs fitted to each score column, summed as the kept GP-UCB sums its per-column GPs;
- `+ MinMax kernel per column`: the per-column GPs with the MinMax kernel on the weights (MinMaxKernel, no
  lengthscale) beside the Matérn, each with its own output scale;
- `regression's pick last`, `posterior-mean pick last`: the kept GP-UCB's first q - 1 picks, the last slot the
  best unpicked candidate by RegMix's regression or by the GP's posterior mean (a hedge of one slot a batch);
- `tree ensemble UCB`: no GP; RegMix's LightGBM regressor fitted to ENSEMBLE bootstrap resamples of the runs, the
  batch the q candidates of best mean + sqrt(beta) * spread over the ensemble (a bagged-tree UCB).

Swarms: the three shipped ones and four held-out synthetic ones, written to a temporary folder by
synthetic_swarm.write_swarm (24, 40, 48 and 64 domains; seeds that no other bench uses). Per swarm and seed, the
search protocol of search_quality.py (shared first batch of 8, trials to a run within 1 % of the best, counted
after the first batch). Prints the median and mean over the seeds (and, with --per-seed, each seed's trials).

    python bench/surrogate_study.py --seeds 100-115 --variants "GP-UCB,+ linear kernel,regression (RegMix)"
"""

import argparse
import math
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from botorch.acquisition import MCAcquisitionFunction, qLogNoisyExpectedImprovement
from botorch.acquisition.objective import ScalarizedPosteriorTransform
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, SingleTaskGP
from botorch.models.map_saas import AdditiveMapSaasSingleTaskGP, get_map_saas_model
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from botorch.optim.fit import fit_gpytorch_mll_scipy
from botorch.sampling import SobolQMCNormalSampler
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import AdditiveKernel, AdditiveStructureKernel, Kernel, LinearKernel, MaternKernel, ScaleKernel
from gpytorch.means import Mean
from gpytorch.mlls import ExactMarginalLogLikelihood, SumMarginalLogLikelihood
from gpytorch.priors import GammaPrior, LogNormalPrior, NormalPrior
from search_quality import (
    DEFAULT_RUNS,
    DEFAULT_TARGET,
    Setup,
    _model_proposer,
    listed,
    run_search,
    seed_range,
    trials_to_hit,
)
from synthetic_swarm import write_swarm

from mixtura_jobs.data.recorded_runs import Layout, Pool, join_pools, load_pool
from mixtura_jobs.search.gp_ucb import (
    DTYPE,
    FIT_MAXITER,
    MC_SAMPLES,
    SHORTLIST_PER_POINT,
    LogRatio,
    SumOfGPs,
    _near,
    fit_surrogate,
    ucb_batch,
)
from mixtura_jobs.search.gp_ucb import _predict as predict
from mixtura_jobs.search.regmix import regressor
from pool_search import gp_ucb_pool_batch, regression_pool_batch

BENCH_DATA = Path(__file__).resolve().parent / "data"
# Held-out swarms (domains, runs, seed): other sizes and seeds than the shipped mixlaw-32 and mixlaw-64.
HELD_OUT = ((24, 256, 1024), (40, 512, 1040), (48, 384, 1048), (64, 384, 2064))
MIXLAW = Layout(target=tuple(f"loss_{j}" for j in range(4)), id_column="run_id", weight_prefix="w_")
BUDGET = 96
BETA = 2.0


def _block(d: int, dims: torch.Tensor) -> MaternKernel:
    """An isotropic Matérn-5/2 on `dims` (one block of d inputs), one lengthscale with the prior and bound of
    botorch's dimension-scaled ARD kernel for d inputs (no output scale, as there: the outcomes are standardised)."""
    prior = LogNormalPrior(math.sqrt(2.0) + 0.5 * math.log(d), math.sqrt(3.0))
    return MaternKernel(nu=2.5, active_dims=dims, lengthscale_prior=prior, lengthscale_constraint=GreaterThan(0.025))


class MinMaxKernel(Kernel):
    """k(w, v) = sum_i min(w_i, v_i) / sum_i max(w_i, v_i) on the weights (the first d inputs): the Ruzicka
    (MinMax, Tanimoto on counts) kernel, positive definite on non-negative vectors (Ralaivola et al. 2005). On
    the simplex it is (1 - TV) / (1 + TV) of the total variation distance: how much of two mixtures is the same
    data, with no lengthscale to fit from few runs in many dimensions."""

    has_lengthscale = False

    def __init__(self, d: int) -> None:
        super().__init__()
        self.d = d

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params: object) -> torch.Tensor:
        a, b = x1[..., : self.d], x2[..., : self.d]
        if not diag:  # every pair of rows, not the rows side by side
            a, b = a.unsqueeze(-2), b.unsqueeze(-3)
        return torch.minimum(a, b).sum(-1) / torch.maximum(a, b).sum(-1)


def _kernel(d: int, extra: str | None) -> Kernel:
    """GP-UCB's Matérn on the 2d transformed inputs (weights, then log-ratios), plus `extra`: a linear or an
    additive kernel on the weights, a linear one on the log-ratios, or both linear ones; or, `RBF`, an RBF kernel
    with the same prior instead of it; or, `isotropic`,
    instead of it the product of one isotropic Matérn on each block (2 lengthscales for 2d ARD ones); or,
    `ARD + isotropic`, the sum of both, each with its own output scale."""
    weights = torch.arange(d)
    if extra == "RBF":
        return get_covar_module_with_dim_scaled_prior(2 * d, use_rbf_kernel=True)
    if extra == "isotropic":
        return _block(d, weights) * _block(d, weights + d)
    matern = get_covar_module_with_dim_scaled_prior(2 * d, use_rbf_kernel=False)
    if extra is None:
        return matern
    if extra == "ARD + isotropic":
        return AdditiveKernel(ScaleKernel(matern), ScaleKernel(_kernel(d, "isotropic")))
    if extra == "MinMax":
        return AdditiveKernel(ScaleKernel(matern), ScaleKernel(MinMaxKernel(d)))
    linear = {"linear": [weights], "log-linear": [weights + d], "both linear": [weights, weights + d]}
    if extra in linear:
        kernels = [LinearKernel(active_dims=dims, variance_prior=GammaPrior(2.0, 0.5)) for dims in linear[extra]]
        return AdditiveKernel(matern, *kernels)
    one_dimensional = MaternKernel(nu=2.5, lengthscale_prior=LogNormalPrior(math.log(0.3), 1.0))
    return AdditiveKernel(matern, ScaleKernel(AdditiveStructureKernel(one_dimensional, d, active_dims=weights)))


class MixingLawMean(Mean):
    """m(w) = c + k exp(sum_i t_i w_i), the data mixing law of Ye et al. (2024), t_i ~ N(0, 2) a priori, on the
    weights (the first d of LogRatio's 2d inputs), fitted with the GP by marginal likelihood."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.d = d
        self.register_parameter("constant", torch.nn.Parameter(torch.zeros(1, dtype=DTYPE)))
        # k starts away from 0, where the rates would get no gradient.
        self.register_parameter("scale", torch.nn.Parameter(torch.full((1,), 0.1, dtype=DTYPE)))
        self.register_parameter("rates", torch.nn.Parameter(torch.zeros(d, dtype=DTYPE)))
        self.register_prior("rates_prior", NormalPrior(0.0, 2.0), "rates")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.constant + self.scale * torch.exp(x[..., : self.d] @ self.rates)


def _unfitted(x: np.ndarray, y: np.ndarray, kernel: Kernel, mean: Mean | None = None) -> SingleTaskGP:
    """A GP on the weights and their LogRatio coordinates with `kernel` (and `mean`), y (m,) standardised."""
    return SingleTaskGP(
        torch.as_tensor(x, dtype=DTYPE),
        torch.as_tensor(y, dtype=DTYPE).unsqueeze(-1),
        mean_module=mean,
        covar_module=kernel,
        outcome_transform=Standardize(m=1),
        input_transform=LogRatio(keep_weights=True),
    )


def _fit(x: np.ndarray, y: np.ndarray, extra: str | None = None) -> SingleTaskGP:
    """The one GP of the study's variants: with _kernel(d, extra), or, with extra "mixing-law", the Matérn alone
    over MixingLawMean."""
    law = extra == "mixing-law"
    model = _unfitted(x, y, _kernel(x.shape[1], None if law else extra), MixingLawMean(x.shape[1]) if law else None)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": FIT_MAXITER}})
    return model.eval()


def _each_column(fit: Callable[[np.ndarray], SingleTaskGP], y: np.ndarray) -> SingleTaskGP | SumOfGPs:
    """fit on each score column of y (m, M), summed as GP-UCB sums its per-column GPs (on y (m,), one fit)."""
    return fit(y) if y.ndim == 1 else SumOfGPs([fit(column) for column in y.T])


def _fit_each(x: np.ndarray, y: np.ndarray, extra: str) -> SingleTaskGP | SumOfGPs:
    """_fit with `extra` on each score column of y."""
    return _each_column(lambda column: _fit(x, column, extra), y)


def _fit_shared(x: np.ndarray, y: np.ndarray) -> SingleTaskGP | SumOfGPs:
    """The kept per-column GPs with one Matérn kernel shared by all: its 2d lengthscales fitted to every column at
    once (the sum of their marginal likelihoods), so M columns give M times the runs to fit them from; each
    column keeps its own noise and standardisation. On y (m,), the kept GP."""
    if y.ndim == 1:
        return fit_surrogate(x, y)
    kernel = _kernel(x.shape[1], None)
    parts = [_unfitted(x, column, kernel) for column in y.T]
    models = ModelListGP(*parts)
    mll = SumMarginalLogLikelihood(models.likelihood, models).train()
    fit_gpytorch_mll_scipy(mll, options={"maxiter": FIT_MAXITER})
    mll.eval()
    return SumOfGPs(parts)


def loo_log_likelihood(model: SingleTaskGP) -> float:
    """Sum of the leave-one-out predictive log densities of the standardised targets (closed form,
    Rasmussen & Williams 5.4.2)."""
    inputs, targets = model.train_inputs[0], model.train_targets
    with torch.no_grad():
        noisy = model.covar_module(inputs).to_dense() + model.likelihood.noise * torch.eye(len(targets), dtype=DTYPE)
        precision = torch.linalg.inv(noisy)
        variance = 1.0 / precision.diagonal()
        residual = (precision @ targets) * variance
        return float(torch.sum(-0.5 * torch.log(2 * math.pi * variance) - 0.5 * residual**2 / variance))


def _saas(inputs: torch.Tensor, y: np.ndarray, additive: bool) -> SingleTaskGP:
    """A MAP-SAAS GP (or botorch's additive one) on `inputs`, already transformed (botorch builds these kernels
    for the inputs it is given)."""
    targets = torch.as_tensor(y, dtype=DTYPE).unsqueeze(-1)
    if additive:
        model = AdditiveMapSaasSingleTaskGP(inputs, targets, outcome_transform=Standardize(m=1))
    else:
        model = get_map_saas_model(inputs, targets, outcome_transform=Standardize(m=1))
    fit_gpytorch_mll(
        ExactMarginalLogLikelihood(model.likelihood, model), optimizer_kwargs={"options": {"maxiter": 200}}
    )
    return model.eval()


def saas_batch(
    x: np.ndarray, y: np.ndarray, candidates: np.ndarray, q: int, seed: int, keep_weights: bool, additive: bool = False
) -> np.ndarray:
    """qUCB over the candidates with MAP-SAAS GPs on the LogRatio coordinates (after the weights when
    `keep_weights`): one on y (m,), or one per score column of y (m, M), summed as GP-UCB sums its parts."""
    features = LogRatio(keep_weights=keep_weights)
    inputs = features.transform(torch.as_tensor(x, dtype=DTYPE))
    model = _each_column(lambda column: _saas(inputs, column, additive), y)
    return ucb_batch(model, features.transform(torch.as_tensor(candidates, dtype=DTYPE)).numpy(), q, BETA, seed)


def by_mean(model: SingleTaskGP, candidates: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """The batch (indices into candidates) ordered by the posterior mean, best first."""
    mean, _ = predict(model, candidates[batch])
    return batch[np.argsort(-mean, kind="stable")]


def mean_first_batch(model: SingleTaskGP, candidates: np.ndarray, q: int, seed: int) -> np.ndarray:
    """The candidate of best posterior mean, then q - 1 by qUCB with it pending; ordered by posterior mean."""
    mean, _ = predict(model, candidates)
    best = int(np.argmax(mean))
    others = np.delete(np.arange(len(candidates)), best)
    rest = others[ucb_batch(model, candidates[others], q - 1, BETA, seed, pending=candidates[best : best + 1])]
    return by_mean(model, candidates, np.concatenate([[best], rest]))


def _shortlist(model: SingleTaskGP, candidates: np.ndarray, q: int) -> np.ndarray:
    """The SHORTLIST_PER_POINT * q candidates with the best mean + 2 std (as measured in the README)."""
    mean, std = predict(model, candidates)
    return np.argsort(-(mean + 2.0 * std), kind="stable")[: SHORTLIST_PER_POINT * q]


def thompson_batch(model: SingleTaskGP, candidates: np.ndarray, q: int) -> np.ndarray:
    """q distinct candidates, each the best of one joint posterior draw over all the candidates."""
    with torch.no_grad():
        draws = model.posterior(torch.as_tensor(candidates, dtype=DTYPE)).rsample(torch.Size([4 * q])).squeeze(-1)
    chosen: list[int] = []
    for draw in draws:
        draw[chosen] = -torch.inf
        chosen.append(int(torch.argmax(draw)))
        if len(chosen) == q:
            break
    return np.array(chosen)


def greedy_batch(acquisition: MCAcquisitionFunction, choices: torch.Tensor, q: int, points: np.ndarray) -> list[int]:
    """Rows of `choices` (m, d; the acquisition's inputs of the mixtures `points`) for a batch of q, picked one
    at a time, each the best given the earlier picks as pending points (botorch's optimize_acqf_discrete,
    sequential), for any MC acquisition (gp_ucb's greedy_ucb is qUCB's alone). Rows within SAME_MIXTURE_L1 of a
    pick are never picked again."""
    choices = choices.unsqueeze(-2)
    excluded = torch.zeros(len(choices), dtype=torch.bool)
    chosen: list[int] = []
    for _ in range(q):
        acquisition.set_X_pending(choices[chosen].squeeze(-2) if chosen else None)
        with torch.no_grad():
            values = acquisition(choices)
        values[excluded] = -torch.inf
        chosen.append(int(torch.argmax(values)))
        excluded |= torch.as_tensor(_near(points, points[chosen[-1:]]))
    return chosen


def qnei_batch(model: SingleTaskGP | SumOfGPs, x: np.ndarray, candidates: np.ndarray, q: int, seed: int) -> np.ndarray:
    """q candidates by greedy qLogNoisyExpectedImprovement over the UCB shortlist; on a SumOfGPs, of the sum of
    its parts' joint draws (botorch's ModelListGP, summed by a posterior transform)."""
    order = _shortlist(model, candidates, q)
    parts = isinstance(model, SumOfGPs)
    acquisition = qLogNoisyExpectedImprovement(
        ModelListGP(*model.parts) if parts else model,
        X_baseline=torch.as_tensor(x, dtype=DTYPE),
        sampler=SobolQMCNormalSampler(sample_shape=torch.Size([MC_SAMPLES]), seed=seed),
        posterior_transform=ScalarizedPosteriorTransform(torch.ones(len(model.parts), dtype=DTYPE)) if parts else None,
    )
    return order[greedy_batch(acquisition, torch.as_tensor(candidates[order], dtype=DTYPE), q, candidates[order])]


# The warped variant's floor below the lowest observed value of a column, as a share of the column's range.
WARP_MARGIN = 0.1


def _warped_draws(x: np.ndarray, y: np.ndarray, candidates: np.ndarray, extra: str | None = None) -> torch.Tensor:
    """MC_SAMPLES joint draws (MC_SAMPLES, m) of the objective at the candidates, from one GP (_fit with `extra`)
    per column of y (n,) or (n, M) fitted to g = log(s - floor), s = -column (a loss), floor WARP_MARGIN of its
    range below its least value; each draw is -sum over columns of (exp(g) + floor), the objective in y's units."""
    columns = y[:, None] if y.ndim == 1 else y
    total = torch.zeros(MC_SAMPLES, len(candidates), dtype=DTYPE)
    for column in columns.T:
        s = -column
        floor = s.min() - WARP_MARGIN * (s.max() - s.min()) - 1e-9
        model = _fit(x, np.log(s - floor), extra)
        with torch.no_grad():
            g = model.posterior(torch.as_tensor(candidates, dtype=DTYPE)).rsample(torch.Size([MC_SAMPLES]))
        total -= torch.exp(g.squeeze(-1)) + floor
    return total


def warped_ucb_batch(
    x: np.ndarray, y: np.ndarray, candidates: np.ndarray, q: int, seed: int, extra: str | None = None
) -> np.ndarray:
    """qUCB (botorch's form: the mean over draws of the set's largest mean + sqrt(beta pi / 2) |f - mean|) on
    _warped_draws, greedily over the SHORTLIST_PER_POINT * q candidates of best mean + sqrt(beta) std."""
    draws = _warped_draws(x, y, candidates, extra)
    mean, std = draws.mean(dim=0), draws.std(dim=0)
    order = torch.argsort(-(mean + math.sqrt(BETA) * std))[: SHORTLIST_PER_POINT * q]
    values = mean[order] + math.sqrt(BETA * math.pi / 2) * (draws[:, order] - mean[order]).abs()
    best = torch.full((MC_SAMPLES,), -torch.inf, dtype=DTYPE)
    chosen: list[int] = []
    for _ in range(q):
        gain = torch.maximum(best.unsqueeze(1), values).mean(dim=0)
        gain[chosen] = -torch.inf
        chosen.append(int(torch.argmax(gain)))
        best = torch.maximum(best, values[:, chosen[-1]])
    return order[chosen].numpy()


def with_last_pick(x: np.ndarray, y: np.ndarray, candidates: np.ndarray, q: int, seed: int, last: str) -> np.ndarray:
    """The kept GP-UCB's first q - 1 picks, then (`last`) the best unpicked candidate by the regression's
    prediction of the objective (RegMix's regressor) or by the GP's posterior mean: a hedge of one slot a batch."""
    model = fit_surrogate(x, y)
    chosen = ucb_batch(model, candidates, q - 1, BETA, seed)
    if last == "regression":
        objective = y if y.ndim == 1 else y.sum(axis=1)
        ranked = regressor(seed).fit(x, objective).predict(candidates)
    else:
        ranked, _ = predict(model, candidates)
    ranked[chosen] = -np.inf
    return np.append(chosen, int(np.argmax(ranked)))


ENSEMBLE = 8


def ensemble_ucb_batch(x: np.ndarray, y: np.ndarray, candidates: np.ndarray, q: int, seed: int) -> np.ndarray:
    """The q candidates of best mean + sqrt(BETA) * standard deviation of LightGBM regressors (RegMix's
    settings) fitted to bootstrap resamples of (x, y), best first."""
    rng = np.random.default_rng(seed)
    predictions = []
    for member in range(ENSEMBLE):
        rows = rng.integers(0, len(x), len(x))
        predictions.append(regressor(seed + member).fit(x[rows], y[rows]).predict(candidates))
    members = np.stack(predictions)
    score = members.mean(axis=0) + math.sqrt(BETA) * members.std(axis=0)
    return np.argsort(-score, kind="stable")[:q]


def _variant(pick: Callable[[np.ndarray, np.ndarray, np.ndarray, int, int], np.ndarray]) -> Callable[..., np.ndarray]:
    """A pool proposer from pick(x, y, candidates, q, seed), torch seeded as gp_ucb_pool_batch does."""

    def batch(x: np.ndarray, y: np.ndarray, candidates: np.ndarray, q: int, *, seed: int) -> np.ndarray:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return pick(x, y, candidates, q, seed)

    return batch


# What the per-column variants add to each column's GP (a kernel, or the mixing-law mean), and their names.
PER_COLUMN_KERNELS = {
    "log-linear": "+ log-linear kernel",
    "linear": "+ linear kernel",
    "both linear": "+ both linear kernels",
    "mixing-law": "+ mixing-law mean",
    "isotropic": "isotropic Matérn per block",
    "ARD + isotropic": "ARD + isotropic Matérn",
    "MinMax": "+ MinMax kernel",
    "RBF": "RBF instead of Matérn",
}
VARIANTS = {
    "GP-UCB": gp_ucb_pool_batch,
    "GP-UCB (one GP on the mean)": gp_ucb_pool_batch,
    "+ linear kernel": _variant(lambda x, y, c, q, s: ucb_batch(_fit(x, y, "linear"), c, q, BETA, s)),
    "+ log-linear kernel": _variant(lambda x, y, c, q, s: ucb_batch(_fit(x, y, "log-linear"), c, q, BETA, s)),
    "+ additive kernel": _variant(lambda x, y, c, q, s: ucb_batch(_fit(x, y, "additive"), c, q, BETA, s)),
    "LOO selection": _variant(
        lambda x, y, c, q, s: ucb_batch(max((_fit(x, y), _fit(x, y, "linear")), key=loo_log_likelihood), c, q, BETA, s)
    ),
    "Thompson sampling": _variant(lambda x, y, c, q, s: thompson_batch(_fit(x, y), c, q)),
    "qLogNEI": _variant(lambda x, y, c, q, s: qnei_batch(_fit(x, y), x, c, q, s)),
    "MAP-SAAS (weights + log-ratios)": _variant(lambda x, y, c, q, s: saas_batch(x, y, c, q, s, keep_weights=True)),
    "MAP-SAAS (log-ratios)": _variant(lambda x, y, c, q, s: saas_batch(x, y, c, q, s, keep_weights=False)),
    "additive MAP-SAAS": _variant(lambda x, y, c, q, s: saas_batch(x, y, c, q, s, keep_weights=True, additive=True)),
    "batch by posterior mean": _variant(
        lambda x, y, c, q, s: (lambda m: by_mean(m, c, ucb_batch(m, c, q, BETA, s)))(_fit(x, y))
    ),
    "posterior-mean pick first": _variant(lambda x, y, c, q, s: mean_first_batch(_fit(x, y), c, q, s)),
    "+ linear kernel, posterior-mean pick first": _variant(
        lambda x, y, c, q, s: mean_first_batch(_fit(x, y, "linear"), c, q, s)
    ),
    "+ log-linear kernel, posterior-mean pick first": _variant(
        lambda x, y, c, q, s: mean_first_batch(_fit(x, y, "log-linear"), c, q, s)
    ),
    "tree ensemble UCB": _variant(ensemble_ucb_batch),
    **{
        f"{name} per column": _variant(
            lambda x, y, c, q, s, extra=extra: ucb_batch(_fit_each(x, y, extra), c, q, BETA, s)
        )
        for extra, name in PER_COLUMN_KERNELS.items()
    },
    "log-warped per column": _variant(warped_ucb_batch),
    "MAP-SAAS (log-ratios) per column": _variant(lambda x, y, c, q, s: saas_batch(x, y, c, q, s, keep_weights=False)),
    "MAP-SAAS (weights + log-ratios) per column": _variant(
        lambda x, y, c, q, s: saas_batch(x, y, c, q, s, keep_weights=True)
    ),
    "log-warped + linear kernel per column": _variant(lambda x, y, c, q, s: warped_ucb_batch(x, y, c, q, s, "linear")),
    "shared kernel per column": _variant(lambda x, y, c, q, s: ucb_batch(_fit_shared(x, y), c, q, BETA, s)),
    "qLogNEI per column": _variant(lambda x, y, c, q, s: qnei_batch(fit_surrogate(x, y), x, c, q, s)),
    "regression's pick last": _variant(lambda x, y, c, q, s: with_last_pick(x, y, c, q, s, "regression")),
    "posterior-mean pick last": _variant(lambda x, y, c, q, s: with_last_pick(x, y, c, q, s, "mean")),
    "regression (RegMix)": regression_pool_batch,
}
# The variants fitted to each score column of a mean target (the others fit the mean).
PER_COLUMN = {
    "GP-UCB",
    "log-warped per column",
    "log-warped + linear kernel per column",
    "MAP-SAAS (log-ratios) per column",
    "MAP-SAAS (weights + log-ratios) per column",
    "qLogNEI per column",
    "shared kernel per column",
    "regression's pick last",
    "posterior-mean pick last",
    *(f"{name} per column" for name in PER_COLUMN_KERNELS.values()),
}


def swarms(folder: Path) -> dict[str, Pool]:
    """The shipped swarms and the held-out ones (written into `folder`)."""
    regmix = Layout(target=(DEFAULT_TARGET,))
    pools = {"RegMix": join_pools([load_pool(pair, regmix) for pair in DEFAULT_RUNS])}
    for name in ("mixlaw-32", "mixlaw-64"):
        pools[name] = load_pool([BENCH_DATA / name / "mixtures.csv", BENCH_DATA / name / "scores.csv"], MIXLAW)
    for domains, runs, seed in HELD_OUT:
        out = folder / f"mixlaw-{domains}-s{seed}"
        write_swarm(out, domains, runs, sets=4, noise=0.002, seed=seed)
        pools[out.name] = load_pool([out / "mixtures.csv", out / "scores.csv"], MIXLAW)
    return pools


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=seed_range, default=list(range(100, 108)), help="default: 100-107")
    parser.add_argument("--variants", help="comma-separated subset of: " + ", ".join(VARIANTS))
    parser.add_argument("--swarms", help="comma-separated subset of the swarm names (default: all)")
    parser.add_argument("--per-seed", action="store_true", help="also print each cell's trials seed by seed")
    args = parser.parse_args()
    chosen = listed(args.variants) if args.variants else list(VARIANTS)
    unknown = set(chosen) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    setup = Setup()
    with tempfile.TemporaryDirectory() as folder:
        pools = swarms(Path(folder))
    names = listed(args.swarms) if args.swarms else list(pools)
    if set(names) - set(pools):
        parser.error(f"unknown swarms {sorted(set(names) - set(pools))}; choose from {list(pools)}")
    print("| variant | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names))
    for variant in chosen:
        propose = _model_proposer(VARIANTS[variant], parts=variant in PER_COLUMN)
        cells, seeds = [], []
        for name in names:
            pool = pools[name]
            runs = [run_search(pool, propose, seed, BUDGET, setup.batch, setup) for seed in args.seeds]
            trials = [trials_to_hit(pool, asked, setup) for asked in runs]
            after = [BUDGET if t is None else max(t - setup.batch, 0) for t in trials]
            cells.append(f"{np.median(after):.1f} ({np.mean(after):.1f})")
            seeds.append(f"{variant}, {name}, seeds {', '.join(map(str, args.seeds))}: {', '.join(map(str, after))}")
        print(f"| {variant} | " + " | ".join(cells) + " |", flush=True)
        if args.per_seed:
            print("\n".join(seeds), flush=True)


if __name__ == "__main__":
    main()
