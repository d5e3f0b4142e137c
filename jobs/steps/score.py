"""score: MaD-Mix weights from the domain embeddings (domains missing a modality are decoupled)."""

from __future__ import annotations

import argparse

import numpy as np

from mixtura_jobs.search.madmix import MODALITIES, madmix_weights
from mixtura_jobs.steps.context import StepContext
from mixtura_operator import layout


def run(ctx: StepContext, args: argparse.Namespace) -> None:
    if ctx.is_done("score"):
        return
    settings = ctx.search.spec.madmix
    domains = ctx.domainset.spec.domains
    embeddings, present = {}, {}
    for modality in MODALITIES:
        has = np.array([modality in d.modalities for d in domains])
        if not has.any():
            continue
        rows = [
            ctx.store.get_array(layout.embedding(d.name, modality)) if ok else None
            for d, ok in zip(domains, has, strict=True)
        ]
        dim = next(r.shape[0] for r in rows if r is not None)
        embeddings[modality] = np.stack([r if r is not None else np.zeros(dim) for r in rows])
        present[modality] = has
    result = madmix_weights(
        embeddings,
        present,
        lam=settings.lambda_,
        tau=settings.temperature,
        score=settings.score,
        domain_names=[d.name for d in domains],
    )
    ctx.store.put_json(
        layout.MADMIX,
        {
            "weights": ctx.as_weights(result.weights),
            "scores": ctx.as_weights(result.scores),
            "alpha": ctx.as_weights(result.alpha),
            "delta": ctx.as_weights(result.delta),
            "kernel": result.kernel.tolist(),
            "lambda": settings.lambda_,
            "temperature": settings.temperature,
            "score": settings.score,
        },
    )
    print("madmix " + " ".join(f"{n}={w:.4f}" for n, w in ctx.as_weights(result.weights).items()), flush=True)
    ctx.mark_done("score")
