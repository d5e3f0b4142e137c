"""MaD-Mix scoring: the worked example of shared/methods/madmix.md and properties of the math."""

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixtura_jobs.search.madmix import domain_embedding, madmix_weights, multimodal_kernel

ATOL = 1e-6


def worked_example() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    # D has no image; its image row holds NaN to show that absent rows are never read.
    image = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.6, 0.8], [np.nan, np.nan, np.nan]])
    text = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, 0.6]])
    present = {"image": np.array([True, True, True, False]), "text": np.ones(4, dtype=bool)}
    return {"image": image, "text": text}, present


def test_worked_example_dual() -> None:
    embeddings, present = worked_example()
    kernel, delta = multimodal_kernel(embeddings, present)
    expected_kernel = [
        [2.00, 1.40, 0.00, 0.80],
        [1.40, 2.00, 1.16, 0.96],
        [0.00, 1.16, 2.00, 0.60],
        [0.80, 0.96, 0.60, 1.00],
    ]
    np.testing.assert_allclose(kernel, expected_kernel, atol=ATOL)
    np.testing.assert_array_equal(delta, [2, 2, 2, 1])
    r = madmix_weights(embeddings, present, lam=0.5, tau=1.0)
    np.testing.assert_allclose(r.kernel, expected_kernel, atol=ATOL)
    np.testing.assert_allclose(r.alpha, [0.844730, -0.019959, 0.834425, -0.104852], atol=ATOL)
    np.testing.assert_allclose(r.scores, [1.577635, 2.009979, 1.582787, 1.052426], atol=ATOL)
    np.testing.assert_allclose(r.weights, [0.241694, 0.372418, 0.242942, 0.142946], atol=ATOL)


def test_worked_example_leverage() -> None:
    embeddings, present = worked_example()
    r = madmix_weights(embeddings, present, lam=0.5, tau=1.0, score="leverage")
    np.testing.assert_allclose(r.scores, [0.646152, 0.556797, 0.698210, 0.525467], atol=ATOL)
    np.testing.assert_allclose(r.weights, [0.259452, 0.237275, 0.273317, 0.229956], atol=ATOL)


def test_domain_without_modality_is_refused_by_name() -> None:
    embeddings, present = worked_example()
    present["text"] = np.array([True, True, True, False])
    with pytest.raises(ValueError, match=r"domain 3 \('D'\) has no modality"):
        madmix_weights(embeddings, present, domain_names=["A", "B", "C", "D"])
    with pytest.raises(ValueError, match="domain 3 has no modality"):
        multimodal_kernel(embeddings, present)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lam": 0.0}, "lam must be positive"),
        ({"tau": -1.0}, "tau must be positive"),
        ({"score": "x"}, "score"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict, message: str) -> None:
    embeddings, present = worked_example()
    with pytest.raises(ValueError, match=message):
        madmix_weights(embeddings, present, **kwargs)


def test_unknown_or_mismatched_modalities_are_refused() -> None:
    embeddings, present = worked_example()
    with pytest.raises(ValueError, match="unknown modalities"):
        multimodal_kernel({**embeddings, "audio": embeddings["text"]}, {**present, "audio": present["text"]})
    with pytest.raises(ValueError, match="same modalities"):
        multimodal_kernel(embeddings, {"text": present["text"]})


def test_domain_embedding_is_unit_mean_of_unit_samples() -> None:
    samples = np.array([[3.0, 0.0], [0.0, 0.5], [10.0, 10.0]])
    np.testing.assert_allclose(domain_embedding(samples, max_samples=2), [2**-0.5, 2**-0.5])
    full = domain_embedding(samples)
    assert np.isclose(np.linalg.norm(full), 1.0)
    np.testing.assert_allclose(domain_embedding(7.0 * samples), full)
    with pytest.raises(ValueError, match="zero vector"):
        domain_embedding(np.array([[1.0, 0.0], [-1.0, 0.0]]))


@dataclass(frozen=True)
class Problem:
    embeddings: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    lam: float

    @property
    def k(self) -> int:
        return len(next(iter(self.present.values())))


