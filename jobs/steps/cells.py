"""cells: the image concepts (clusters of the CLIP image embeddings, or another search's), every image
sample's concept, and the concept x task cells with their sample counts and caps."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mixtura_jobs.data.batching import with_modality
from mixtura_jobs.search import cell_weights, concepts
from mixtura_jobs.search.spaces import FactorizedSpace
from mixtura_jobs.steps.context import StepContext
from mixtura_jobs.steps.models import model_ref
from mixtura_jobs.training.backends import Embedder, build_embedder
from mixtura_jobs.training.device import select_placement
from mixtura_operator import layout
from mixtura_operator.api.mixturesearch import MixtureSearchSpec
from mixtura_operator.api.plan import search_space
from mixtura_operator.store import open_store

# Most typical samples kept per concept: the report's thumbnails.
EXEMPLARS = 6
# Within a task, a concept with less than this share of the task's image samples gives its samples to the
# task's nearest larger concept. Clustering always strands a few samples of a domain in another domain's
# concept; as cells of a handful of samples their caps are tiny, and a factorized weight a_i * b_j could
# respect them only if concept i or task j got next to nothing (on the demo, 0.1 % of draws did).
MIN_CELL_SHARE = 0.05
# Image samples embedded at a time beyond those the embed step drew: bounds the step's memory.
EMBED_BATCH = 64


def samples_drawn(spec: MixtureSearchSpec) -> int:
    """Samples the larger of the runs that train on a search's mixtures draws (a proxy trial, or the final
    training): the caps must hold for both, and the larger run bounds them more tightly."""
    final = spec.final_training.steps if spec.final_training.enabled else 0
    return max(spec.budget.proxy_steps, final) * spec.training.batch_size


@dataclass
class ImageEmbeddings:
    """A domain's image samples: embeddings, sample keys and domain positions, row for row."""

    vectors: np.ndarray
    keys: list[str]
    positions: list[int]


def image_embeddings(ctx: StepContext, name: str, embedder_of: Callable[[], Embedder]) -> ImageEmbeddings:
    """Every image sample's embedding: those the embed step stored, then the rest of the domain, streamed
    shard by shard and embedded a batch at a time."""
    record = ctx.store.get_json(layout.embedded_samples(name))
    drawn = record["samples"]["image"]
    result = ImageEmbeddings(
        ctx.store.get_array(layout.embedding(name, "image", samples=True)), drawn["keys"], drawn["positions"]
    )
    if record["drawn"] == record["total"]:
        return result
    seen, batch, parts = set(result.keys), [], [result.vectors]

    def flush() -> None:
        parts.append(embedder_of().embed([s for _, s in batch], ["image"])["image"])
        result.keys.extend(s.key for _, s in batch)
        result.positions.extend(p for p, _ in batch)
        batch.clear()

    for position, sample in ctx.domain_data(name).stream():
        if sample.image is not None and sample.key not in seen:
            batch.append((position, with_modality([sample], "image")[0]))
            if len(batch) == EMBED_BATCH:
                flush()
    if batch:
        flush()
    rest = len(result.keys) - len(drawn["keys"])
    print(f"embedded domain={name} modality=image samples={rest} (beyond the {len(drawn['keys'])} stored)", flush=True)
    return ImageEmbeddings(np.concatenate(parts), result.keys, result.positions)


def assign_by_task(
    embeddings: dict[str, np.ndarray], tasks: dict[str, str], centroids: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each domain's samples' concepts (and similarities), among the concepts major in the domain's task."""
    nearest = {name: concepts.assign(x, centroids)[0] for name, x in embeddings.items()}
    assigned = {}
    for task in sorted({tasks[name] for name in embeddings}):
        members = [name for name in embeddings if tasks[name] == task]
        allowed = concepts.major_concepts(np.concatenate([nearest[n] for n in members]), len(centroids), MIN_CELL_SHARE)
        assigned |= {name: concepts.assign(embeddings[name], centroids, allowed) for name in members}
    return {name: assigned[name] for name in embeddings}


def run(ctx: StepContext, args: argparse.Namespace) -> None:
    if ctx.is_done("cells"):
        return
    spec = ctx.search.spec
    domains = ctx.domainset.spec.domains
    # Built once, and only when some domain has samples the embed step did not store.
    embedder_of = functools.cache(lambda: build_embedder(model_ref(ctx, "embedding"), ctx.seed, select_placement()))
    images = {d.name: image_embeddings(ctx, d.name, embedder_of) for d in domains if "image" in d.modalities}
    embeddings = {name: e.vectors for name, e in images.items()}
    everything = np.concatenate(list(embeddings.values()))
    if args.centroids_from:
        centroids = open_store(args.centroids_from, spec.artifacts.endpoint_url).get_array(layout.CENTROIDS)
        if centroids.shape[1] != everything.shape[1]:
            raise ValueError(
                f"spec.search.conceptCentroidsFrom: its centroids have {centroids.shape[1]} dimensions, this "
                f"search's image embeddings {everything.shape[1]}: both searches need the same models.embedding"
            )
    else:
        centroids = concepts.cluster(everything, spec.search.concept_clusters, seed=ctx.seed)
    k = len(centroids)
    assigned = assign_by_task(embeddings, {d.name: d.task_type for d in domains}, centroids)
    cells = cell_weights.build_cells(
        [
            cell_weights.DomainConcepts(
                d.name,
                d.task_type,
                size,
                np.bincount(assigned[d.name][0], minlength=k) if d.name in assigned else None,
            )
            for d, size in zip(domains, ctx.domain_sizes(), strict=True)
        ],
        k,
        max_repetition=spec.search.max_repetition,
        samples_drawn=samples_drawn(spec),
    )
    if search_space(spec, ctx.domainset) == "factorized":
        FactorizedSpace(cells)  # refuses caps that no concept x task weights can respect, before any trial
    where = [(name, position) for name in assigned for position in images[name].positions]
    typical = concepts.exemplars(
        np.concatenate([labels for labels, _ in assigned.values()]),
        np.concatenate([similarity for _, similarity in assigned.values()]),
        k,
        EXEMPLARS,
    )
    names = cell_weights.concept_names(k)
    record = {
        **cell_weights.to_record(cells),
        "exemplars": {names[j]: [list(where[i]) for i in rows] for j, rows in enumerate(typical) if len(rows)},
        "maxRepetition": spec.search.max_repetition,
        "samplesDrawn": samples_drawn(spec),
        "centroidsFrom": args.centroids_from,
    }
    ctx.store.put_array(layout.CENTROIDS, centroids)
    for name, (labels, _) in assigned.items():
        ctx.store.put_array(layout.assignments(name), labels.astype(np.int64))
        ctx.store.put_array(layout.assignment_keys(name), np.array(images[name].keys, dtype=str))
    ctx.store.put_json(layout.CELLS, record)
    print(f"cells concepts={k} cells={len(cells.ids)} " + " ".join(cells.ids), flush=True)
    ctx.mark_done("cells")
