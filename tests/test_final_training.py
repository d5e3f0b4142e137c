"""Issue 14, the training side: the final training on several processes (torchrun, gloo), its checkpoints in the
store, and a restart that resumes from them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from boto3.s3.transfer import TransferConfig
from hf_checkpoints import save_llava

from mixtura_jobs.data.demo import make_demo_corpus
from mixtura_jobs.training.checkpointing import Checkpoints
from mixtura_jobs.training.distributed import World
from mixtura_jobs.training.tiny_vlm import build_vlm
from mixtura_operator import layout
from mixtura_operator.store import open_store
from mixtura_operator.store.s3 import S3Store
from pipeline_manifests import domain_set, mixture_search

WORKER = Path(__file__).parent / "trainers" / "mixture_trainer.py"
# Two processes sum the loss over their rows in another order than one: float32 rounding, nothing more.
LOSS_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("demo")
    return root, make_demo_corpus(root, samples_per_domain=24, seed=0)


def environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MIXTURA_THREADS": "1", "MIXTURA_CHECKPOINT_DIR": str(tmp_path / "local")}


def test_the_checkpoint_and_model_keys_of_the_final_training():
    assert layout.final_checkpoints() == "final/checkpoints"
    assert layout.final_checkpoints("uniform") == "final/uniform/checkpoints"
    assert layout.checkpoint_step(100) == "step-000100" and layout.checkpoint_step(12345678) == "step-12345678"
    assert [layout.checkpoint_step_number(f) for f in ("step-000100", "step-12345678", "latest", "step-1")] == [
        100,
        12345678,
        None,
        None,
    ]
    assert layout.final_model("hf") == "final/model" and layout.final_model("tiny") == "final/model.pt"
    # A final step run again (a new pick) must not resume the old run's checkpoints.
    assert "final/checkpoints/latest" in layout.reset_keys("final")
    assert "final/madmix/checkpoints/latest" in layout.reset_keys("final/madmix")
    assert not any("checkpoints" in key for key in layout.reset_keys("trial/001"))


def train(tmp_path: Path, corpus: Path, config: dict, processes: int, name: str) -> dict:
    """The worker alone, or `processes` ranks of it under torchrun; rank 0's metrics."""
    out = tmp_path / f"{name}.json"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    command = [*(launcher if processes > 1 else [sys.executable]), str(WORKER), str(corpus), str(out)]
    run = subprocess.run(
        [*command, json.dumps(config)], env=environment(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_follow_the_loss_curve_of_one_with_the_same_global_batch(tmp_path, corpus, strategy):
    """Acceptance 1: 30 steps, a loss per step; the two ranks take 4 rows each of the global batch of 8 (fsdp
    in two micro-batches of 2), one process all 8."""
    config = {"steps": 30, "batch_size": 8, "log_every": 1}
    one = train(tmp_path, corpus[0], config, 1, "one")
    distributed = {**config, "strategy": strategy, "gradient_accumulation": 2 if strategy == "fsdp" else 1}
    two = train(tmp_path, corpus[0], distributed, 2, "two")
    assert two["processes"] == 2 and one["processes"] == 1 and len(one["train_loss"]) == 30
    assert np.allclose(two["train_loss"], one["train_loss"], rtol=0, atol=LOSS_TOLERANCE)
    assert two["objective"] == pytest.approx(one["objective"], abs=LOSS_TOLERANCE)
    assert one["train_loss"][-1] < one["train_loss"][0]


@pytest.mark.slow
def test_an_hf_model_sharded_over_two_processes_trains_and_saves_as_one_process_does(tmp_path, corpus):
    """FSDP with the hf backend (a tiny random LLaVA): the loss curve of one process, and a save_pretrained
    model gathered from the shards that loads with transformers and equals one process's."""
    from transformers import AutoModelForImageTextToText

    llava = save_llava(tmp_path / "llava")
    config = {"steps": 4, "batch_size": 4, "log_every": 1, "model": {"backend": "hf", "path": str(llava)}}
    one = train(tmp_path, corpus[0], {**config, "save": str(tmp_path / "one")}, 1, "one")
    two = train(tmp_path, corpus[0], {**config, "save": str(tmp_path / "two"), "strategy": "fsdp"}, 2, "two")
    assert np.allclose(two["train_loss"], one["train_loss"], rtol=0, atol=LOSS_TOLERANCE)
    saved = [
        AutoModelForImageTextToText.from_pretrained(path)
        for path in (llava, *(tmp_path / r / "model" for r in ("one", "two")))
    ]
    initial, alone, sharded = (model.state_dict() for model in saved)
    assert alone.keys() == sharded.keys()
    # A weight no step used (the vision tower's last norm: LLaVA takes the features before it) has no gradient in
    # one process; under FSDP a zero one, so AdamW's weight decay moves it.
    unused = {k for k in alone if torch.equal(alone[k], initial[k])}
    assert (
        {"model.vision_tower.post_layernorm.weight"}
        <= unused
        <= {
            "model.vision_tower.post_layernorm.weight",
            "model.vision_tower.post_layernorm.bias",
        }
    )
    assert all(torch.allclose(alone[k], sharded[k], atol=1e-5) for k in alone if k not in unused)
    assert (tmp_path / "two" / "model" / "model.safetensors").exists()


def search_store(tmp_path: Path, corpus: list[dict], name: str, checkpoint_every: int):
    """A search whose final training (40 steps of the small model) can run as its Job would."""
    manifest = mixture_search(tmp_path / "artifacts", method="random", final_steps=40)
    manifest["spec"]["models"]["target"]["config"] = {"preset": "proxy"}
    manifest["spec"]["training"] = {"batchSize": 4}
    manifest["spec"]["finalTraining"] |= {"checkpointEvery": checkpoint_every, "keepCheckpoints": 2}
    store = open_store((tmp_path / name).as_uri())
    store.put_json(layout.SNAPSHOT, {"search": manifest, "domainSet": domain_set(corpus)})
    store.put_json(layout.FINAL_MIXTURE, {"weights": {d["name"]: 1 / len(corpus) for d in corpus}})
    return store


def final_train(tmp_path: Path, store) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mixtura_jobs", "final-train", "--search-uri", store.uri],
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_final_training_killed_at_step_k_resumes_from_its_last_checkpoint_with_the_same_result(tmp_path, corpus):
    """Acceptance 3: kill -9 once step 20 is logged (checkpoints every 5 steps), start the Job's command again:
    it logs `resumed at step K'` for the newest complete checkpoint, at or before the step it was killed at,
    and ends with the metrics of a run never interrupted (data order and RNGs restored)."""
    reference = search_store(tmp_path, corpus[1], "reference", checkpoint_every=0)
    assert final_train(tmp_path, reference).wait(timeout=300) == 0
    expected = reference.get_json(layout.FINAL_METRICS)

    store = search_store(tmp_path, corpus[1], "killed", checkpoint_every=5)
    job = final_train(tmp_path, store)
    seen = []
    for line in job.stdout:
        seen.append(line)
        if line.startswith("step=20 "):
            job.send_signal(signal.SIGKILL)
            break
    assert job.wait(timeout=60) == -signal.SIGKILL, "".join(seen)
    assert not store.exists(layout.success_marker("final"))
    checkpoints = store.child(layout.final_checkpoints())
    latest = checkpoints.get_bytes(layout.CHECKPOINT_LATEST).decode()
    resumed_at = layout.checkpoint_step_number(latest)
    # Step 20's line is printed before its checkpoint is saved: the kill may land before or after that save.
    assert resumed_at % 5 == 0 and 15 <= resumed_at < 40

    again = final_train(tmp_path, store)
    log = again.communicate(timeout=300)[0]
    assert again.returncode == 0, log
    assert f"resumed at step {resumed_at}\n" in log and "step=10 " not in log
    metrics = store.get_json(layout.FINAL_METRICS)
    assert metrics["resumed_at_step"] == resumed_at
    assert metrics["train_loss"] == pytest.approx(expected["train_loss"], abs=1e-6)
    assert metrics["heldout_loss"] == pytest.approx(expected["heldout_loss"], abs=1e-6)
    assert store.exists(layout.final_model("tiny")) and store.exists(layout.success_marker("final"))
    # The newest two checkpoints are kept; the final model is the product, no checkpoint after the last step.
    folders = {key.split("/")[0] for key in checkpoints.list() if "/" in key}
    assert folders == {layout.checkpoint_step(35), layout.checkpoint_step(30)}
    assert checkpoints.get_bytes(layout.CHECKPOINT_LATEST).decode() == layout.checkpoint_step(35)


@pytest.mark.s3
def test_a_checkpoint_larger_than_the_multipart_threshold_round_trips_through_s3(
    s3_server, s3_bucket, tmp_path, monkeypatch
):
    """Acceptance 5: the target model's checkpoint (12 MB with AdamW's moments) goes up in 5 MiB parts; loaded
    back into a fresh model and optimizer it is the same; older checkpoints beyond `keep` are deleted."""
    parts = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    root = S3Store(s3_bucket, "ns/search/uid", s3_server.endpoint, transfer=parts)
    store = root.child(layout.final_checkpoints())
    multipart: list[str] = []
    store.client.meta.events.register(
        "before-parameter-build.s3.CreateMultipartUpload", lambda params, **_: multipart.append(params["Key"])
    )

    def trained(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        model = build_vlm({"preset": "target"}, seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        optimizer.step()
        return model, optimizer

    model, optimizer = trained(0)
    monkeypatch.setenv("MIXTURA_CHECKPOINT_DIR", str(tmp_path / "local"))
    checkpoints = Checkpoints(store, every=10, keep=2, settings={"seed": 0}, world=World())
    for step in (10, 20, 30):
        checkpoints.save(step, model, optimizer, {"step": step})
    shard = f"{layout.checkpoint_step(30)}/__0_0.distcp"
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=f"{store.prefix}/{shard}")
    # A multipart object's ETag ends with its part count.
    assert head["ContentLength"] > 10 * 2**20 and head["ETag"].strip('"').endswith("-3")
    assert f"{store.prefix}/{shard}" in multipart
    assert {key.split("/")[0] for key in store.list() if "/" in key} == {"step-000020", "step-000030"}

    fresh, fresh_optimizer = trained(1)
    resumed = checkpoints.restore(fresh, fresh_optimizer)
    assert resumed.step == 30 and resumed.state == {"step": 30}
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in fresh.state_dict().items())
    moments = zip(optimizer.state.values(), fresh_optimizer.state.values(), strict=True)
    assert all(torch.equal(a["exp_avg"], b["exp_avg"]) and a["step"] == b["step"] for a, b in moments)
    other = Checkpoints(store, every=10, keep=2, settings={"seed": 1}, world=World())
    with pytest.raises(ValueError, match=r"step-000030: the checkpoint was written by a training of other settings"):
        other.restore(*trained(2))
