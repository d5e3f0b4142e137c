"""embed: per-sample and domain embeddings of one domain, per modality it has, from `samplesPerDomain`
samples drawn uniformly at random (seeded); only the shards (for tar shards, the byte ranges) of the drawn
samples are read."""

from __future__ import annotations

import argparse
import zlib

from mixtura_jobs.data.batching import stack, with_modality
from mixtura_jobs.search.madmix import domain_embedding
from mixtura_jobs.steps.context import StepContext
from mixtura_jobs.training.encoders import build_encoders
from mixtura_operator import layout


def run(ctx: StepContext, args: argparse.Namespace) -> None:
    step_key = f"embed/{args.domain}"
    if ctx.is_done(step_key):
        return
    spec = ctx.search.spec
    domain = next(d for d in ctx.domainset.spec.domains if d.name == args.domain)
    data = ctx.domain_data(domain.name)
    drawn = data.draw(spec.madmix.samples_per_domain, seed=[ctx.seed, zlib.crc32(domain.name.encode())])
    positions, samples = zip(*data.read(drawn), strict=True) if len(drawn) else ((), ())
    encoders = build_encoders(spec.models.embedding.config, seed=ctx.seed)
    kept = {}
    for modality in domain.modalities:
        having = [(p, s) for p, s in zip(positions, samples, strict=True) if modality in s.modalities]
        subset = with_modality([s for _, s in having], modality)
        if not subset:
            raise ValueError(f"domain {domain.name}: none of the {len(drawn)} samples drawn has {modality}")
        per_sample = encoders.embed(modality, stack(subset, encoders.image_size))
        ctx.store.put_array(layout.embedding(domain.name, modality, samples=True), per_sample)
        ctx.store.put_array(layout.embedding(domain.name, modality), domain_embedding(per_sample))
        kept[modality] = {"keys": [s.key for _, s in having], "positions": [p for p, _ in having]}
        print(f"embedded domain={domain.name} modality={modality} samples={len(per_sample)}", flush=True)
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
