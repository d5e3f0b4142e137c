"""The proxy / final trainer: train a VLM (any model backend) on a data mixture, then score it on held-out
data per domain.

One loop in the nanoGPT manner; the caller owns the process settings (torch threads, the device: see
`device.configure_process`; the process group: see `distributed.start`). Under torchrun every rank draws the
same global batch of `batch_size` samples and trains on its own rows of it, in `gradient_accumulation`
micro-batches; the loss is normalised by the global batch's answer tokens, so any number of processes and
micro-batches compute the gradient one process computes on the whole batch. With a checkpoint store the
training saves every `checkpoint_every` steps and resumes from the newest checkpoint there.
"""

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from mixtura_jobs.data.domain import DomainData, in_memory
from mixtura_jobs.data.npz_shards import DomainSamples
from mixtura_jobs.data.samples import Sample
from mixtura_jobs.data.sampling import sample_batch_indices
from mixtura_jobs.data.streaming import Groups, mixture_data
from mixtura_jobs.training.backends import ModelRef, VLMBackend, build_vlm_backend
from mixtura_jobs.training.checkpointing import Checkpoints, Resumed
from mixtura_jobs.training.device import Placement
from mixtura_jobs.training.distributed import World, current_world, full_state_dict, gradient_sync, wrap
from mixtura_jobs.training.tiny_vlm import IGNORE
from mixtura_operator.store import ArtifactStore

DEFAULT_CONFIG: dict = {
    "steps": 60,
    "batch_size": 16,  # the global batch of one optimizer step, over all processes and micro-batches
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
    "strategy": "ddp",  # several processes: ddp replicates the model, fsdp shards it
    "gradient_accumulation": 1,  # micro-batches per optimizer step
    "checkpoint_every": 0,  # > 0 (and a checkpoint store): save every this many steps, resume from the newest
    "keep_checkpoints": 2,
}
# What a checkpoint must agree on to be resumed (the process layout may change).
RESUME_SETTINGS = (
    "steps",
    "batch_size",
    "lr",
    "min_lr_ratio",
    "warmup_steps",
    "weight_decay",
    "grad_clip",
    "heldout_fraction",
    "max_heldout_samples",
    "shuffle_buffer",
    "log_every",
    "eval_every",
)

# augment(model, batch, step, rng, winner=(sum_logp, n_tokens)) -> (extra_loss, logs); `winner` is the clean
# batch's answer_logprobs, already computed for the SFT loss, so the hook need not run that forward again.
Augment = Callable[..., tuple[torch.Tensor, dict]]
# on_trained(backend, weights): the trained model; `weights` is its whole state dict when it is sharded or
# replicated over processes (None: the backend's own model holds it). Called on rank 0 only.
OnTrained = Callable[[VLMBackend, dict | None], None]


class _Forward(nn.Module):
    """The backend's scoring, and the augmentation's term, as one module's forward: what DDP and FSDP wrap (their
    hooks run around `forward` only)."""

    def __init__(self, backend: VLMBackend, augment: Augment | None) -> None:
        super().__init__()
        self.model = backend.model
        self.backend, self.augment = backend, augment

    def forward(self, batch: Any, step: int | None = None, rng: np.random.Generator | None = None) -> tuple:
        """(sum_logp, n_tokens) of `batch`; in training (`step` given) also the augmentation's (extra, logs)."""
        sum_logp, n_tokens = self.backend.answer_logprobs(batch)
        if step is None or self.augment is None:
            return sum_logp, n_tokens, 0.0, {}
        extra, logs = self.augment(self.model, batch, step, rng, winner=(sum_logp, n_tokens))
        return sum_logp, n_tokens, extra, logs


def picked_samples(picks: list[tuple[str, Sample]]) -> list[Sample]:
    """The picked (domain, sample)s, grouped by domain in order of first pick."""
    by_domain: dict[str, list[Sample]] = {}
    for name, sample in picks:
        by_domain.setdefault(name, []).append(sample)
    return [sample for samples in by_domain.values() for sample in samples]