@st.composite
def problems(
    draw: st.DrawFn,
    k_range: tuple[int, int] = (2, 12),
    dim_range: tuple[int, int] = (1, 6),
    video: bool | None = None,
) -> Problem:
    """Domains with image and text (video if asked, else sometimes), each holding at least one modality."""
    k = draw(st.integers(*k_range))
    with_video = draw(st.booleans()) if video is None else video
    modalities = ["image", "text"] + (["video"] if with_video else [])
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    embeddings, present = {}, {}
    for v in modalities:
        embeddings[v] = rng.normal(size=(k, draw(st.integers(*dim_range))))
        present[v] = np.array(draw(st.lists(st.booleans(), min_size=k, max_size=k)))
    present["text"] |= ~np.any(list(present.values()), axis=0)
    lam = draw(st.floats(0.05, 100.0))
    return Problem(embeddings, present, lam)


SCORES = ("dual", "leverage")


@settings(max_examples=60, deadline=None)
@given(problems(), st.data())
def test_permuting_domains_permutes_scores_and_weights(p: Problem, data: st.DataObject) -> None:
    perm = np.array(data.draw(st.permutations(range(p.k))))
    for score in SCORES:
        base = madmix_weights(p.embeddings, p.present, lam=p.lam, score=score)
        permuted = madmix_weights(
            {v: e[perm] for v, e in p.embeddings.items()},
            {v: m[perm] for v, m in p.present.items()},
            lam=p.lam,
            score=score,
        )
        np.testing.assert_allclose(permuted.scores, base.scores[perm], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(permuted.weights, base.weights[perm], rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(problems(), st.floats(0.01, 100.0))
def test_weights_are_positive_and_sum_to_one(p: Problem, tau: float) -> None:
    for score in SCORES:
        w = madmix_weights(p.embeddings, p.present, lam=p.lam, tau=tau, score=score).weights
        assert np.all(w > 0)
        assert abs(w.sum() - 1.0) < 1e-12


@settings(max_examples=60, deadline=None)
@given(problems(video=False), st.integers(1, 40))
def test_modality_no_domain_has_changes_nothing(p: Problem, dim: int) -> None:
    extended = {**p.embeddings, "video": np.full((p.k, dim), np.nan)}
    extended_present = {**p.present, "video": np.zeros(p.k, dtype=bool)}
    for score in SCORES:
        base = madmix_weights(p.embeddings, p.present, lam=p.lam, score=score)
        more = madmix_weights(extended, extended_present, lam=p.lam, score=score)
        for field in ("kernel", "delta", "alpha", "scores", "weights"):
            np.testing.assert_allclose(getattr(more, field), getattr(base, field), rtol=1e-9, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(problems(), st.floats(1e-3, 1e3))
def test_leverage_is_invariant_to_scaling_kernel_and_lambda_together(p: Problem, c: float) -> None:
    base = madmix_weights(p.embeddings, p.present, lam=p.lam, score="leverage")
    # Scaling every embedding by sqrt(c) scales K_MM by c.
    scaled = {v: np.sqrt(c) * e for v, e in p.embeddings.items()}
    other = madmix_weights(scaled, p.present, lam=c * p.lam, score="leverage")
    np.testing.assert_allclose(other.kernel, c * base.kernel, rtol=1e-9, atol=1e-9 * c)
    np.testing.assert_allclose(other.scores, base.scores, rtol=1e-7, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(problems(k_range=(7, 16), dim_range=(1, 2)))
def test_primal_direct_and_eigendecomposition_agree(p: Problem) -> None:
    """sum d < k here, so the public function takes the primal form; zero columns force the direct solve."""
    primal = {score: madmix_weights(p.embeddings, p.present, lam=p.lam, score=score) for score in SCORES}
    padded = {**p.embeddings, "image": np.pad(p.embeddings["image"], ((0, 0), (0, p.k)))}
    direct = {score: madmix_weights(padded, p.present, lam=p.lam, score=score) for score in SCORES}
    sigma, u = np.linalg.eigh(primal["dual"].kernel)
    shrink = sigma / (sigma + p.lam)  # spectral soft-thresholding of K_MM
    delta = primal["dual"].delta
    eig = {
        "dual": u @ (shrink * (u.T @ delta)),
        "leverage": np.einsum("ij,j,ij->i", u, shrink, u),
    }
    eig_alpha = u @ ((u.T @ delta) / (sigma + p.lam))
    for score in SCORES:
        np.testing.assert_allclose(primal[score].scores, eig[score], rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(direct[score].scores, eig[score], rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(primal[score].alpha, eig_alpha, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(direct[score].alpha, eig_alpha, rtol=1e-7, atol=1e-8)
