"""`python -m mixtura_jobs torchrun <torchrun arguments>`: torchrun, keeping a step's bad-input exit code.

torchrun (torch.distributed.run) exits 1 whatever its workers exited with, so the Job's podFailurePolicy, which
fails a Job at once on the jobs' bad-input exit code, would never see it and would retry a step that cannot
succeed. This runs the same launcher in process and exits with that code when any worker did.
"""

from __future__ import annotations

import logging

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import parse_args, run

from mixtura_operator import layout


def exit_code(error: ChildFailedError) -> int:
    """The bad-input code when a worker exited with it; else the first failure's code (1 for a signal)."""
    codes = [failure.exitcode for failure in error.failures.values()]
    if layout.EXIT_BAD_INPUT in codes:
        return layout.EXIT_BAD_INPUT
    _, first = error.get_first_failure()
    return first.exitcode if first.exitcode > 0 else 1


def main(argv: list[str]) -> int:
    # The rendezvous' result (this node's rank, the world size) belongs in the pod's log.
    logging.getLogger("torch.distributed.elastic.agent.server.api").setLevel(logging.INFO)
    try:
        run(parse_args(argv))
    except ChildFailedError as error:
        print(error, flush=True)
        return exit_code(error)
    return 0