def answer_tokens(batch: Any) -> int:
    """The answer tokens `answer_logprobs` counts in `batch` (every backend's batch has `labels`)."""
    return int((batch.labels[:, 1:] != IGNORE).sum())


def evaluate(
    backend: VLMBackend,
    forward: nn.Module,
    heldout: dict[str, list[Sample]],
    batch_size: int,
    placement: Placement,
    world: World,
) -> dict[str, float]:
    """Mean loss per answer token on each domain's held-out samples, each rank scoring every `world.size`-th.

    Every rank runs as many forwards as the rank with the most samples (FSDP gathers weights in each); one
    with fewer scores the domain's first sample again and drops the result."""
    forward.eval()
    sums: list[float] = []
    with torch.no_grad(), placement.autocast():
        for samples in heldout.values():
            mine = samples[world.rank :: world.size]
            nll, tokens = 0.0, 0
            for start in range(0, math.ceil(len(samples) / world.size), batch_size):
                chunk = mine[start : start + batch_size]
                sum_logp, n_tokens, _, _ = forward(backend.collate(chunk or samples[:1]))
                if chunk:
                    nll -= float(sum_logp.sum())
                    tokens += int(n_tokens.sum())
            sums += [nll, tokens]
    forward.train()
    totals = world.sum(sums, placement.device)
    return {name: totals[2 * k] / max(totals[2 * k + 1], 1) for k, name in enumerate(heldout)}


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


def micro_batches(picks: list, world: World, accumulation: int) -> list[list]:
    """This rank's rows of a global batch, cut into `accumulation` micro-batches."""
    if len(picks) % (world.size * accumulation):
        raise ValueError(
            f"training.batchSize: {len(picks)} does not divide among {world.size} processes x {accumulation} "
            "micro-batches (finalTraining.gradientAccumulation)"
        )
    mine = world.rows(picks)
    size = len(mine) // accumulation
    return [mine[k * size : (k + 1) * size] for k in range(accumulation)]


def _backward(
    forward: nn.Module,
    batches: list[Any],
    step: int,
    augment_rng: np.random.Generator,
    placement: Placement,
    world: World,
) -> tuple[float, dict]:
    """The gradients of one optimizer step, from this rank's micro-batches: its share of the step's loss, and
    the augmentation's logs (of the last micro-batch)."""
    accumulation = len(batches)
    # The gradient of the mean over the global batch's answer tokens: each micro-batch's sum over all of them.
    tokens = max(world.sum([sum(answer_tokens(b) for b in batches)], placement.device)[0], 1)
    step_loss, logs = 0.0, {}
    for k, batch in enumerate(batches):
        gradient_sync(forward, k + 1 == accumulation)
        with placement.autocast():
            sum_logp, _, extra, logs = forward(batch, step, augment_rng)
            sft = -sum_logp.sum() / tokens
            # DDP and FSDP average the ranks' gradients: the SFT sum is scaled back up, the augmentation's
            # term (a mean over its own batch) averaged over the micro-batches too.
            loss = sft * world.size + extra / accumulation
        loss.backward()
        step_loss += (sft + extra / (accumulation * world.size)).item()
    return step_loss, logs


