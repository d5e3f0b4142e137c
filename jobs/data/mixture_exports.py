"""A mixture record in the forms other trainers take. Pure: records and counts in, plain data or text out.

A record (`final/mixture.json` or a trial's) has `weights` (domain marginals), in a cell space `cells`
(cell id -> weight) and in the factorized space `factors`; see `search/mixtures.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Entries of the resampled WebDataset shard list: enough that a shard's share of the list is its weight to
# within 1/RESAMPLED_ENTRIES.
RESAMPLED_ENTRIES = 1000


def mixture_json(record: Mapping) -> dict:
    """Domain weights, and cell weights and factors where the search had them."""
    keep = ("weights", "cells", "factors", "source", "trial")
    return {key: record[key] for key in keep if key in record}


def domain_probabilities(record: Mapping, domains: Sequence[str]) -> list[float]:
    """The domain weights in `domains` order, summing to 1 exactly as float sums go (for
    `datasets.interleave_datasets(probabilities=...)`, which checks that)."""
    p = np.array([record["weights"].get(name, 0.0) for name in domains], dtype=np.float64)
    if p.sum() <= 0:
        raise ValueError("the mixture puts no weight on any domain")
    p = p / p.sum()
    return [float(v) for v in p]


def sample_weights(record: Mapping, groups: Mapping[str, np.ndarray]) -> dict[str, list]:
    """Each sample's sampling weight, as the trainer draws: a group by its weight, then one of the group's
    samples uniformly; so a group's weight is split evenly over its samples. `groups`: each domain's
    per-sample group, its cell id for a cell mixture (one with `cells`), else the domain's name. Returns
    columns `key`, `domain`, `index` (within the domain's shards), `group`, `weight`; the weights sum to 1
    over the groups that have samples."""
    weights = record["cells"] if "cells" in record else record["weights"]
    labels = {name: np.asarray(column).astype(str) for name, column in groups.items()}
    sizes: dict[str, int] = {}
    for column in labels.values():
        for group, count in zip(*np.unique(column, return_counts=True), strict=True):
            sizes[str(group)] = sizes.get(str(group), 0) + int(count)
    total = sum(weights.get(group, 0.0) for group in sizes)
    if total <= 0:
        raise ValueError("the mixture puts no weight on any domain or cell that has samples")
    columns: dict[str, list] = {"key": [], "domain": [], "index": [], "group": [], "weight": []}
    for name, column in labels.items():
        columns["key"] += [sample_key(name, i) for i in range(len(column))]
        columns["domain"] += [name] * len(column)
        columns["index"] += list(range(len(column)))
        columns["group"] += column.tolist()
        columns["weight"] += [weights.get(g, 0.0) / sizes[g] / total for g in column.tolist()]
    return columns


def sample_key(domain: str, index: int) -> str:
    """A sample's key: its domain and its position in the domain's shards, in order."""
    return f"{domain}/{index}"


def megatron_blend(record: Mapping, prefixes: Mapping[str, str]) -> str:
    """Megatron-LM's `--data-path` blend: `weight prefix` pairs for the domains with weight (Megatron
    normalises the weights itself)."""
    names = [name for name in prefixes if record["weights"].get(name, 0.0) > 0]
    p = domain_probabilities(record, names)
    return " ".join(f"{w:.8f} {prefixes[name]}" for name, w in zip(names, p, strict=True))


def webdataset_shards(record: Mapping, shards: Mapping[str, Sequence[str]], entries: int = RESAMPLED_ENTRIES) -> dict:
    """Per-shard weights (a domain's weight split evenly over its shards, which WebDataset writers make of
    one size) and a resampled list: `entries` shard URLs, each shard repeated in proportion to its weight
    (largest remainders), so that uniform resampling of the list (`WebDataset(urls, resampled=True)`)
    draws shards by weight."""
    names = [name for name in shards if shards[name]]
    p = dict(zip(names, domain_probabilities(record, names), strict=True))
    rows = [
        {"url": url, "domain": name, "weight": p[name] / len(shards[name])} for name in names for url in shards[name]
    ]
    quota = np.array([row["weight"] for row in rows]) * entries
    counts = np.floor(quota).astype(int)
    counts[np.argsort(-(quota - counts), kind="stable")[: entries - counts.sum()]] += 1
    resampled = [row["url"] for row, count in zip(rows, counts, strict=True) for _ in range(count)]
    return {"shards": [row for row in rows if row["weight"] > 0], "resampled": resampled}
