"""`python -m mixtura_jobs <step> --search-uri URI ...`: the entrypoint of every job container."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

STEPS = {
    "embed": ("embed", "run"),
    "score": ("score", "run"),
    "cells": ("cells", "run"),
    "propose": ("propose", "run"),
    "proxy-train": ("train", "run_proxy"),
    "final-train": ("train", "run_final"),
    "report": ("report", "run"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixtura_jobs")
    sub = parser.add_subparsers(dest="step", required=True)
    steps = {name: sub.add_parser(name) for name in STEPS}
    for step in steps.values():
        step.add_argument("--search-uri", required=True)
    steps["embed"].add_argument("--domain", required=True)
    steps["cells"].add_argument("--centroids-from", help="root URI of the search whose concept centroids to reuse")
    steps["propose"].add_argument("--round", type=int, required=True)
    steps["propose"].add_argument("--trials", required=True)
    steps["proxy-train"].add_argument("--trial", required=True)
    args = parser.parse_args(argv)

    import torch

    # One thread per step keeps results bit-identical across runs and lets steps run side by side.
    torch.set_num_threads(int(os.environ.get("MIXTURA_THREADS", "1")))
    from mixtura_jobs.context import StepContext

    # Only the step's own module: importing them all (open_clip among them) costs seconds on every job.
    module, function = STEPS[args.step]
    run = getattr(importlib.import_module(f"mixtura_jobs.steps.{module}"), function)
    run(StepContext.open(args.search_uri), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