@dataclass
class _Progress:
    """What the loop carries from step to step besides the weights and the optimizer, all of it in a checkpoint:
    the data sampler's and the augmentation's streams (separate, so an augmentation never changes which samples
    are drawn), the logged losses, the held-out curve and the losses since the last log line."""

    data_rng: np.random.Generator
    augment_rng: np.random.Generator
    train_loss: list[float] = field(default_factory=list)
    curve: list[list[float]] = field(default_factory=list)
    window: list[float] = field(default_factory=list)

    def saved(self) -> dict:
        return {
            "train_loss": self.train_loss,
            "curve": self.curve,
            "window": self.window,
            "data_rng": self.data_rng.bit_generator.state,
            "augment_rng": self.augment_rng.bit_generator.state,
        }

    def resume(self, resumed: Resumed, draw: Callable[[], object], where: str) -> None:
        """Take the loop's state from `resumed`; `draw` draws one step's batch from `data_rng`: the draws of the
        steps done, replayed, leave every domain's stream where it was."""
        state = resumed.state
        self.train_loss, self.curve, self.window = state["train_loss"], state["curve"], state["window"]
        self.augment_rng.bit_generator.state = state["augment_rng"]
        for _ in range(resumed.step):
            draw()
        if self.data_rng.bit_generator.state != state["data_rng"]:
            raise RuntimeError(f"{where}: the replayed data position differs from the saved one")


def _checkpoints(
    store: ArtifactStore | None, cfg: dict, weights: dict[str, float], seed: int, model: ModelRef, world: World
) -> Checkpoints | None:
    """The training's checkpoints in `store`, when it has one and `checkpoint_every` > 0; a checkpoint resumes
    only a run with the same settings, mixture, seed and model."""
    if store is None or cfg["checkpoint_every"] <= 0:
        return None
    settings = {k: cfg[k] for k in RESUME_SETTINGS}
    settings |= {"weights": weights, "seed": seed, "model": [model.backend, model.path, model.config]}
    return Checkpoints(store, cfg["checkpoint_every"], cfg["keep_checkpoints"], settings, world)


