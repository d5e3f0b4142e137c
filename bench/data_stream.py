"""Streaming a WebDataset domain: memory independent of its size, bytes the embed step reads, loader speed.

    python bench/data_stream.py [--small 2000] [--large 50000] [--steps 50] [--work DIR]

In one run: the peak RSS of the embed step (512 samples) and of a 50-step proxy trial, each in its own process,
over a domain of --small and of --large samples (ratio large/small); the bytes the embed step reads against
the corpus size; and the training loader's samples/s (shuffle buffer draws, JPEG decoding included) against a
raw `tarfile` iteration that reads and decodes the same shards (ratio loader/raw).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARD_SIZE = 1000
LOADER_SHARDS = 4  # the loader comparison streams these shards of the large domain


def make_domain(path: Path, n: int) -> str:
    """`n` samples of 32 x 32 JPEGs (64 distinct pictures) with captions, as tar shards, indexed."""
    from mixtura_jobs.data.domain import index_domain
    from mixtura_jobs.data.samples import Sample
    from mixtura_jobs.data.webdataset_shards import write_tar_shards

    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)
    samples = [Sample(f"{i:08d}", (("", f"picture {i % 64} number {i}"),), image=pictures[i % 64]) for i in range(n)]
    write_tar_shards(path, samples, image_ext="jpg", shard_size=SHARD_SIZE)
    index_domain(domain_entry(path.as_uri()))
    return path.as_uri()


def domain_entry(uri: str):
    from mixtura_operator.api.domainset import Domain

    return Domain.model_validate({"name": "bench", "uri": uri, "modalities": ["image", "text"], "taskType": "vqa"})


def child(kind: str, uri: str, steps: int) -> dict:
    """Runs in its own process: one embed step or one trial, then the process's peak RSS."""
    import torch

    torch.set_num_threads(1)
    if kind == "embed":
        from mixtura_jobs.steps import embed
        from mixtura_jobs.steps.context import StepContext
        from mixtura_operator import layout
        from mixtura_operator.store import open_store

        entry = domain_entry(uri).wire()
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(Path(tmp).as_uri())
            search = {
                "apiVersion": "mixtura.dev/v1alpha1",
                "kind": "MixtureSearch",
                "metadata": {"name": "bench"},
                "spec": {
                    "domainSetRef": {"name": "bench"},
                    "method": "madmix",
                    "madmix": {"samplesPerDomain": 512},
                    "artifacts": {"uri": Path(tmp).as_uri()},
                },
            }
            domainset = {"apiVersion": "mixtura.dev/v1alpha1", "kind": "DomainSet", "metadata": {"name": "bench"}}
            domainset["spec"] = {"domains": [entry]}
            store.put_json(layout.SNAPSHOT, {"search": search, "domainSet": domainset})
            embed.run(StepContext.open(store.uri), argparse.Namespace(domain="bench"))
            record = store.get_json(layout.embedded_samples("bench"))
        result = {"bytesRead": record["bytesRead"], "corpusBytes": record["corpusBytes"]}
    else:
        from mixtura_jobs.data.domain import open_domain
        from mixtura_jobs.training.trainer import train_on_mixture

        data = open_domain(domain_entry(uri))
        train_on_mixture({"bench": data}, {"bench": 1.0}, {"steps": steps, "log_every": steps}, seed=0)
        result = {}
    return {**result, "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(kind: str, uri: str, steps: int) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--uri", uri, "--steps", str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def raw_tar_rate(paths: list[Path]) -> float:
    """Samples/s of reading the shards with `tarfile` and decoding each JPEG: the floor of any loader."""
    import io
    import tarfile

    from PIL import Image

    start, n = time.perf_counter(), 0
    for path in paths:
        with tarfile.open(path) as tar:
            for member in tar:
                data = tar.extractfile(member).read()
                if member.name.endswith(".jpg"):
                    np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                    n += 1
    return n / (time.perf_counter() - start)


def loader_rate(uri: str, draws: int) -> float:
    """Samples/s the training loader hands out: the shuffle buffer streaming the shards, draws by weight."""
    from mixtura_jobs.data.domain import open_domain
    from mixtura_jobs.data.streaming import mixture_data
    from mixtura_jobs.training.trainer import sample_batch_indices

    data = open_domain(domain_entry(uri))
    start = time.perf_counter()
    pools = mixture_data({"bench": data}, None, 0.2, 256, 2048, seed=0).pools
    rng = np.random.default_rng(0)
    for _ in range(draws // 16):
        sample_batch_indices({"bench": 1.0}, pools, 16, rng)
    return draws / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--child", choices=["embed", "trial"])
    parser.add_argument("--uri")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.uri, args.steps)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="mixtura-bench-"))
    uris = {n: make_domain(work / f"domain-{n}", n) for n in (args.small, args.large)}
    runs = {n: {kind: run_child(kind, uri, args.steps) for kind in ("embed", "trial")} for n, uri in uris.items()}
    shards = sorted((work / f"domain-{args.large}").glob("shard-*.tar"))[:LOADER_SHARDS]
    pattern = f"{uris[args.large]}/shard-{{000000..{len(shards) - 1:06d}}}.tar"
    from mixtura_jobs.data.domain import index_domain

    index_domain(domain_entry(pattern))
    raw = raw_tar_rate(shards)
    loader = loader_rate(pattern, len(shards) * SHARD_SIZE)

    small, large = runs[args.small], runs[args.large]
    print(f"| measurement | {args.small:,} samples | {args.large:,} samples | ratio |")
    print("|---|---:|---:|---:|")
    for kind, label in (("embed", "embed step (512 samples)"), ("trial", f"{args.steps}-step proxy trial")):
        a, b = small[kind]["peakRssMiB"], large[kind]["peakRssMiB"]
        print(f"| peak RSS, {label} (MiB) | {a:.0f} | {b:.0f} | {b / a:.2f} |")
    share = {n: r["embed"]["bytesRead"] / r["embed"]["corpusBytes"] for n, r in runs.items()}
    print(f"| bytes read by embed / corpus bytes | {share[args.small]:.1%} | {share[args.large]:.1%} | |")
    print(f"\n| loader ({len(shards) * SHARD_SIZE:,} samples) | samples/s | ratio to raw tarfile |")
    print("|---|---:|---:|")
    print(f"| raw tarfile iteration + JPEG decode | {raw:.0f} | 1.00 |")
    print(f"| training loader (shuffle buffer, draws by weight) | {loader:.0f} | {loader / raw:.2f} |")
    memory = max(large[k]["peakRssMiB"] / small[k]["peakRssMiB"] for k in ("embed", "trial"))
    print(f"\nmemory ratio {memory:.2f} (target <= 1.3), loader/raw {loader / raw:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
