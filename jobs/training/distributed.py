"""The processes of one training: one plain process, or several started by `torchrun` (one per GPU, or per
node on CPU), which set RANK, WORLD_SIZE, LOCAL_RANK, GROUP_RANK and MASTER_ADDR/PORT.

Every rank draws the same global batch from the same seeded sampler and takes its own rows of it, so that N
processes compute the gradient one process computes on the whole batch. The model is replicated (DDP) or
sharded (FSDP, `fully_shard`); gloo on the CPU, NCCL on CUDA. With one process nothing is wrapped and nothing
is communicated: a single-process run is bit for bit what it was before distributed training existed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from mixtura_jobs.training.device import Placement

T = TypeVar("T")
STRATEGIES = ("ddp", "fsdp")


@dataclass(frozen=True)
class World:
    """This process's place among the training's processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    node: int = 0  # torchrun's GROUP_RANK: the node (pod) this process runs on

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the step's outputs (metrics, markers, the model) and prints its progress."""
        return self.rank == 0

    def rows(self, items: Sequence[T]) -> list[T]:
        """This rank's contiguous share of `items` (whose length the ranks divide evenly, or nearly)."""
        n = len(items)
        return list(items[self.rank * n // self.size : (self.rank + 1) * n // self.size])

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def sum(self, values: Sequence[float], device: torch.device) -> list[float]:
        """Each value summed over the ranks (float64)."""
        if self.size == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def from_main(self, make: Callable[[], T]) -> T:
        """`make()` run on rank 0 only (it may write to the store), its result sent to every rank."""
        if self.size == 1:
            return make()
        box = [make() if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def current_world() -> World:
    """The world of the process group `start` began, or one process."""
    if not dist.is_initialized():
        return World()
    local_rank, node = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("GROUP_RANK", 0))
    return World(dist.get_rank(), dist.get_world_size(), local_rank, node)


def start(placement: Placement) -> World:
    """Join the process group when torchrun launched this process (NCCL on CUDA, gloo on the CPU)."""
    if not dist.is_torchelastic_launched() or dist.is_initialized():
        return current_world()
    if placement.device.type == "cuda":
        torch.cuda.set_device(placement.device)
        dist.init_process_group("nccl", device_id=placement.device)
    else:
        dist.init_process_group("gloo")
    world = current_world()
    print(f"rank={world.rank} world_size={world.size} node={world.node} backend={dist.get_backend()}", flush=True)
    return world


def stop() -> None:
    """Leave the process group, every rank together: a rank that destroys it while a peer's gloo threads still
    talk to it aborts (`terminate called without an active exception`)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(module: nn.Module, strategy: str, world: World) -> nn.Module:
    """`module` replicated (ddp) or sharded (fsdp) over the world; as it is for one process.

    FSDP shards each block of the language model (the `nn.ModuleList` holding the most parameters, whatever
    the backend) as its own unit, gathered one at a time, and the rest (the vision tower, embeddings) as the
    root unit. Every rank runs every language-model block on every micro-batch, but a rank whose micro-batch
    has no image skips the vision tower: its blocks must not be units of their own (their weight gathers would
    not match across ranks), and its parameters' gradients are reduced as zeros on such ranks."""
    if strategy not in STRATEGIES:
        raise ValueError(f"spec.finalTraining.strategy: unknown strategy {strategy!r}; expected ddp or fsdp")
    if world.size == 1:
        return module
    if strategy == "ddp":
        # A batch without images leaves the vision tower without gradients: DDP must look for unused parameters.
        # Buffers (position ids and the like) are built the same on every rank: no sync each forward.
        return nn.parallel.DistributedDataParallel(module, forward_sync_buffers=False, find_unused_parameters=True)
    from torch.distributed.fsdp import fully_shard

    lists = [m for m in module.modules() if isinstance(m, nn.ModuleList)]
    for block in max(lists, key=lambda m: sum(p.numel() for p in m.parameters()), default=[]):
        fully_shard(block)
    root = fully_shard(module)
    root.set_reduce_scatter_unused_params(True)
    return root


def gradient_sync(module: nn.Module, sync: bool) -> None:
    """Whether the next backward all-reduces the gradients: only the last micro-batch of a step's needs to."""
    if isinstance(module, nn.parallel.DistributedDataParallel):
        module.require_backward_grad_sync = sync
    elif hasattr(module, "set_requires_gradient_sync"):  # an FSDP module
        module.set_requires_gradient_sync(sync)


def full_state_dict(module: nn.Module, world: World) -> dict[str, torch.Tensor]:
    """`module`'s whole weights on the CPU on rank 0 (empty elsewhere), gathered from the shards under FSDP one
    tensor at a time: every rank must call it, no rank but 0 holds more than one tensor of it."""
    from torch.distributed.tensor import DTensor

    weights = {}
    for key, value in module.state_dict().items():
        whole = value.full_tensor() if isinstance(value, DTensor) else value
        if world.is_main:
            weights[key] = whole.detach().cpu()
    return weights
