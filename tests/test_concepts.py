"""Image concepts: spherical k-means that does not depend on the order of the samples."""

import numpy as np
import pytest

from mixtura_jobs.search.concepts import assign, cluster, exemplars, major_concepts, normalise


def blobs(n_per: int = 60, k: int = 4, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k well-separated directions, n_per noisy samples around each (not normalised)."""
    rng = np.random.default_rng(seed)
    centres = normalise(rng.normal(size=(k, d)))
    labels = np.repeat(np.arange(k), n_per)
    x = (centres[labels] + 0.1 * rng.normal(size=(k * n_per, d))) * rng.uniform(0.5, 3.0, size=(k * n_per, 1))
    return x, labels


def test_clusters_recover_separated_directions_and_every_sample_gets_its_nearest_centroid():
    x, truth = blobs()
    centroids = cluster(x, 4, seed=0)
    assert centroids.shape == (4, 16)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-12)
    labels, similarity = assign(x, centroids)
    # Same partition as the truth, up to the names of the clusters.
    assert len({(t, label) for t, label in zip(truth, labels, strict=True)}) == 4
    full = normalise(x) @ centroids.T
    np.testing.assert_array_equal(labels, full.argmax(axis=1))
    np.testing.assert_allclose(similarity, full.max(axis=1))


def test_clusters_are_the_same_for_any_order_of_the_samples():
    x, _ = blobs(k=6, seed=1)
    centroids = cluster(x, 6, seed=3)
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(x))
        np.testing.assert_array_equal(cluster(x[order], 6, seed=3), centroids)
        labels, _ = assign(x[order], centroids)
        np.testing.assert_array_equal(labels, assign(x, centroids)[0][order])
    # In canonical (lexicographic) order.
    assert [tuple(c) for c in centroids] == sorted(tuple(c) for c in centroids)


def test_bounded_sample_is_order_free_too_and_the_seed_decides():
    x, _ = blobs(n_per=200, k=5, seed=2)
    order = np.random.default_rng(0).permutation(len(x))
    a = cluster(x, 5, seed=0, max_sample=150)
    np.testing.assert_array_equal(cluster(x[order], 5, seed=0, max_sample=150), a)
    np.testing.assert_array_equal(cluster(x, 5, seed=0, max_sample=150), a)


def test_fewer_distinct_samples_than_k_give_fewer_clusters():
    x = np.repeat(np.eye(3), 5, axis=0)
    centroids = cluster(x, 10, seed=0)
    np.testing.assert_array_equal(centroids, np.eye(3)[::-1])
    assert len(cluster(2 * x[:1], 4, seed=0)) == 1


def test_refuses_nothing_to_cluster():
    with pytest.raises(ValueError, match="no embeddings"):
        cluster(np.empty((0, 4)), 3, seed=0)
    with pytest.raises(ValueError, match="at least 1"):
        cluster(np.eye(3), 0, seed=0)


def test_exemplars_are_the_most_typical_members():
    labels = np.array([0, 1, 0, 0, 1])
    similarity = np.array([0.5, 0.9, 0.7, 0.7, 0.2])
    first, second = exemplars(labels, similarity, 2, per_concept=2)
    assert first.tolist() == [2, 3] and second.tolist() == [1, 4]


def test_a_concept_with_a_few_stray_rows_gives_them_to_the_nearest_major_one() -> None:
    centroids = normalise(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.7, 0.0, 0.7]]))
    x = np.array([[1.0, 0.1, 0.0]] * 30 + [[0.1, 1.0, 0.0]] * 30 + [[0.6, 0.0, 0.8]])
    labels, _ = assign(x, centroids)
    assert np.bincount(labels).tolist() == [30, 30, 1]
    major = major_concepts(labels, 3, 0.05)
    assert major.tolist() == [True, True, False]
    labels, similarity = assign(x, centroids, major)
    assert np.bincount(labels, minlength=3).tolist() == [31, 30, 0]
    assert np.all(np.isfinite(similarity))
    # The largest concept stays, however small a share it holds.
    assert major_concepts(np.array([0, 1, 2]), 3, 0.5).tolist() == [True, False, False]
