"""Training checkpoints in the artifact store: save every N steps, resume from the newest after a restart.

A checkpoint is a folder `step-NNNNNN/` under the step's checkpoint prefix (`layout.final_checkpoints`):

- the model and optimizer state as `torch.distributed.checkpoint` writes it (`.metadata` and `__<rank>_*.distcp`
  files; each rank writes its own shards under FSDP, the replicated tensors once under DDP);
- `trainer.json` (rank 0): the steps done, the run's settings, the data sampler's and the augmentation's RNG
  states and the loss and curve so far;
- `rng-rank-<r>.pt` (each rank): its torch, CUDA, numpy and Python RNG states.

Each rank writes into a local folder of its own and uploads what it wrote (a large file goes up in parts, see
`ArtifactStore.upload_file`), so a checkpoint needs no shared disk across nodes. Once every rank has uploaded,
rank 0 writes `latest` (the folder's name) and deletes the folders beyond the newest `keep`: a folder that
`latest` does not name is never read, so a preemption mid-upload leaves the previous checkpoint in force.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from mixtura_jobs.training.distributed import World
from mixtura_operator import layout
from mixtura_operator.store import ArtifactStore

# DCP warns at every save and load of one process (no process group) that it assumes one process: it is right.
warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
TRAINER_STATE = "trainer.json"
# Local folders of checkpoints on their way to or from the store (default: the system's temporary folder).
LOCAL_DIR_ENV = "MIXTURA_CHECKPOINT_DIR"


def _rng_file(rank: int) -> str:
    return f"rng-rank-{rank}.pt"


def rng_states() -> dict:
    """This process's RNG states, in types `torch.load(weights_only=True)` reads back."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    random.setstate(states["python"])


@dataclass(frozen=True)
class Resumed:
    """What a restarted training continues from."""

    step: int  # optimizer steps done
    state: dict  # the trainer's own state, as it gave it to `save`


class Checkpoints:
    """The checkpoints of one training in `store` (rooted at its checkpoint prefix): every `every` steps,
    the newest `keep` kept. `settings` identify the run: a checkpoint of other settings is refused."""

    def __init__(self, store: ArtifactStore, every: int, keep: int, settings: dict, world: World) -> None:
        self.store, self.every, self.keep, self.settings, self.world = store, every, keep, settings, world
        root = Path(os.environ.get(LOCAL_DIR_ENV) or Path(tempfile.gettempdir()) / "mixtura-checkpoints")
        self.local = root / hashlib.sha256(store.uri.encode()).hexdigest()[:16]

    def due(self, step: int, steps: int) -> bool:
        """Whether to save after `step` steps: every `every` steps, never after the last (the model is saved)."""
        return self.every > 0 and step % self.every == 0 and step < steps

    def save(self, step: int, module: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
        """Every rank calls this after the same step; `state` (JSON) is rank 0's to keep."""
        folder = layout.checkpoint_step(step)
        local = self.local / f"rank-{self.world.rank}" / folder
        shutil.rmtree(local, ignore_errors=True)
        local.mkdir(parents=True)
        model_state, optimizer_state = get_state_dict(module, optimizer)
        dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=local)
        torch.save(rng_states(), local / _rng_file(self.world.rank))
        if self.world.is_main:
            record = {"step": step, "world_size": self.world.size, "settings": self.settings, "trainer": state}
            (local / TRAINER_STATE).write_text(json.dumps(record))
        self.store.upload_dir(local, folder)
        shutil.rmtree(local)
        self.world.barrier()
        if self.world.is_main:
            self.store.put_bytes(layout.CHECKPOINT_LATEST, folder.encode())
            self._prune(step)

    def _prune(self, step: int) -> None:
        """Keep the newest `keep` folders up to `step`; any beyond it are an abandoned run's (the step reset)."""
        folders = {key.split("/", 1)[0] for key in self.store.list() if "/" in key}
        steps = sorted(n for n in map(layout.checkpoint_step_number, folders) if n is not None)
        kept = [n for n in steps if n <= step][-self.keep :]
        for old in (n for n in steps if n not in kept):
            self.store.delete_prefix(layout.checkpoint_step(old))

    def restore(self, module: nn.Module, optimizer: torch.optim.Optimizer) -> Resumed | None:
        """Load the checkpoint `latest` names into `module` and `optimizer` and this process's RNGs; None when
        there is none. Every rank calls this; the first rank of each node downloads it for the node."""
        if not self.store.exists(layout.CHECKPOINT_LATEST):
            return None
        folder = self.store.get_bytes(layout.CHECKPOINT_LATEST).decode().strip()
        local = self.local / f"node-{self.world.node}" / folder
        if self.world.local_rank == 0:
            shutil.rmtree(local, ignore_errors=True)
            self.store.download_dir(folder, local)
        self.world.barrier()
        record = json.loads((local / TRAINER_STATE).read_text())
        if record["settings"] != self.settings:
            raise ValueError(
                f"{self.store.uri}/{folder}: the checkpoint was written by a training of other settings "
                f"({_differences(record['settings'], self.settings)}); delete {self.store.uri} to start again"
            )
        model_state, optimizer_state = get_state_dict(module, optimizer)
        # `get_state_dict` gives a fresh optimizer state for every parameter; one that had no gradient before the
        # checkpoint had none, and must have none again (AdamW's step count starts when its first gradient does).
        saved = dcp.FileSystemReader(local).read_metadata().state_dict_metadata
        optimizer_state["state"] = {
            name: value
            for name, value in optimizer_state["state"].items()
            if any(f"optimizer.state.{name}.{key}" in saved for key in value)
        }
        loaded = {"model": model_state, "optimizer": optimizer_state}
        dcp.load(loaded, checkpoint_id=local)
        set_model_state_dict(module, loaded["model"])
        set_optimizer_state_dict(module, optimizer, loaded["optimizer"], options=StateDictOptions(strict=False))
        rng = local / _rng_file(self.world.rank)
        # Another world size: the data position is global and restored, only this rank's own RNGs start afresh.
        if rng.exists():
            set_rng_states(torch.load(rng, weights_only=True))
        self.world.barrier()
        if self.world.local_rank == 0:
            shutil.rmtree(local)
        return Resumed(record["step"], record["trainer"])


def _differences(saved: dict, current: dict) -> str:
    keys = sorted(k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k))
    return ", ".join(f"{k}: {saved.get(k)!r} then, {current.get(k)!r} now" for k in keys)
