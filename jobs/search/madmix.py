"""MaD-Mix domain weights from multi-modal domain embeddings (see shared/methods/madmix.md).

Pure numpy. The steps follow the method notes: per-modality linear kernels summed into K_MM with
missing modalities decoupled (step 2), dual variables alpha = (K_MM + lam I)^-1 delta (step 3),
scores S = K_MM alpha (step 4) or ridge leverage scores (step 6), weights softmax(S / tau) (step 5).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

MODALITIES = ("image", "text", "video")


@dataclass(frozen=True)
class MadmixResult:
    """Every intermediate of the computation, so a report can show how the weights arose."""

    kernel: np.ndarray  # (k, k) K_MM
    delta: np.ndarray  # (k,) number of modalities per domain
    alpha: np.ndarray  # (k,) dual variables (K_MM + lam I)^-1 delta
    scores: np.ndarray  # (k,) S, the dual or the leverage scores
    weights: np.ndarray  # (k,) softmax(S / tau)


def domain_embedding(sample_embeddings: np.ndarray, max_samples: int | None = None) -> np.ndarray:
    """Step 1: L2-normalise each sample, average the first `max_samples`, L2-normalise the mean.

    Choosing which samples to pass (at random, by the caller) is not this function's business.
    """
    x = np.asarray(sample_embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"sample_embeddings must be a non-empty (n, d) array, got shape {x.shape}")
    if max_samples is not None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be at least 1, got {max_samples}")
        x = x[:max_samples]
    if not np.all(np.isfinite(x)):
        raise ValueError("sample_embeddings contain NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # An all-zero sample carries no direction; it stays zero rather than dividing by zero.
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    mean = unit.mean(axis=0)
    norm = np.linalg.norm(mean)
    if norm == 0:
        raise ValueError("the sample embeddings average to the zero vector; the domain has no direction")
    return mean / norm


def _modality_order(embeddings: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]) -> list[str]:
    if set(embeddings) != set(present):
        raise ValueError(
            f"embeddings and present must name the same modalities, got {sorted(embeddings)} and {sorted(present)}"
        )
    unknown = sorted(set(embeddings) - set(MODALITIES))
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; expected a subset of {list(MODALITIES)}")
    if not embeddings:
        raise ValueError("at least one modality is needed")
    return [v for v in MODALITIES if v in embeddings]


def _features(
    embeddings: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    domain_names: Sequence[str] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """X = [X^image X^text X^video] with rows zeroed where the modality is missing (step 2), and delta."""
    blocks, masks = [], []
    k = None
    for v in _modality_order(embeddings, present):
        e = np.asarray(embeddings[v], dtype=np.float64)
        m = np.asarray(present[v], dtype=bool)
        if e.ndim != 2 or m.shape != (e.shape[0],):
            raise ValueError(f"modality {v!r}: embeddings must be (k, d) and present (k,), got {e.shape}, {m.shape}")
        if k is None:
            k = e.shape[0]
        elif e.shape[0] != k:
            raise ValueError(f"modality {v!r} has {e.shape[0]} domains, expected {k}")
        # Rows of absent domains are ignored whatever they hold (NaN included).
        e = np.where(m[:, None], e, 0.0)
        if not np.all(np.isfinite(e)):
            raise ValueError(f"modality {v!r}: embeddings of present domains contain NaN or infinite values")
        blocks.append(e)
        masks.append(m)
    if domain_names is not None and len(domain_names) != k:
        raise ValueError(f"domain_names has {len(domain_names)} entries, expected {k}")
    delta = np.sum(masks, axis=0, dtype=np.float64)
    empty = np.flatnonzero(delta == 0)
    if empty.size:
        i = int(empty[0])
        name = f" ({domain_names[i]!r})" if domain_names is not None else ""
        raise ValueError(f"domain {i}{name} has no modality present; MaD-Mix needs at least one per domain")
    return np.concatenate(blocks, axis=1), delta


def multimodal_kernel(
    embeddings: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    domain_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """K_MM = sum_v X^[v] X^[v]^T with missing modalities decoupled, and delta_i = number of modalities.

    embeddings[v]: (k, d_v) domain embeddings; present[v]: (k,) bool.
    """
    x, delta = _features(embeddings, present, domain_names)
    return x @ x.T, delta


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _dual(x: np.ndarray, kernel: np.ndarray, delta: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """alpha = (K + lam I)^-1 delta and S = K alpha, in the primal when sum d < k."""
    k, total_dim = x.shape
    if total_dim < k:
        # Push-through identity: K (K + lam I)^-1 = X (X^T X + lam I)^-1 X^T, a (sum d)-sized solve.
        scores = x @ np.linalg.solve(x.T @ x + lam * np.eye(total_dim), x.T @ delta)
        return (delta - scores) / lam, scores  # S = K alpha = delta - lam alpha
    alpha = np.linalg.solve(kernel + lam * np.eye(k), delta)
    return alpha, kernel @ alpha


def _leverage(x: np.ndarray, kernel: np.ndarray, lam: float) -> np.ndarray:
    """Ridge leverage scores diag(K (K + lam I)^-1), in the primal when sum d < k."""
    k, total_dim = x.shape
    if total_dim < k:
        return np.einsum("ij,ji->i", x, np.linalg.solve(x.T @ x + lam * np.eye(total_dim), x.T))
    # K and (K + lam I)^-1 commute, so diag(K (K + lam I)^-1) = diag((K + lam I)^-1 K).
    return np.diag(np.linalg.solve(kernel + lam * np.eye(k), kernel)).copy()


def madmix_weights(
    embeddings: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    lam: float = 1.0,
    tau: float = 1.0,
    score: Literal["dual", "leverage"] = "dual",
    domain_names: Sequence[str] | None = None,
) -> MadmixResult:
    """MaD-Mix weights p = softmax(S / tau) with S = K_MM (K_MM + lam I)^-1 delta.

    `score="leverage"` takes S_i = [K_MM (K_MM + lam I)^-1]_ii instead (Chameleon's ridge leverage scores).
    """
    if not lam > 0:
        raise ValueError(f"lam must be positive, got {lam}")
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")
    if score not in ("dual", "leverage"):
        raise ValueError(f"score must be 'dual' or 'leverage', got {score!r}")
    x, delta = _features(embeddings, present, domain_names)
    kernel = x @ x.T
    alpha, dual = _dual(x, kernel, delta, lam)
    scores = dual if score == "dual" else _leverage(x, kernel, lam)
    return MadmixResult(kernel=kernel, delta=delta, alpha=alpha, scores=scores, weights=_softmax(scores / tau))
