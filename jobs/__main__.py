"""`python -m mixtura_jobs <step> --search-uri URI ...`: the entrypoint of every job container.

Also the jobs' side of the `mixtura` CLI (`demo-data`): the operator package knows the jobs only by these
command lines, never by import.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from pydantic import ValidationError

from mixtura_operator import layout
from mixtura_operator.store import ArtifactNotFound

# Errors that running again cannot mend: the Job's podFailurePolicy fails it at once on their exit code.
BAD_INPUT = (ValueError, ValidationError, ArtifactNotFound)
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
    steps["propose"].add_argument("--warm-start", default="", help="root URIs of searches whose trials to import")
    steps["proxy-train"].add_argument("--trial", required=True)
    demo = sub.add_parser("demo-data", help="make the demo corpus (no downloads)")
    demo.add_argument("dir")
    demo.add_argument("--samples", type=int, default=96)
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.step == "demo-data":
        return _demo_data(args)

    import torch

    # One thread per step keeps results bit-identical across runs and lets steps run side by side.
    torch.set_num_threads(int(os.environ.get("MIXTURA_THREADS", "1")))
    from mixtura_jobs.steps.context import StepContext

    # Only the step's own module: importing them all (open_clip among them) costs seconds on every job.
    module, function = STEPS[args.step]
    run = getattr(importlib.import_module(f"mixtura_jobs.steps.{module}"), function)
    ctx = StepContext.open(args.search_uri)
    try:
        run(ctx, args)
    except (Exception, SystemExit) as error:
        if isinstance(error, SystemExit) and error.code in (0, None):
            raise
        traceback.print_exc()
        return _record_failure(ctx, step_key(args), error)
    return 0


def step_key(args: argparse.Namespace) -> str:
    """The step key (layout) of the command line: where its markers go."""
    arg = {"embed": "domain", "propose": "round", "proxy-train": "trial"}.get(args.step)
    prefix = {"proxy-train": "trial", "final-train": "final"}.get(args.step, args.step)
    return f"{prefix}/{getattr(args, arg)}" if arg else prefix


def _record_failure(ctx, key: str, error: BaseException) -> int:
    """`_FAILED` with the error, so that the failure is known even if the Job is gone before the operator looks;
    the exit code tells the Job whether another attempt could help."""
    message = str(error) if isinstance(error, SystemExit) else f"{type(error).__name__}: {error}"
    try:
        ctx.store.put_bytes(layout.failure_marker(key), message.encode())
    except Exception:
        traceback.print_exc()
    return layout.EXIT_BAD_INPUT if isinstance(error, BAD_INPUT) else 1


def _demo_data(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mixtura_jobs.data.demo import make_demo_corpus

    domains = make_demo_corpus(Path(args.dir), samples_per_domain=args.samples, seed=args.seed)
    for domain in domains:
        print(f"{domain['name']:<12} {domain['taskType']:<11} {','.join(domain['modalities']):<12} {domain['uri']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
