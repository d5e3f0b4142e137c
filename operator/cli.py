"""The `mixtura` command line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from mixtura_operator.api import crdgen
from mixtura_operator.api.manifests import ManifestError, load
from mixtura_operator.api.mixturesearch import MixtureSearch, MixtureSearchStatus, Phase
from mixtura_operator.status_view import render
from mixtura_operator.wording import counted

# The jobs' `export --format` choices (the jobs check them again; the operator cannot import theirs).
EXPORT_FORMATS = ("json", "samples", "hf", "megatron", "webdataset")
CRDS_DIR = Path(__file__).resolve().parent.parent / "crds"


def _progress(decision) -> None:
    from mixtura_operator.local_runner import describe

    for event in decision.events:
        print(describe(event), flush=True)
    status: MixtureSearchStatus = decision.status
    best = (
        status.best_trial
        and f" best {status.objective}={status.best_trial.objective:.4f} (trial {status.best_trial.id})"
    )
    stopped = f" stopped={status.trials.stopped}" if status.trials.stopped else ""
    line = (
        f"  {status.phase.value:<10} trials {status.trials.progress:>7} running={status.trials.running}{stopped}"
        f"{best or ''}"
    )
    if status.phase.value == "Searching":
        # What the schedule does now: "async: proposing for 1 freed slot while 3 trials run".
        line += f" | {status.message}"
    if line != getattr(_progress, "last", None):
        print(line, flush=True)
        _progress.last = line


def cmd_run(args: argparse.Namespace) -> int:
    from mixtura_operator.local_runner import run_local

    bundle = load(Path(args.manifest))
    if not bundle.searches:
        raise ManifestError(f"{args.manifest}: no MixtureSearch in the file")
    bundle.check()
    failed = False
    for search in bundle.searches:
        print(f"MixtureSearch {search.metadata.name}: method {search.spec.method}", flush=True)
        source = bundle.concepts_from(search)
        status = run_local(
            search,
            bundle.domainset_for(search),
            workers=args.workers,
            on_decision=_progress,
            concepts_from=None if source is None else (source, bundle.domainset_for(source)),
        )
        print(render(search.metadata.name, status))
        failed |= status.phase == Phase.FAILED
    return 1 if failed else 0


def _manifest_search(manifest: str, name: str):
    """The MixtureSearch named `name` in a manifest file, and its DomainSet."""
    bundle = load(Path(manifest))
    searches = [s for s in bundle.searches if s.metadata.name == name]
    if not searches:
        raise ManifestError(f"{manifest}: no MixtureSearch named {name!r}")
    return searches[0], bundle.domainset_for(searches[0])


def _cluster_search(args: argparse.Namespace) -> MixtureSearch:
    from kubernetes import client

    from mixtura_operator.api import GROUP, VERSION
    from mixtura_operator.main import api_client

    body = client.CustomObjectsApi(api_client()).get_namespaced_custom_object(
        GROUP, VERSION, args.namespace, "mixturesearches", args.name
    )
    return MixtureSearch.model_validate({**body, "status": body.get("status") or {}})


def _status(args: argparse.Namespace) -> MixtureSearchStatus | None:
    """The search's status: from a local run's store (--manifest) or the cluster."""
    if args.manifest:
        from mixtura_operator.local_runner import local_status

        return local_status(*_manifest_search(args.manifest, args.name))
    return _cluster_search(args).status


def cmd_status(args: argparse.Namespace) -> int:
    status = _status(args)
    if status is None:
        print(f"MixtureSearch {args.name}: not started")
        return 1
    print(render(args.name, status))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    # The formats are the jobs' code: run them as the jobs run, by command line, on the search's store.
    if args.manifest:
        from mixtura_operator.local_runner import local_store

        search, domainset = _manifest_search(args.manifest, args.name)
        root = local_store(search, domainset).uri
    else:
        search = _cluster_search(args)
        root = search.status.artifacts.root
    env = dict(os.environ)
    if search.spec.artifacts.endpoint_url:
        env["MIXTURA_S3_ENDPOINT"] = search.spec.artifacts.endpoint_url
    if not root:
        print(f"MixtureSearch {args.name}: no artifacts yet (status.artifacts.root is empty)", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "mixtura_jobs", "export", "--search-uri", root, "--format", args.format]
    for flag, value in (("--trial", args.trial), ("--out", args.out)):
        if value is not None:
            command += [flag, value]
    return subprocess.call([*command, *args.passed_on], env=env)


def cmd_crds(args: argparse.Namespace) -> int:
    out = Path(args.out)
    stale = []
    for name, crd in crdgen.crds().items():
        text = crdgen.render(crd)
        path = out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(path)
    if stale:
        print("stale CRDs (run `mixtura crds`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    bundle = load(Path(args.manifest))
    bundle.check(cluster=args.cluster)
    searches = counted(len(bundle.searches), "MixtureSearch", "MixtureSearches")
    counts = f"{counted(len(bundle.domainsets), 'DomainSet')}, {searches}"
    others = f", {counted(len(bundle.others), 'other object')}" if bundle.others else ""
    print(f"{args.manifest}: {counts}{others} valid")
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    # The corpus is the jobs' code (it needs their ML stack): run it as they run, by command line.
    command = [sys.executable, "-m", "mixtura_jobs", "demo-data", args.dir, "--samples", str(args.samples)]
    return subprocess.call([*command, "--seed", str(args.seed), "--format", args.format])


def cmd_index(args: argparse.Namespace) -> int:
    # Indexing reads the shards with the jobs' format readers: run it as they run, by command line.
    command = [sys.executable, "-m", "mixtura_jobs", "index", args.uri]
    for flag, value in (
        ("--format", args.format),
        ("--image-root", args.image_root),
        ("--endpoint-url", args.endpoint_url),
    ):
        if value:
            command += [flag, value]
    return subprocess.call(command)


def cmd_operator(args: argparse.Namespace) -> int:
    from mixtura_operator.main import run

    run(args.namespace, args.all_namespaces, args.metrics_port, args.health_port, args.bind_address)
    return 0


def _parser() -> argparse.ArgumentParser:
    """The `mixtura` command line: a subcommand each, its handler as `func`."""
    parser = argparse.ArgumentParser(prog="mixtura", description="Find the data mixture for training a VLM.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the MixtureSearch(es) of a manifest file locally")
    run.add_argument("manifest")
    run.add_argument("--workers", type=int, default=None, help="parallel local steps (default: CPU count)")
    run.set_defaults(func=cmd_run)
    crds = sub.add_parser("crds", help="write the CRDs generated from the resource models")
    crds.add_argument("--out", default=str(CRDS_DIR))
    crds.add_argument("--check", action="store_true", help="fail when the files differ from the models")
    crds.set_defaults(func=cmd_crds)
    validate = sub.add_parser("validate", help="validate a manifest file as the API server would")
    validate.add_argument("manifest")
    validate.add_argument(
        "--cluster", action="store_true", help="also refuse what a cluster refuses (file:// URIs, local weights)"
    )
    validate.set_defaults(func=cmd_validate)
    demo = sub.add_parser("demo-data", help="make the demo corpus (no downloads)")
    demo.add_argument("dir")
    demo.add_argument("--samples", type=int, default=96)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--format", choices=["npz", "webdataset"], default="npz", help="npz shards or WebDataset tars")
    demo.set_defaults(func=cmd_demo_data)
    index = sub.add_parser("index", help="write a domain's index: its shards and their sample counts")
    index.add_argument("uri", help="the domain's URI, as in the DomainSet")
    index.add_argument("--format", choices=["webdataset", "llava", "npz"], help="detected when omitted")
    index.add_argument("--image-root", help="LLaVA: the URI the rows' image paths are relative to")
    index.add_argument("--endpoint-url", help="S3 endpoint (default: $MIXTURA_S3_ENDPOINT or AWS)")
    index.set_defaults(func=cmd_index)
    status = sub.add_parser("status", help="show a search's status (cluster, or local with --manifest)")
    status.add_argument("name")
    status.add_argument("-n", "--namespace", default="default")
    status.add_argument("--manifest", help="the manifest file of a local `mixtura run`")
    status.set_defaults(func=cmd_status)
    export = sub.add_parser(
        "export",
        help="write a search's mixture in a trainer's format (see README)",
        epilog="--source DOMAIN=VALUE (megatron: a domain's data prefix; webdataset: its shard URLs) and any "
        "other option go to `python -m mixtura_jobs export`.",
    )
    export.add_argument("name")
    export.add_argument("-n", "--namespace", default="default")
    export.add_argument("--manifest", help="the manifest file of a local `mixtura run`")
    export.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    export.add_argument("--trial", help="a trial's mixture instead of the final one")
    export.add_argument("--out", help="output file (samples: .parquet, else JSON lines); default stdout")
    export.set_defaults(func=cmd_export)
    op = sub.add_parser("operator", help="run the Kubernetes operator (kopf)")
    scope = op.add_mutually_exclusive_group(required=True)
    scope.add_argument("--namespace", action="append", help="a namespace to watch (repeatable)")
    scope.add_argument("--all-namespaces", action="store_true")
    op.add_argument("--metrics-port", type=int, default=8080)
    op.add_argument("--health-port", type=int, default=8081)
    op.add_argument("--bind-address", default="0.0.0.0")
    op.set_defaults(func=cmd_operator)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # Options export does not know go on to the jobs' export, which defines and checks them.
    args, passed_on = parser.parse_known_args(argv)
    if passed_on and args.func is not cmd_export:
        parser.error(f"unrecognized arguments: {' '.join(passed_on)}")
    args.passed_on = passed_on
    try:
        return args.func(args)
    except ManifestError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
