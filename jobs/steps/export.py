"""export: the chosen mixture (or a trial's) in the form a trainer takes; `mixtura export` runs this.

`python -m mixtura_jobs export --search-uri URI --format FORMAT [--trial ID] [--source NAME=VALUE ...]
[--out PATH]`; JSON and text go to stdout without `--out`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from braceexpand import braceexpand

from mixtura_jobs.data import mixture_exports
from mixtura_jobs.data.streaming import group_of
from mixtura_jobs.steps.context import StepContext
from mixtura_operator import layout

FORMATS = ("json", "samples", "hf", "megatron", "webdataset")


class ExportError(Exception):
    """Bad export arguments or a search without the mixture asked for: a message for the user."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--trial", help="a trial's mixture instead of the final one")
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="DOMAIN=VALUE",
        help="megatron: the domain's data prefix (default: its name); webdataset: its shard URLs (brace "
        "notation, required for every weighted domain)",
    )
    parser.add_argument("--out", help="output file (samples: .parquet, else JSON lines); default stdout")


def mixture_record(ctx: StepContext, trial: str | None) -> dict:
    key = layout.FINAL_MIXTURE if trial is None else layout.trial_mixture(trial)
    if not ctx.store.exists(key):
        what = "the search has not chosen its mixture yet" if trial is None else f"no trial {trial}"
        raise ExportError(f"{ctx.store.uri}: {what} ({key} is missing)")
    record = ctx.store.get_json(key)
    return record if trial is None else {**record, "trial": trial}


def _sources(args: argparse.Namespace, domains: list[str]) -> dict[str, str]:
    sources = {}
    for entry in args.source:
        name, sep, value = entry.partition("=")
        if not sep or name not in domains:
            raise ExportError(f"--source {entry!r}: expected DOMAIN=VALUE with DOMAIN one of {', '.join(domains)}")
        sources[name] = value
    return sources


def _groups(ctx: StepContext, record: dict) -> dict:
    """Each domain's per-sample group in the domain's order: for a cell mixture its cell (by the sample's key,
    so the whole domain is read once), else the domain."""
    if "cells" not in record:
        return {name: [name] * int(n) for name, n in zip(ctx.domain_names, ctx.domain_sizes(), strict=True)}
    keyed = ctx.cell_groups()
    return {
        name: [group_of(keyed[name], sample.key) for _, sample in ctx.domain_data(name).stream()]
        for name in ctx.domain_names
    }


def _write_samples(columns: dict[str, list], out: str | None) -> None:
    if out is not None and out.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(columns), out)
        return
    rows = (json.dumps(dict(zip(columns, values, strict=True))) for values in zip(*columns.values(), strict=True))
    _write_text("\n".join(rows) + "\n", out)


def _write_text(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        Path(out).write_text(text)


def export(ctx: StepContext, args: argparse.Namespace) -> None:
    record = mixture_record(ctx, args.trial)
    names = ctx.domain_names
    sources = _sources(args, names)
    if args.format == "samples":
        _write_samples(mixture_exports.sample_weights(record, _groups(ctx, record)), args.out)
        return
    if args.format == "json":
        document = mixture_exports.mixture_json(record)
    elif args.format == "hf":
        document = {"domains": names, "probabilities": mixture_exports.domain_probabilities(record, names)}
    elif args.format == "megatron":
        _write_text(mixture_exports.megatron_blend(record, {n: sources.get(n, n) for n in names}) + "\n", args.out)
        return
    else:
        missing = [n for n in names if record["weights"].get(n, 0.0) > 0 and n not in sources]
        if missing:
            raise ExportError(f"--format webdataset: give the shard URLs of {', '.join(missing)} with --source")
        document = mixture_exports.webdataset_shards(record, {n: list(braceexpand(sources[n])) for n in sources})
    _write_text(json.dumps(document, indent=2) + "\n", args.out)


def run(args: argparse.Namespace) -> int:
    try:
        export(StepContext.open(args.search_uri), args)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
