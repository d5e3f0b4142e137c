"""The proxy / final trainer: train a VLM (any model backend) on a data mixture, then score it on held-out
data per domain.

One loop in the nanoGPT manner; the caller owns the process settings (torch threads, the device: see
`device.configure_process`).
"""

import math
import time
from collections.abc import Callable, Mapping

import numpy as np
import torch

from mixtura_jobs.data.domain import DomainData, in_memory
from mixtura_jobs.data.npz_shards import DomainSamples
from mixtura_jobs.data.samples import Sample
from mixtura_jobs.data.sampling import sample_batch_indices
from mixtura_jobs.data.streaming import Groups, mixture_data
from mixtura_jobs.training.backends import ModelRef, VLMBackend, build_vlm_backend
from mixtura_jobs.training.device import Placement
from mixtura_jobs.training.tiny_vlm import sft_loss

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
    "eval_every": 0,  # > 0: held-out objective every this many steps, as `heldout_curve`
}

# augment(model, batch, step, rng, winner=(sum_logp, n_tokens)) -> (extra_loss, logs); `winner` is the clean
# batch's answer_logprobs, already computed for the SFT loss, so the hook need not run that forward again.
Augment = Callable[..., tuple[torch.Tensor, dict]]


def picked_samples(picks: list[tuple[str, Sample]]) -> list[Sample]:
    """The picked (domain, sample)s, grouped by domain in order of first pick."""
    by_domain: dict[str, list[Sample]] = {}
    for name, sample in picks:
        by_domain.setdefault(name, []).append(sample)
    return [sample for samples in by_domain.values() for sample in samples]


def evaluate(
    backend: VLMBackend, heldout: dict[str, list[Sample]], batch_size: int, placement: Placement
) -> dict[str, float]:
    """Mean loss per answer token on each domain's held-out samples."""
    backend.model.eval()
    losses = {}
    with torch.no_grad(), placement.autocast():
        for name, samples in heldout.items():
            nll, tokens = 0.0, 0
            for start in range(0, len(samples), batch_size):
                chunk = samples[start : start + batch_size]
                sum_logp, n_tokens = backend.answer_logprobs(backend.collate(chunk))
                nll -= float(sum_logp.sum())
                tokens += int(n_tokens.sum())
            losses[name] = nll / max(tokens, 1)
    backend.model.train()
    return losses


def _objective(heldout_loss: dict[str, float]) -> float:
    """The mean held-out loss over all domains, weighted or not; lower is better."""
    return sum(heldout_loss.values()) / len(heldout_loss)


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
    on_trained: Callable[[VLMBackend], None] | None = None,
    model: ModelRef | None = None,
    placement: Placement | None = None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
) -> dict:
    """Train on `weights` over the train split of `domains`; return held-out losses and throughput.

    `weights` are per domain, or per group when `groups` gives each domain's samples a group (their
    concept x task cell, by sample key). Domains larger than `shuffle_buffer` samples stream (see
    `data.streaming`). `augment` (see `Augment`) adds a term to the SFT loss, e.g. MergeMix; it gets the
    backend's torch model and its logs join each log line's dict. `on_trained` gets the trained backend (e.g. to
    save a checkpoint). `model` names the model (default: the tiny `proxy` preset), `placement` where it runs
    (default: the CPU in fp32). `on_eval` gets each `eval_every` evaluation (step, held-out loss per domain) as
    it is made, e.g. to report progress for early stopping. The objective is the mean held-out loss over all
    domains, weighted or not; lower is better.
    """
    model = model or ModelRef()
    placement = placement or Placement(torch.device("cpu"))
    cfg = {**DEFAULT_CONFIG, **config}
    data = {name: in_memory(name, d) if isinstance(d, DomainSamples) else d for name, d in domains.items()}
    mixture = mixture_data(
        data, groups, cfg["heldout_fraction"], cfg["max_heldout_samples"], cfg["shuffle_buffer"], seed
    )
    heldout, members = mixture.heldout, mixture.pools

    backend = build_vlm_backend(model, seed, placement)
    parameters = [p for p in backend.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    data_rng = np.random.default_rng(seed)
    # A separate stream, so an augmentation never changes which samples are drawn.
    augment_rng = np.random.default_rng([seed, 1])

    start = time.perf_counter()
    train_loss: list[float] = []
    curve: list[list[float]] = []
    # The curve's evaluations are left out of the training throughput.
    eval_seconds = 0.0

    def record_curve(step: int) -> None:
        nonlocal eval_seconds
        tick = time.perf_counter()
        losses = evaluate(backend, heldout, cfg["eval_batch_size"], placement)
        curve.append([step, _objective(losses)])
        eval_seconds += time.perf_counter() - tick
        if on_eval is not None:
            on_eval(step, losses)

    if cfg["eval_every"]:
        record_curve(0)
    window: list[float] = []
    for step in range(cfg["steps"]):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        picks = sample_batch_indices(weights, members, cfg["batch_size"], data_rng)
        batch = backend.collate(picked_samples(picks))
        with placement.autocast():
            sum_logp, n_tokens = backend.answer_logprobs(batch)
            loss, _ = sft_loss(sum_logp, n_tokens)
            logs: dict = {}
            if augment is not None:
                extra, logs = augment(backend.model, batch, step, augment_rng, winner=(sum_logp, n_tokens))
                loss = loss + extra
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, cfg["grad_clip"])
        optimizer.step()

        window.append(loss.item())
        if (step + 1) % cfg["log_every"] == 0 or step + 1 == cfg["steps"]:
            mean_loss = sum(window) / len(window)
            window.clear()
            train_loss.append(mean_loss)
            rate = (step + 1) * cfg["batch_size"] / (time.perf_counter() - start - eval_seconds)
            print(f"step={step + 1} loss={mean_loss:.4f} samples_per_s={rate:.1f}", flush=True)
            if on_log is not None:
                on_log({"step": step + 1, "loss": mean_loss, "samples_per_s": rate, **logs})
        if cfg["eval_every"] and (step + 1) % cfg["eval_every"] == 0 and step + 1 < cfg["steps"]:
            record_curve(step + 1)
    train_seconds = time.perf_counter() - start - eval_seconds

    heldout_loss = evaluate(backend, heldout, cfg["eval_batch_size"], placement)
    objective = _objective(heldout_loss)
    if on_trained is not None:
        on_trained(backend)
    metrics = {
        "heldout_loss": heldout_loss,
        "objective": objective,
        "train_loss": train_loss,
        "steps": cfg["steps"],
        "seconds": time.perf_counter() - start,
        "samples_per_second": cfg["steps"] * cfg["batch_size"] / train_seconds,
        "backend": backend.name,
        **placement.record(),
    }
    return {**metrics, "heldout_curve": [*curve, [cfg["steps"], objective]]} if cfg["eval_every"] else metrics
