"""`python -m mixtura_jobs <step> --search-uri URI ...`: the entrypoint of every job container; a distributed
step runs as `python -m mixtura_jobs torchrun <torchrun arguments> -m mixtura_jobs <step> ...` (steps/torchrun.py).

Also the jobs' side of the `mixtura` CLI (`demo-data`, `export`): the operator package knows the jobs only by these
command lines, never by import.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from pydantic import ValidationError

from mixtura_jobs.data.bad_samples import TooManyBadSamples
from mixtura_jobs.data.domain import DataError
from mixtura_jobs.steps import export as export_step
from mixtura_operator import layout
from mixtura_operator.store import ArtifactNotFound

# A domain's data that cannot be read, or too much of it: the message names the domain and the first bad key.
BAD_DATA = (DataError, TooManyBadSamples)
# Errors that running again cannot mend: the Job's podFailurePolicy fails it at once on their exit code.
BAD_INPUT = (ValueError, ValidationError, ArtifactNotFound, *BAD_DATA)
STEPS = {
    "embed": ("embed", "run"),
    "score": ("score", "run"),
    "cells": ("cells", "run"),
    "propose": ("propose", "run"),
    "proxy-train": ("train", "run_proxy"),
    "final-train": ("train", "run_final"),
    "final-pick": ("train", "run_pick"),
    "report": ("report", "run"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["torchrun"]:
        # torchrun's own arguments, then the step's: argparse would take the step's options for its own.
        from mixtura_jobs.steps import torchrun

        return torchrun.main(argv[1:])
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
    steps["propose"].add_argument("--pending", default="", help="running trials the proposal is conditioned on")
    steps["propose"].add_argument("--repeat-of", default="", help="trials whose mixtures to rerun (repeatTop)")
    steps["proxy-train"].add_argument("--trial", required=True)
    steps["proxy-train"].add_argument("--repeat", type=int, default=0, help="repeat number: its own init seed")
    steps["final-train"].add_argument("--baseline", help="train on this baseline mixture (finalTraining.compareWith)")
    demo = sub.add_parser("demo-data", help="make the demo corpus (no downloads)")
    demo.add_argument("dir")
    demo.add_argument("--samples", type=int, default=96)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--format", choices=["npz", "webdataset"], default="npz")
    export = sub.add_parser("export", help="write a search's mixture in a trainer's format")
    export.add_argument("--search-uri", required=True)
    export_step.add_arguments(export)
    index = sub.add_parser("index", help="write a domain's index (shards, sample counts, tar offsets)")
    index.add_argument("uri")
    index.add_argument("--format", choices=["webdataset", "llava", "npz"])
    index.add_argument("--image-root")
    index.add_argument("--endpoint-url")
    args = parser.parse_args(argv)
    try:
        return _command(args)
    except BAD_DATA as error:
        # Bad data is the user's to fix: the message names the domain, a traceback would only hide it.
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1


def _command(args: argparse.Namespace) -> int:
    if args.step == "demo-data":
        return _demo_data(args)
    if args.step == "export":
        return export_step.run(args)
    if args.step == "index":
        return _index(args)

    from mixtura_jobs.steps.context import StepContext
    from mixtura_jobs.training import distributed
    from mixtura_jobs.training.device import configure_process

    # Threads from the Job's CPU request (one when none is set: local steps run side by side and repeat bit
    # for bit), the GPU when the pod has one; printed at step start. Under torchrun: this rank's GPU, and the
    # process group of the training's ranks.
    world = distributed.start(configure_process())

    # Only the step's own module: importing them all (open_clip among them) costs seconds on every job.
    module, function = STEPS[args.step]
    run = getattr(importlib.import_module(f"mixtura_jobs.steps.{module}"), function)
    ctx = StepContext.open(args.search_uri)
    try:
        if args.step == "proxy-train" and world.is_main:
            # Pod logs vanish with the pod: a trial's output is kept in the store, failed or not.
            with ctx.tee_output(layout.trial_log(args.trial)):
                run(ctx, args)
        else:
            run(ctx, args)
        distributed.stop()
    except (Exception, SystemExit) as error:
        if isinstance(error, SystemExit) and error.code in (0, None):
            raise
        if isinstance(error, BAD_DATA):
            print(f"error: {error}", file=sys.stderr, flush=True)
        else:
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

    domains = make_demo_corpus(Path(args.dir), samples_per_domain=args.samples, seed=args.seed, fmt=args.format)
    for domain in domains:
        print(f"{domain['name']:<12} {domain['taskType']:<11} {','.join(domain['modalities']):<12} {domain['uri']}")
    return 0


def _index(args: argparse.Namespace) -> int:
    from mixtura_jobs.data.domain import index_domain
    from mixtura_operator.api.domainset import Domain
    from mixtura_operator.domain_index import DomainLocation

    domain = Domain(
        name="index",
        uri=args.uri,
        modalities=["text"],
        task_type="text",
        format=args.format,
        image_root=args.image_root,
    )
    index = index_domain(domain, args.endpoint_url)
    counts = ", ".join(f"{m} {n}" for m, n in index.counts().items() if n)
    written = DomainLocation.parse(args.uri).index_key
    print(f"{args.uri}: {index.format}, {len(index.shards)} shards, {counts}; wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
