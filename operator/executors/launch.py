"""How a training step is launched: its nodes, processes per node and GPUs, and the torchrun command line that
starts its processes. Pure; both executors build their commands from it.

A trial runs on one node, one process per GPU (`resources.gpusPerJob`). The final training runs on
`finalTraining.nodes` nodes with `gpusPerNode` processes each; several nodes meet at a c10d rendezvous hosted
by the torchrun agent of node 0, whose stable name the headless Service gives (the Kubeflow Trainer and
JobSet pattern).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mixtura_operator.api.mixturesearch import MixtureSearchSpec

# The c10d rendezvous' port on node 0 (torchrun's documented default for multi-node examples).
RDZV_PORT = 29400
# torchrun, keeping the jobs' bad-input exit code (mixtura_jobs/steps/torchrun.py).
TORCHRUN = ["python", "-m", "mixtura_jobs", "torchrun"]


@dataclass(frozen=True)
class Launch:
    nodes: int = 1
    processes: int = 1
    launcher: Literal["job", "jobset"] = "job"

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launch_of(spec: MixtureSearchSpec, step_key: str) -> Launch:
    """The launch of a step's job: the final trainings (`final`, `final/<baseline>`) and trials as the spec says,
    every other step one process."""
    step = step_key.partition("/")[0]
    if step == "final":
        final = spec.final_training
        return Launch(final.nodes, spec.final_processes_per_node(), final.launcher)
    if step == "trial":
        return Launch(1, spec.proxy_processes())
    return Launch()


def torchrun(launch: Launch, rendezvous_host: str = "", rendezvous_id: str = "") -> list[str]:
    """The launcher's arguments before the step's `-m mixtura_jobs <step> ...`: one node stands alone; several
    rendezvous at `rendezvous_host` (node 0) under `rendezvous_id`, the same on every node."""
    if launch.nodes == 1:
        return [*TORCHRUN, "--standalone", "--nproc-per-node", str(launch.processes)]
    return [
        *TORCHRUN,
        "--nnodes",
        str(launch.nodes),
        "--nproc-per-node",
        str(launch.processes),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"{rendezvous_host}:{RDZV_PORT}",
        "--rdzv-id",
        rendezvous_id,
    ]
