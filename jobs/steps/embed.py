"""embed: per-sample and domain embeddings of one domain, per modality it has."""

from __future__ import annotations

import argparse
import time

from mixtura_jobs.search.madmix import domain_embedding
from mixtura_jobs.steps.context import StepContext
from mixtura_jobs.steps.models import model_ref
from mixtura_jobs.training.backends import build_embedder
from mixtura_jobs.training.device import select_placement
from mixtura_operator import layout


def run(ctx: StepContext, args: argparse.Namespace) -> None:
    step_key = f"embed/{args.domain}"
    if ctx.is_done(step_key):
        return
    spec = ctx.search.spec
    domain = next(d for d in ctx.domainset.spec.domains if d.name == args.domain)
    samples = ctx.read_domain(domain.name, max_samples=spec.madmix.samples_per_domain)
    placement = select_placement()
    ref = model_ref(ctx, "embedding")
    embedder = build_embedder(ref, ctx.seed, placement)
    start = time.perf_counter()
    with placement.autocast():
        embedded = embedder.embed(
            [samples.sample(i, f"{domain.name}/{i}") for i in range(len(samples))], domain.modalities
        )
    seconds = time.perf_counter() - start
    for modality, per_sample in embedded.items():
        ctx.store.put_array(layout.embedding(domain.name, modality, samples=True), per_sample)
        ctx.store.put_array(layout.embedding(domain.name, modality), domain_embedding(per_sample))
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
    ctx.mark_done(step_key)
