"""embed: per-sample and domain embeddings of one domain, per modality it has."""

from __future__ import annotations

import argparse

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
    samples = ctx.read_domain(domain.name, max_samples=spec.madmix.samples_per_domain)
    encoders = build_encoders(spec.models.embedding.config, seed=ctx.seed)
    for modality in domain.modalities:
        per_sample = encoders.embed(modality, samples)
        ctx.store.put_array(layout.embedding(domain.name, modality, samples=True), per_sample)
        ctx.store.put_array(layout.embedding(domain.name, modality), domain_embedding(per_sample))
        print(f"embedded domain={domain.name} modality={modality} samples={len(per_sample)}", flush=True)
    ctx.mark_done(step_key)
