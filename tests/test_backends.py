"""The hf model backend on tiny random LLaVA and Qwen2-VL checkpoints (made in code, saved with save_pretrained
to a temp dir and to the S3 server), driven as the jobs drive it: collation, answer-only loss, learning,
checkpoints, hidden-state embeddings, and the embed, score and proxy-train steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hf_checkpoints import save_llava, save_qwen2_vl

from mixtura_jobs.__main__ import main as jobs_main
from mixtura_jobs.data.demo import make_demo_corpus
from mixtura_jobs.data.npz_shards import DomainSamples, read_domain
from mixtura_jobs.data.samples import Sample
from mixtura_jobs.steps.cells import samples_drawn
from mixtura_jobs.steps.context import StepContext
from mixtura_jobs.steps.models import model_ref
from mixtura_jobs.training.backends import ModelRef, build_embedder, build_vlm_backend
from mixtura_jobs.training.device import Placement
from mixtura_jobs.training.tiny_vlm import IGNORE, sft_loss
from mixtura_operator import layout
from mixtura_operator.store import open_store
from pipeline_manifests import domain_set, mixture_search

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = Placement(torch.device("cpu"))
DOMAINS = ("digits", "text", "video")
MODELS = ("llava", "qwen2-vl")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {"llava": save_llava(root / "llava"), "qwen2-vl": save_qwen2_vl(root / "qwen2-vl")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[dict]:
    entries = make_demo_corpus(tmp_path_factory.mktemp("demo"), samples_per_domain=12, seed=0)
    return [d for d in entries if d["name"] in DOMAINS]


@pytest.fixture(scope="module")
def samples(corpus) -> dict[str, list[Sample]]:
    def domain(entry: dict) -> DomainSamples:
        return read_domain(entry["uri"].removeprefix("file://"))

    return {d["name"]: [domain(d).sample(i, f"{d['name']}/{i}") for i in range(4)] for d in corpus}


def backend(checkpoints: dict[str, Path], name: str, **config):
    return build_vlm_backend(ModelRef("hf", str(checkpoints[name]), config, "spec.models.proxy"), 0, CPU)


@pytest.mark.parametrize("name", MODELS)
def test_only_answer_tokens_are_scored(checkpoints, samples, name: str) -> None:
    hf = backend(checkpoints, name)
    rows = [samples["digits"][0], samples["text"][0], samples["video"][0]]
    batch = hf.collate(rows)
    tokenizer = hf.processor.tokenizer
    for row, sample in enumerate(rows):
        scored = batch.labels[row][batch.labels[row] != IGNORE]
        assert tokenizer.decode(scored) == sample.answer + "<|im_end|>\n"
    assert batch.visual_modality == ["image", None, "video"]
    pixel_keys = {k for k in batch.inputs if k.startswith("pixel_values")}
    assert pixel_keys == ({"pixel_values"} if name == "llava" else {"pixel_values", "pixel_values_videos"})
    # A row's loss does not depend on the rest of the batch (padding and visual tokens are masked).
    _, per_sample = sft_loss(*hf.answer_logprobs(batch))
    _, alone = sft_loss(*hf.answer_logprobs(hf.collate(rows[1:2])))
    torch.testing.assert_close(per_sample[1:2], alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_loss_on_a_fixed_batch_goes_down(checkpoints, samples, name: str) -> None:
    hf = backend(checkpoints, name)
    batch = hf.collate([s for rows in samples.values() for s in rows])
    optimizer = torch.optim.AdamW(hf.model.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        loss, _ = sft_loss(*hf.answer_logprobs(batch))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0


@pytest.mark.s3
def test_checkpoint_saved_to_s3_is_loaded_once_per_pod(
    checkpoints, samples, s3_server, s3_bucket, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("MIXTURA_CACHE", str(tmp_path / "cache"))
    local = backend(checkpoints, "qwen2-vl")
    local.save(tmp_path / "saved")  # what final-train writes: a save_pretrained directory `model/`
    store = open_store(f"s3://{s3_bucket}/checkpoints", s3_server.endpoint)
    store.upload_dir(tmp_path / "saved" / "model", "qwen2-vl")
    ref = ModelRef("hf", f"s3://{s3_bucket}/checkpoints/qwen2-vl", {}, "spec.models.target", s3_server.endpoint)
    remote = build_vlm_backend(ref, 0, CPU)
    batch = samples["digits"] + samples["video"]
    torch.testing.assert_close(
        remote.answer_logprobs(remote.collate(batch)), local.answer_logprobs(local.collate(batch))
    )
    store.delete_prefix("qwen2-vl")  # a second build in the same pod reads the cache, not the store
    assert build_vlm_backend(ref, 0, CPU).model.config.model_type == "qwen2_vl"


def test_missing_checkpoint_names_the_field(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"spec.models.target.path: .* does not exist"):
        build_vlm_backend(ModelRef("hf", str(tmp_path / "nothing"), {}, "spec.models.target"), 0, CPU)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"spec.models.target.path: .* is not a transformers image-text-to-text"):
        build_vlm_backend(ModelRef("hf", str(tmp_path / "empty"), {}, "spec.models.target"), 0, CPU)


@pytest.mark.parametrize("name", MODELS)
def test_hidden_state_embeddings_per_modality(checkpoints, samples, name: str) -> None:
    embedder = build_embedder(ModelRef("hf", str(checkpoints[name]), {}, "spec.models.embedding"), 0, CPU)
    image = embedder.embed(samples["digits"], ["image", "text"])
    text = embedder.embed(samples["text"], ["text"])
    video = embedder.embed(samples["video"], ["text", "video"])
    assert set(image) == {"image", "text"} and set(text) == {"text"} and set(video) == {"text", "video"}
    for parts in (image, text, video):
        for x in parts.values():
            assert x.shape == (4, 32) and x.dtype == np.float32 and np.allclose(np.linalg.norm(x, axis=1), 1)
    # The image and text parts pool different positions.
    assert not np.allclose(image["image"], image["text"])
    # The middle layer by default; another layer gives other embeddings.
    last = build_embedder(ModelRef("hf", str(checkpoints[name]), {"layer": -1}, "x"), 0, CPU)
    assert not np.allclose(last.embed(samples["text"], ["text"])["text"], text["text"])


def run_step(*argv: str) -> None:
    assert jobs_main(list(argv)) == 0


def search_store(tmp_path: Path, corpus: list[dict], models: dict, method: str = "madmix"):
    manifest = mixture_search(tmp_path / "artifacts", method=method, proxy_steps=20)
    manifest["spec"]["models"] = models
    manifest["spec"]["training"] = {"batchSize": 4, "learningRate": 1e-2, "warmupSteps": 2}
    manifest["spec"]["madmix"]["samplesPerDomain"] = 8
    store = open_store((tmp_path / "artifacts" / "root").as_uri())
    store.put_json(layout.SNAPSHOT, {"search": manifest, "domainSet": domain_set(corpus)})
    return store


@pytest.mark.slow
@pytest.mark.s3
@pytest.mark.parametrize("name", MODELS)
def test_steps_with_hf_models(checkpoints, corpus, s3_server, s3_bucket, tmp_path, monkeypatch, name: str) -> None:
    """embed -> score -> a 20-step proxy trial, the proxy loaded by the jobs from S3 (LLaVA from a local dir)."""
    monkeypatch.setenv("MIXTURA_CACHE", str(tmp_path / "cache"))
    path = str(checkpoints[name])
    if name == "qwen2-vl":
        open_store(f"s3://{s3_bucket}/models", s3_server.endpoint).upload_dir(checkpoints[name], name)
        path = f"s3://{s3_bucket}/models/{name}"
    models = {
        "embedding": {"backend": "hf", "path": path},
        "proxy": {"backend": "hf", "path": path},
        "target": {"backend": "hf", "path": path},
    }
    store = search_store(tmp_path, corpus, models)
    if name == "qwen2-vl":
        snapshot = store.get_json(layout.SNAPSHOT)
        snapshot["search"]["spec"]["artifacts"]["endpointUrl"] = s3_server.endpoint
        store.put_json(layout.SNAPSHOT, snapshot)
    uri = store.uri
    for domain in DOMAINS:
        run_step("embed", "--search-uri", uri, "--domain", domain)
    assert sorted(k for k in store.list("embeddings") if k.endswith(".samples.npy")) == [
        "embeddings/digits/image.samples.npy",
        "embeddings/digits/text.samples.npy",
        "embeddings/text/text.samples.npy",
        "embeddings/video/text.samples.npy",
        "embeddings/video/video.samples.npy",
    ]
    assert store.get_json(layout.embed_metrics("digits"))["backend"] == "hf"
    run_step("score", "--search-uri", uri)
    madmix = store.get_json(layout.MADMIX)
    assert set(madmix["weights"]) == set(DOMAINS) and sum(madmix["weights"].values()) == pytest.approx(1)

    store.put_json(layout.trial_mixture("000"), {"weights": dict.fromkeys(DOMAINS, 1 / 3)})
    run_step("proxy-train", "--search-uri", uri, "--trial", "000")
    metrics = store.get_json(layout.trial_metrics("000"))
    assert metrics["backend"] == "hf" and metrics["device"] == "cpu" and metrics["precision"] == "fp32"
    assert metrics["steps"] == 20 and set(metrics["heldout_loss"]) == set(DOMAINS)
    assert np.isfinite(metrics["objective"]) and metrics["train_loss"][-1] < metrics["train_loss"][0]
    print(json.dumps({k: metrics[k] for k in ("objective", "train_loss", "samples_per_second")}))


def test_a_tiny_checkpoint_loads_from_its_path(tmp_path) -> None:
    """`path` replaces the old `weights`: what the tiny backend saves (final/model.pt) loads again."""
    trained = build_vlm_backend(ModelRef(config={"preset": "proxy"}), 1, CPU)
    trained.save(tmp_path)
    for path in (tmp_path, tmp_path / "model.pt"):
        loaded = build_vlm_backend(ModelRef(path=str(path), config={"preset": "proxy"}), 2, CPU)
        expected = trained.model.state_dict()
        assert all(torch.equal(v, expected[k]) for k, v in loaded.model.state_dict().items())
    with pytest.raises(ValueError, match=r"spec.models.target.path: .* does not fit spec.models.target.config"):
        build_vlm_backend(ModelRef("tiny", str(tmp_path), {"preset": "target"}, "spec.models.target"), 0, CPU)


def test_model_roles_and_trainer_settings_from_the_spec(tmp_path, corpus) -> None:
    store = search_store(tmp_path, corpus, {"proxy": {"config": {"max_text_tokens": 64}}})
    ctx = StepContext.open(store.uri)
    # The target default really is the target preset (it used to be the proxy model).
    assert model_ref(ctx, "target") == ModelRef("tiny", None, {"preset": "target"}, "spec.models.target")
    assert model_ref(ctx, "proxy").config == {"preset": "proxy", "max_text_tokens": 64}
    assert model_ref(ctx, "embedding").config == {}
    settings = ctx.search.spec.training.trainer_config()
    assert (settings["batch_size"], settings["lr"], settings["warmup_steps"]) == (4, 1e-2, 2)
    assert samples_drawn(ctx.search.spec) == 20 * 4  # the cells' caps use the spec's batch size
