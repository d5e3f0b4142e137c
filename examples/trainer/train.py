"""A trainer of your own, run by Mixtura under the trainer contract (docs/trainer-contract.md).

Written as a team would write one: its own data reading, its own model (a small character-level captioner in
plain torch), its own metrics. From Mixtura it takes only the run (`TrainerRun.from_env()`: the mixture, step
budget, seed, output) and the sampler that draws (domain, index) keys by the proposed weights.

Run by `mixtura run examples/trainer/search.yaml` (from the repository root, after `mixtura demo-data demo-data`).
"""

from __future__ import annotations

import io
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mixtura_jobs.training.trainer_run import TrainerRun
from mixtura_operator.store import open_store

BATCH, MAX_CHARS, HIDDEN = 16, 48, 128
HELDOUT_FRACTION = 0.2


def load_domain(uri: str, cache: Path) -> dict[str, np.ndarray]:
    """Our corpus format: npz shards of prompts, answers and optional images/videos (file:// or s3://), and
    each sample's key as Mixtura names npz samples (`<shard stem>/<row>`), for the mixture's cells."""
    folder = Path(uri.removeprefix("file://")) if uri.startswith("file://") else open_store(uri).download_dir("", cache)
    parts = []
    for shard in sorted(folder.glob("shard-*.npz")):
        with np.load(shard) as arrays:
            part = dict(arrays)
        parts.append({**part, "keys": np.array([f"{shard.stem}/{i}" for i in range(len(part["prompts"]))])})
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def picture(data: dict[str, np.ndarray], index: int) -> np.ndarray:
    """8 x 8 grey thumbnail of the sample's image (a video's mean frame); zeros for text."""
    pixels = data["images"][index] if "images" in data else data["videos"][index].mean(0) if "videos" in data else None
    if pixels is None:
        return np.zeros(64, dtype=np.float32)
    grey = np.asarray(pixels, dtype=np.float32).mean(-1) / 255.0
    h, w = grey.shape
    return grey[: h // 8 * 8, : w // 8 * 8].reshape(8, h // 8, 8, w // 8).mean((1, 3)).ravel()


def encode(text: str) -> list[int]:
    return [min(ord(c), 127) for c in text[: MAX_CHARS - 1]] + [0]


class Captioner(nn.Module):
    """Image thumbnail + prompt characters -> a GRU that spells the answer."""

    def __init__(self) -> None:
        super().__init__()
        self.chars = nn.Embedding(128, HIDDEN)
        self.context = nn.Linear(64 + HIDDEN, HIDDEN)
        self.gru = nn.GRU(HIDDEN, HIDDEN, batch_first=True)
        self.out = nn.Linear(HIDDEN, 128)

    def forward(self, images: torch.Tensor, prompts: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
        prompt = self.chars(prompts).mean(1)
        state = torch.tanh(self.context(torch.cat([images, prompt], -1))).unsqueeze(0)
        inputs = self.chars(torch.nn.functional.pad(answers[:, :-1], (1, 0)))
        hidden, _ = self.gru(inputs, state)
        return self.out(hidden)


def batch(domains: dict[str, dict], keys: list[tuple[str, int]]) -> tuple[torch.Tensor, ...]:
    def pad(rows: list[list[int]]) -> torch.Tensor:
        return torch.tensor([r + [-1] * (MAX_CHARS - len(r)) for r in rows])

    images = torch.tensor(np.stack([picture(domains[d], i) for d, i in keys]))
    prompts = pad([encode(str(domains[d]["prompts"][i])) for d, i in keys]).clamp(min=0)
    answers = pad([encode(str(domains[d]["answers"][i])) for d, i in keys])
    return images, prompts, answers


def loss_and_hits(model: Captioner, images, prompts, answers) -> tuple[torch.Tensor, int, int]:
    logits = model(images, prompts, answers.clamp(min=0))
    mask = answers >= 0
    loss = nn.functional.cross_entropy(logits[mask], answers[mask])
    hits = int((logits.argmax(-1)[mask] == answers[mask]).sum())
    return loss, hits, int(mask.sum())


def heldout_split(name: str, n: int) -> np.ndarray:
    """The same held-out samples in every trial, whatever its seed."""
    return np.random.default_rng(zlib.crc32(name.encode())).permutation(n)[: max(1, int(n * HELDOUT_FRACTION))]


def heldout_metrics(model: Captioner, domains: dict[str, dict], heldout: dict[str, np.ndarray]) -> dict:
    """Held-out loss and per-character accuracy of each domain."""
    model.eval()
    heldout_loss, heldout_accuracy = {}, {}
    with torch.no_grad():
        for name, indices in heldout.items():
            loss, hits, chars = loss_and_hits(model, *batch(domains, [(name, int(i)) for i in indices]))
            heldout_loss[name], heldout_accuracy[name] = loss.item(), hits / chars
    model.train()
    return {"heldout_loss": heldout_loss, "heldout_accuracy": heldout_accuracy}


def main() -> None:
    run = TrainerRun.from_env()
    torch.manual_seed(run.seed)
    with tempfile.TemporaryDirectory() as tmp:
        domains = {d.name: load_domain(d.uri, Path(tmp) / d.name) for d in run.domains}
    keys = {name: data["keys"] for name, data in domains.items()}
    heldout = {name: heldout_split(name, len(k)) for name, k in keys.items()}
    sampler = run.sampler(keys, heldout)

    model = Captioner()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(1, run.steps + 1):
        loss, _, _ = loss_and_hits(model, *batch(domains, sampler.draw(BATCH)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 0 or step == run.steps:
            print(f"step={step} loss={loss.item():.4f}", flush=True)
        if step % 10 == 0 and step < run.steps:  # early stopping (spec.search.earlyStopping) reads these
            run.report_progress(step, heldout_metrics(model, domains, heldout))

    metrics = heldout_metrics(model, domains, heldout)
    run.report_progress(run.steps, metrics)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    run.output.put_bytes("model.pt", buffer.getvalue())
    run.write_metrics({**metrics, "steps": run.steps})
    run.succeed()


if __name__ == "__main__":
    main()
