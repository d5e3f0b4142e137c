"""embed: per-sample and domain embeddings of one domain, per modality it has, from `samplesPerDomain`
samples drawn uniformly at random (seeded); only the shards (for tar shards, the byte ranges) of the drawn
samples are read."""

from __future__ import annotations

import argparse
import time
import zlib

import numpy as np

from mixtura_jobs.data.samples import Sample
from mixtura_jobs.search.madmix import domain_embedding
from mixtura_jobs.steps.context import StepContext
from mixtura_jobs.steps.models import model_ref
from mixtura_jobs.training.backends import Embedder, build_embedder
from mixtura_jobs.training.device import Placement, select_placement
from mixtura_operator import layout


def embed_by_signature(
    embedder: Embedder, drawn: list[tuple[int, Sample]], modalities: list[str], placement: Placement
) -> dict[str, tuple[np.ndarray, list[int], list[str]]]:
    """{modality: (per-sample embeddings, positions, keys)}. Samples that have the same modalities are embedded
    together, so a model embeds each sample's modalities from one pass (an image-text sample's text positions
    see its image); a LLaVA domain's text-only rows add to the text modality only."""
    by_signature: dict[tuple[str, ...], list[tuple[int, Sample]]] = {}
    for position, sample in drawn:
        signature = tuple(m for m in modalities if m in sample.modalities)
        by_signature.setdefault(signature, []).append((position, sample))
    parts: dict[str, list[tuple[np.ndarray, list[int], list[str]]]] = {}
    for signature, group in by_signature.items():
        with placement.autocast():
            embedded = embedder.embed([s for _, s in group], list(signature))
        for modality, vectors in embedded.items():
            parts.setdefault(modality, []).append((vectors, [p for p, _ in group], [s.key for _, s in group]))
    return {
        m: (
            np.concatenate([v for v, _, _ in got]),
            [p for _, ps, _ in got for p in ps],
            [k for _, _, ks in got for k in ks],
        )
        for m, got in parts.items()
    }


def run(ctx: StepContext, args: argparse.Namespace) -> None:
    step_key = f"embed/{args.domain}"
    if ctx.is_done(step_key):
        return
    spec = ctx.search.spec
    domain = next(d for d in ctx.domainset.spec.domains if d.name == args.domain)
    data = ctx.domain_data(domain.name)
    drawn = data.draw(spec.madmix.samples_per_domain, seed=[ctx.seed, zlib.crc32(domain.name.encode())])
    samples = list(data.read(drawn))
    placement = select_placement()
    ref = model_ref(ctx, "embedding")
    embedder = build_embedder(ref, ctx.seed, placement)
    start = time.perf_counter()
    embedded = embed_by_signature(embedder, samples, domain.modalities, placement)
    seconds = time.perf_counter() - start
    kept = {}
    for modality in domain.modalities:
        if modality not in embedded:
            raise ValueError(f"domain {domain.name}: none of the {len(drawn)} samples drawn has {modality}")
        per_sample, positions, keys = embedded[modality]
        ctx.store.put_array(layout.embedding(domain.name, modality, samples=True), per_sample)
        ctx.store.put_array(layout.embedding(domain.name, modality), domain_embedding(per_sample))
        kept[modality] = {"keys": keys, "positions": positions}
        print(f"embedded domain={domain.name} modality={modality} samples={len(per_sample)}", flush=True)
    ctx.store.put_json(
        layout.embed_metrics(domain.name),
        {
            "backend": ref.backend,
            "samples": len(samples),
            "seconds": seconds,
            "samples_per_second": len(samples) / max(seconds, 1e-9),
            **placement.record(),
        },
    )
    record = {
        "drawn": len(drawn),
        "total": data.total,
        "bytesRead": data.bytes_read,
        "corpusBytes": data.index.bytes,
        **data.tally.metrics(),
        "samples": kept,
    }
    ctx.store.put_json(layout.embedded_samples(domain.name), record)
    print(f"embed domain={domain.name} read {data.bytes_read} of {data.index.bytes} bytes", flush=True)
    ctx.mark_done(step_key)
