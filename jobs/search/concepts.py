"""Image concepts: spherical k-means on CLIP image embeddings (shared/methods/mixatlas.md, step 2).

Pure numpy. The clusters depend on the set of embeddings, not on their order: the rows are made
canonical (distinct rows, sorted lexicographically, with their multiplicities as weights) before any
random choice, and the centroids come out sorted lexicographically. So a corpus listed in another
order, or a domain's shards read in another order, gives the same concepts.
"""

from __future__ import annotations

import numpy as np

DEFAULT_RESTARTS = 4
# k-means++ and Lloyd run on at most this many distinct rows; every row is then assigned to a centroid.
DEFAULT_MAX_SAMPLE = 20_000
MAX_ITERATIONS = 100


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine geometry); an all-zero row stays zero."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _canonical(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows in lexicographic order and how often each occurs."""
    rows, counts = np.unique(x, axis=0, return_counts=True)
    return rows, counts.astype(np.float64)


def _kmeans_pp(x: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding with the cosine distance 1 - <x, c>, rows weighted by multiplicity."""
    chosen = [int(rng.choice(len(x), p=w / w.sum()))]
    distance = 1.0 - x @ x[chosen[0]]
    for _ in range(1, k):
        p = w * np.maximum(distance, 0.0)
        if p.sum() > 0:
            index = int(rng.choice(len(x), p=p / p.sum()))
        else:  # the rows left coincide with centroids up to rounding: take the first one not chosen
            index = next(i for i in range(len(x)) if i not in chosen)
        chosen.append(index)
        distance = np.minimum(distance, 1.0 - x @ x[index])
    return x[chosen]


def _lloyd(x: np.ndarray, w: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, float]:
    """Spherical Lloyd iterations: assign by cosine, centroid = normalised weighted sum. (centroids, fit)."""
    labels = None
    for _ in range(MAX_ITERATIONS):
        similarity = x @ centroids.T
        new_labels = np.argmax(similarity, axis=1)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, w[:, None] * x)
        empty = np.linalg.norm(sums, axis=1) == 0
        # An emptied cluster restarts at the row its centroid fits worst, so k clusters survive.
        for j in np.flatnonzero(empty):
            sums[j] = x[int(np.argmin(similarity.max(axis=1)))]
            similarity[:, j] = x @ sums[j]
        centroids = normalise(sums)
    fit = float(np.sum(w * np.max(x @ centroids.T, axis=1)))
    return centroids, fit


def cluster(
    embeddings: np.ndarray,
    k: int,
    *,
    seed: int,
    restarts: int = DEFAULT_RESTARTS,
    max_sample: int = DEFAULT_MAX_SAMPLE,
) -> np.ndarray:
    """Concept centroids (k', d), unit rows in lexicographic order; k' = min(k, distinct embeddings).

    Spherical k-means with k-means++ seeding, `restarts` times on at most `max_sample` distinct rows (drawn
    by multiplicity), keeping the best fit (sum of cosine similarities to the nearest centroid).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    rows, counts = _canonical(normalise(embeddings))
    if len(rows) == 0:
        raise ValueError("no embeddings to cluster")
    rng = np.random.default_rng(seed)
    if len(rows) > max_sample:
        keep = np.sort(rng.choice(len(rows), size=max_sample, replace=False, p=counts / counts.sum()))
        rows, counts = rows[keep], np.ones(max_sample)
    k = min(k, len(rows))
    best, best_fit = None, -np.inf
    for _ in range(restarts):
        centroids, fit = _lloyd(rows, counts, _kmeans_pp(rows, counts, k, rng))
        if fit > best_fit:
            best, best_fit = centroids, fit
    return best[np.lexsort(best.T[::-1])]


def assign(
    embeddings: np.ndarray, centroids: np.ndarray, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest centroid by cosine (ties to the first) among the `allowed` ones (a (k,) mask;
    all by default), and its similarity to it."""
    similarity = normalise(embeddings) @ np.asarray(centroids, dtype=np.float64).T
    if allowed is not None:
        similarity = np.where(allowed, similarity, -np.inf)
    labels = np.argmax(similarity, axis=1)
    return labels, similarity[np.arange(len(labels)), labels]


def major_concepts(labels: np.ndarray, k: int, min_share: float) -> np.ndarray:
    """A (k,) mask of the concepts holding at least `min_share` of the rows (the largest always does)."""
    counts = np.bincount(labels, minlength=k)
    major = counts >= min_share * counts.sum()
    major[np.argmax(counts)] = True
    return major


def exemplars(labels: np.ndarray, similarity: np.ndarray, k: int, per_concept: int) -> list[np.ndarray]:
    """Per concept, the positions of its `per_concept` most typical rows (highest similarity, first wins ties)."""
    order = np.lexsort((np.arange(len(labels)), -similarity))
    return [order[labels[order] == j][:per_concept] for j in range(k)]
