"""The proxy / final trainer: train a TinyVLM on a data mixture, then score it on held-out data per domain.

One loop in the nanoGPT manner; the caller owns the process settings (e.g. torch.set_num_threads).
"""

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np
import torch

from mixtura_jobs.data.batching import stack_parts
from mixtura_jobs.data.domain import DomainData, in_memory
from mixtura_jobs.data.npz_shards import DomainSamples
from mixtura_jobs.data.samples import Sample
from mixtura_jobs.data.streaming import Groups, mixture_data
from mixtura_jobs.training.tiny_vlm import TinyVLM, VLMBatch, build_vlm, sft_loss

DEFAULT_CONFIG: dict = {
    "steps": 60,
    "batch_size": 16,
    "lr": 3e-3,
    "min_lr_ratio": 0.1,  # cosine decay ends at lr * min_lr_ratio
    "warmup_steps": 5,
    "weight_decay": 0.01,
    "grad_clip": 1.0,
    "heldout_fraction": 0.2,
    "max_heldout_samples": 256,  # per domain: bounds evaluation time on large domains
    "shuffle_buffer": 2048,  # samples a streamed domain holds; smaller domains are held whole
    "eval_batch_size": 64,
    "log_every": 10,
    "model": None,  # a tiny_vlm config; None is the `proxy` preset
}

# augment(model, batch, step, rng, winner=(sum_logp, n_tokens)) -> (extra_loss, logs); `winner` is the clean
# batch's answer_logprobs, already computed for the SFT loss, so the hook need not run that forward again.
Augment = Callable[..., tuple[torch.Tensor, dict]]
T = TypeVar("T")


def sample_batch_indices(
    weights: dict[str, float], members: Mapping[str, Sequence[T]], batch_size: int, rng: np.random.Generator
) -> list[T]:
    """Draw each row's group (a domain, or a concept x task cell) by the mixture weights, then one of the
    group's (domain, index) samples uniformly."""
    unknown = sorted(set(weights) - set(members))
    if unknown:
        raise ValueError(f"mixture weights name unknown domains or cells: {unknown}")
    # Sorted names: the draw must not depend on the order the weights happen to be listed in.
    names = [g for g in sorted(weights) if weights[g] > 0 and len(members[g]) > 0]
    if not names:
        raise ValueError("the mixture puts no weight on any domain or cell that has samples")
    p = np.array([weights[g] for g in names], dtype=np.float64)
    picks = rng.choice(len(names), size=batch_size, p=p / p.sum())
    return [members[names[k]][int(rng.integers(len(members[names[k]])))] for k in picks]


def make_batch(model: TinyVLM, picks: list[tuple[str, Sample]]) -> VLMBatch:
    """Collate the picked (domain, sample)s, grouped by domain."""
    by_domain: dict[str, list[Sample]] = {}
    for name, sample in picks:
        by_domain.setdefault(name, []).append(sample)
    size = model.config["vision"]["image_size"]
    return model.collate([part for samples in by_domain.values() for part in stack_parts(samples, size)])


def evaluate(model: TinyVLM, heldout: dict[str, list[Sample]], batch_size: int) -> dict[str, float]:
    """Mean loss per answer token on each domain's held-out samples."""
    model.eval()
    losses = {}
    size = model.config["vision"]["image_size"]
    with torch.no_grad():
        for name, samples in heldout.items():
            nll, tokens = 0.0, 0
            for start in range(0, len(samples), batch_size):
                chunk = stack_parts(samples[start : start + batch_size], size)
                sum_logp, n_tokens = model.answer_logprobs(model.collate(chunk))
                nll -= float(sum_logp.sum())
                tokens += int(n_tokens.sum())
            losses[name] = nll / max(tokens, 1)
    model.train()
    return losses


def lr_at(step: int, cfg: dict) -> float:
    """Linear warm-up, then cosine decay to `min_lr_ratio` of the peak."""
    if step < cfg["warmup_steps"]:
        return cfg["lr"] * (step + 1) / cfg["warmup_steps"]
    progress = (step - cfg["warmup_steps"]) / max(1, cfg["steps"] - cfg["warmup_steps"])
    floor = cfg["lr"] * cfg["min_lr_ratio"]
    return floor + 0.5 * (cfg["lr"] - floor) * (1 + math.cos(math.pi * progress))


def train_on_mixture(
    domains: Mapping[str, DomainData | DomainSamples],
    weights: dict[str, float],
    config: dict,
    seed: int,
    on_log: Callable[[dict], None] | None = None,
    augment: Augment | None = None,
    groups: Mapping[str, Groups] | None = None,
    on_trained: Callable[[TinyVLM], None] | None = None,
) -> dict:
    """Train on `weights` over the train split of `domains`; return held-out losses and throughput.

    `weights` are per domain, or per group when `groups` gives each domain's samples a group (their
    concept x task cell, by sample key). Domains larger than `shuffle_buffer` samples stream (see
    `data.streaming`). `augment` (see `Augment`) adds a term to the SFT loss, e.g. MergeMix; its logs
    join each log line's dict. `on_trained` gets the trained model (e.g. to save a checkpoint). The objective
    is the mean held-out loss over all domains, weighted or not; lower is better.
    """
    cfg = {**DEFAULT_CONFIG, **config}
    data = {name: in_memory(name, d) if isinstance(d, DomainSamples) else d for name, d in domains.items()}
    mixture = mixture_data(
        data, groups, cfg["heldout_fraction"], cfg["max_heldout_samples"], cfg["shuffle_buffer"], seed
    )
    heldout, members = mixture.heldout, mixture.pools

    model = build_vlm(cfg["model"], seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    data_rng = np.random.default_rng(seed)
    # A separate stream, so an augmentation never changes which samples are drawn.
    augment_rng = np.random.default_rng([seed, 1])

    start = time.perf_counter()
    train_loss: list[float] = []
    window: list[float] = []
    for step in range(cfg["steps"]):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = make_batch(model, sample_batch_indices(weights, members, cfg["batch_size"], data_rng))
        sum_logp, n_tokens = model.answer_logprobs(batch)
        loss, _ = sft_loss(sum_logp, n_tokens)
        logs: dict = {}
        if augment is not None:
            extra, logs = augment(model, batch, step, augment_rng, winner=(sum_logp, n_tokens))
            loss = loss + extra
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        optimizer.step()

        window.append(loss.item())
        if (step + 1) % cfg["log_every"] == 0 or step + 1 == cfg["steps"]:
            mean_loss = sum(window) / len(window)
            window.clear()
            train_loss.append(mean_loss)
            rate = (step + 1) * cfg["batch_size"] / (time.perf_counter() - start)
            print(f"step={step + 1} loss={mean_loss:.4f} samples_per_s={rate:.1f}", flush=True)
            if on_log is not None:
                on_log({"step": step + 1, "loss": mean_loss, "samples_per_s": rate, **logs})
    train_seconds = time.perf_counter() - start

    heldout_loss = evaluate(model, heldout, cfg["eval_batch_size"])
    if on_trained is not None:
        on_trained(model)
    return {
        "heldout_loss": heldout_loss,
        "objective": sum(heldout_loss.values()) / len(heldout_loss),
        "train_loss": train_loss,
        "steps": cfg["steps"],
        "seconds": time.perf_counter() - start,
        "samples_per_second": cfg["steps"] * cfg["batch_size"] / train_seconds,
    }