class _Clock:
    """Training throughput: the wall time since the start, less the held-out curve's evaluations."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.eval_seconds = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def training(self) -> float:
        return self.elapsed() - self.eval_seconds


def train_on_mixture(
    domains: Mapping[str, DomainData | DomainSamples],
    weights: dict[str, float],
    config: dict,
    seed: int,
    on_log: Callable[[dict], None] | None = None,
    augment: Augment | None = None,
    groups: Mapping[str, Groups] | None = None,
    on_trained: OnTrained | None = None,
    model: ModelRef | None = None,
    placement: Placement | None = None,
    checkpoint_store: ArtifactStore | None = None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
) -> dict:
    """Train on `weights` over the train split of `domains`; return held-out losses and throughput.

    `weights` are per domain, or per group when `groups` gives each domain's samples a group (their
    concept x task cell, by sample key). Domains larger than `shuffle_buffer` samples stream (see
    `data.streaming`). `augment` (see `Augment`) adds a term to the SFT loss, e.g. MergeMix; it gets the
    backend's torch model and its logs join each log line's dict. `on_trained` gets the trained model (e.g. to
    save it). `model` names the model (default: the tiny `proxy` preset), `placement` where it runs (default:
    the CPU in fp32). `checkpoint_store` (rooted at the training's checkpoint prefix) holds its checkpoints when
    `checkpoint_every` > 0. `on_eval` gets each `eval_every` evaluation (step, held-out loss per domain) as it
    is made, e.g. to report progress for early stopping. The objective is the mean held-out loss over all
    domains, weighted or not; lower is better. Every rank returns the same metrics; progress is printed and
    `on_log` called on rank 0.
    """
    model = model or ModelRef()
    placement = placement or Placement(torch.device("cpu"))
    cfg = {**DEFAULT_CONFIG, **config}
    world = current_world()
    data = {name: in_memory(name, d) if isinstance(d, DomainSamples) else d for name, d in domains.items()}
    mixture = mixture_data(
        data, groups, cfg["heldout_fraction"], cfg["max_heldout_samples"], cfg["shuffle_buffer"], seed
    )
    if augment is not None and cfg["strategy"] == "fsdp" and world.size > 1:
        # The augmentation's extra forwards depend on the rank's rows: FSDP's weight gathers would not match.
        raise ValueError("spec.training.augmentation: mergemix trains under finalTraining.strategy ddp, not fsdp")
    backend = build_vlm_backend(model, seed, placement)
    forward = wrap(_Forward(backend, augment), cfg["strategy"], world)
    parameters = [p for p in forward.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    progress = _Progress(np.random.default_rng(seed), np.random.default_rng([seed, 1]))

    def draw() -> list:
        return sample_batch_indices(weights, mixture.pools, cfg["batch_size"], progress.data_rng)

    checkpoints = _checkpoints(checkpoint_store, cfg, weights, seed, model, world)
    resumed = checkpoints.restore(forward, optimizer) if checkpoints is not None else None
    first = 0
    if resumed is not None:
        progress.resume(resumed, draw, checkpoint_store.uri)
        first = resumed.step
        if world.is_main:
            print(f"resumed at step {first}", flush=True)

    clock = _Clock()

    def evaluated() -> dict[str, float]:
        return evaluate(backend, forward, mixture.heldout, cfg["eval_batch_size"], placement, world)

    def record_curve(step: int) -> None:
        tick = time.perf_counter()
        losses = evaluated()
        progress.curve.append([step, _objective(losses)])
        clock.eval_seconds += time.perf_counter() - tick
        if on_eval is not None:
            on_eval(step, losses)

    if cfg["eval_every"] and first == 0:
        record_curve(0)
    for step in range(first, cfg["steps"]):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        rows = micro_batches(draw(), world, cfg["gradient_accumulation"])
        batches = [backend.collate(picked_samples(micro)) for micro in rows]
        optimizer.zero_grad(set_to_none=True)
        step_loss, logs = _backward(forward, batches, step, progress.augment_rng, placement, world)
        torch.nn.utils.clip_grad_norm_(parameters, cfg["grad_clip"])
        optimizer.step()

        progress.window.append(world.sum([step_loss], placement.device)[0])
        if (step + 1) % cfg["log_every"] == 0 or step + 1 == cfg["steps"]:
            rate = (step + 1 - first) * cfg["batch_size"] / clock.training()
            _log(progress, step + 1, rate, logs, world.is_main, on_log)
        if cfg["eval_every"] and (step + 1) % cfg["eval_every"] == 0 and step + 1 < cfg["steps"]:
            record_curve(step + 1)
        if checkpoints is not None and checkpoints.due(step + 1, cfg["steps"]):
            checkpoints.save(step + 1, forward, optimizer, progress.saved())
    train_seconds = clock.training()

    heldout_loss = evaluated()
    if on_trained is not None:
        whole = full_state_dict(backend.model, world) if world.size > 1 else None
        if world.is_main:
            on_trained(backend, whole)
    metrics = {
        "heldout_loss": heldout_loss,
        "objective": _objective(heldout_loss),
        "train_loss": progress.train_loss,
        "steps": cfg["steps"],
        "seconds": clock.elapsed(),
        "samples_per_second": (cfg["steps"] - first) * cfg["batch_size"] / train_seconds,
        "backend": backend.name,
        "processes": world.size,
        **placement.record(),
    }
    if first:
        metrics["resumed_at_step"] = first
    if cfg["eval_every"]:
        metrics["heldout_curve"] = [*progress.curve, [cfg["steps"], metrics["objective"]]]
    return metrics


def _log(
    progress: _Progress, steps: int, rate: float, logs: dict, main: bool, on_log: Callable[[dict], None] | None
) -> None:
    """Close the log window after `steps` steps: its mean loss joins `train_loss`; the main rank prints the line
    and passes it to `on_log`."""
    mean_loss = sum(progress.window) / len(progress.window)
    progress.window.clear()
    progress.train_loss.append(mean_loss)
    if main:
        print(f"step={steps} loss={mean_loss:.4f} samples_per_s={rate:.1f}", flush=True)
        if on_log is not None:
            on_log({"step": steps, "loss": mean_loss, "samples_per_s": rate, **logs})
