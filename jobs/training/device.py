"""Where a step's models run: the device, the precision and the CPU threads, chosen once at step start.

CUDA when the pod has a GPU (bf16 autocast where the GPU supports it, TF32 matmuls), the CPU otherwise (full
fp32, so CPU runs stay bit-identical to earlier ones). Threads follow the Job's CPU request, which the
Kubernetes executor passes in `MIXTURA_CPU_REQUEST`; with nothing set a step uses one thread, so local steps
can run side by side and repeat bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

# Set by the Kubernetes executor from the container's `requests.cpu` (Downward API, whole cores, rounded up).
CPU_REQUEST_ENV = "MIXTURA_CPU_REQUEST"
# An explicit thread count (local runs, benches); wins over the CPU request.
THREADS_ENV = "MIXTURA_THREADS"


@dataclass(frozen=True)
class Placement:
    """The device models and batches go to, and the autocast dtype (None: full precision)."""

    device: torch.device
    autocast_dtype: torch.dtype | None = None

    @property
    def precision(self) -> str:
        return "fp32" if self.autocast_dtype is None else f"{str(self.autocast_dtype).removeprefix('torch.')}-autocast"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def record(self) -> dict[str, str | int]:
        """What a step's metrics say about where it ran."""
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return {
            "device": str(self.device),
            "device_name": name,
            "precision": self.precision,
            "threads": torch.get_num_threads(),
        }


def select_placement(env: Mapping[str, str] = os.environ) -> Placement:
    """The CUDA device of this process (torchrun's `LOCAL_RANK`, else 0) with bf16 autocast where supported,
    else the CPU in fp32. On a machine without CUDA nothing beyond `torch.cuda.is_available()` touches CUDA."""
    if not torch.cuda.is_available():
        return Placement(torch.device("cpu"))
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    device = torch.device("cuda", int(env.get("LOCAL_RANK", 0)))
    return Placement(device, torch.bfloat16 if torch.cuda.is_bf16_supported() else None)


def thread_count(env: Mapping[str, str] = os.environ) -> int:
    """`MIXTURA_THREADS`, else the Job's CPU request (`2`, `1.5` or `500m`) shared by the pod's processes
    (torchrun's `LOCAL_WORLD_SIZE`) and rounded up, else 1."""
    if env.get(THREADS_ENV):
        return int(env[THREADS_ENV])
    request = env.get(CPU_REQUEST_ENV, "")
    if not request:
        return 1
    cores = float(request[:-1]) / 1000 if request.endswith("m") else float(request)
    return max(1, math.ceil(cores / int(env.get("LOCAL_WORLD_SIZE", "1"))))


def configure_process(env: Mapping[str, str] = os.environ) -> Placement:
    """Set torch's thread count, choose the placement and print both: every step calls this first."""
    torch.set_num_threads(thread_count(env))
    placement = select_placement(env)
    print(f"device={placement.device} precision={placement.precision} threads={torch.get_num_threads()}", flush=True)
    return placement
