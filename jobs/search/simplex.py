"""Small helpers on the probability simplex: Dirichlet designs and caps."""

import numpy as np

# Dirichlet concentrations must be positive; this floor lets a zero entry of the center be sampled
# (almost always near zero) instead of failing.
_MIN_CONCENTRATION = 1e-3


def uniform_weights(d: int) -> np.ndarray:
    """The uniform mixture over d domains."""
    if d < 1:
        raise ValueError(f"d must be at least 1, got {d}")
    return np.full(d, 1.0 / d)


def _check_simplex(w: np.ndarray, what: str) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or np.any(w < 0) or abs(w.sum() - 1.0) > 1e-6:
        raise ValueError(f"{what} must be a non-negative vector summing to 1")
    return w / w.sum()


def dirichlet_design(
    n: int,
    center: np.ndarray,
    rng: np.random.Generator,
    strength_range: tuple[float, float] = (0.1, 5.0),
) -> np.ndarray:
    """n mixtures around `center`, RegMix-style: Dirichlet(strength * d * center), strength log-uniform.

    Small strengths give sparse mixtures near the vertices, large ones mixtures close to the center.
    """
    center = _check_simplex(center, "center")
    low, high = strength_range
    if not 0 < low <= high:
        raise ValueError(f"strength_range must satisfy 0 < low <= high, got {strength_range}")
    strengths = np.exp(rng.uniform(np.log(low), np.log(high), size=n))
    concentrations = np.maximum(strengths[:, None] * center.size * center, _MIN_CONCENTRATION)
    # Gamma draws normalised row-wise are Dirichlet draws, one concentration vector per row.
    g = rng.standard_gamma(concentrations)
    sums = g.sum(axis=1, keepdims=True)
    # With tiny concentrations every gamma draw can underflow to 0; such a row falls back to the center.
    return np.where(sums > 0, g / np.where(sums > 0, sums, 1.0), center)


def apply_caps(w: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Clip each mixture (vector or rows) at per-domain `caps` and hand the excess to the uncapped domains.

    The excess goes to domains still below their cap in proportion to their weight (to their remaining room
    when they all have weight 0), repeated until nothing is left over; the result stays on the simplex.
    """
    w = np.asarray(w, dtype=np.float64)
    caps = np.asarray(caps, dtype=np.float64)
    if caps.shape != w.shape[-1:]:
        raise ValueError(f"caps must have one entry per domain ({w.shape[-1]}), got shape {caps.shape}")
    if np.any(caps < 0) or caps.sum() < 1.0 - 1e-12:
        raise ValueError(f"caps must be non-negative and sum to at least 1, got sum {caps.sum():.6g}")
    out = np.minimum(w, caps)
    # Each pass caps at least one more domain or places all the excess, so d passes suffice.
    for _ in range(w.shape[-1]):
        excess = 1.0 - out.sum(axis=-1, keepdims=True)
        if np.all(excess <= 1e-15):
            break
        room = caps - out
        free = room > 0
        share = np.where(free, out, 0.0)
        share = np.where(share.sum(axis=-1, keepdims=True) > 0, share, np.where(free, room, 0.0))
        total = share.sum(axis=-1, keepdims=True)
        # Normalise the shares before scaling: excess * share underflows when a share is subnormal.
        fraction = share / np.where(total > 0, total, 1.0)
        out = np.minimum(out + np.maximum(excess, 0.0) * fraction, caps)
    return out


def random_batch(q: int, d: int, seed: int, center: np.ndarray | None = None) -> np.ndarray:
    """q mixtures from the initial design's Dirichlet around `center` (uniform by default), seeded: what the
    `random` method draws in the plain domain space (SimplexSpace.sample); test and benchmark data."""
    center = uniform_weights(d) if center is None else center
    return dirichlet_design(q, center, np.random.default_rng(seed))
