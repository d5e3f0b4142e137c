"""Token merging (ToMe): bipartite soft matching with size-weighted merges and source tracking.

Tokens are (B, N, C) with the CLS token at index 0; sizes are (B, N); the source matrix is (B, N, N0).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Matching:
    """Per-image result of one bipartite matching; indices are into the A (even) and B (odd) halves."""

    unmerged: Tensor  # (B, Na - r, 1) kept A tokens, ascending, so CLS stays first
    src: Tensor  # (B, r, 1) A tokens merged away
    dst: Tensor  # (B, r, 1) the B token each of them joins

    @property
    def r(self) -> int:
        return self.src.shape[1]


def parse_r(num_layers: int, r: int | tuple[int, float] | Sequence[int]) -> list[int]:
    """Per-layer merge counts from a linear schedule (ToMe's `parse_r`).

    `r` alone merges r tokens in every layer; `(r, inflect)` keeps the mean at r with a slope:
    inflect > 0 merges fewer early and more late, inflect < 0 the reverse (a decreasing schedule).
    A list is taken as the schedule itself, padded with zeros.
    """
    if isinstance(r, Sequence) and not isinstance(r, tuple):
        if len(r) > num_layers:
            raise ValueError(f"r schedule has {len(r)} entries for {num_layers} layers")
        return [*r, *[0] * (num_layers - len(r))]
    r, inflect = r if isinstance(r, tuple) else (r, 0.0)
    if num_layers == 1:
        return [r]
    lo = int(r * (1.0 - inflect))
    hi = 2 * r - lo
    step = (hi - lo) / (num_layers - 1)
    return [int(lo + step * i) for i in range(num_layers)]


def max_merge(num_tokens: int, protected: int = 1) -> int:
    """The largest r one matching can take: each merged A token needs a distinct B partner slot."""
    return (num_tokens - protected) // 2


def bipartite_soft_matching(metric: Tensor, r: int, class_token: bool = True) -> Matching:
    """Match the r most similar A tokens to their best B token, per image.

    `metric` (B, N, C) is typically the keys averaged over heads; it is L2-normalised here.
    r is clamped to `max_merge`; the CLS token (index 0) is never merged.
    """
    r = max(0, min(r, max_merge(metric.shape[1], int(class_token))))
    with torch.no_grad():
        metric = metric / metric.norm(dim=-1, keepdim=True)
        a, b = metric[:, ::2], metric[:, 1::2]
        scores = a @ b.transpose(-1, -2)
        if class_token:
            scores[:, 0, :] = -torch.inf
        best, best_idx = scores.max(dim=-1)
        order = best.argsort(dim=-1, descending=True)[..., None]
        src = order[:, :r]
        dst = best_idx[..., None].gather(dim=1, index=src)
        unmerged = order[:, r:].sort(dim=1).values
    return Matching(unmerged=unmerged, src=src, dst=dst)


def merge(x: Tensor, m: Matching, mode: str = "sum") -> Tensor:
    """Apply a matching to (B, N, C) features: kept A tokens, then B tokens with sources reduced in."""
    if m.r == 0:
        return x
    a, b = x[:, ::2], x[:, 1::2]
    batch, _, channels = a.shape
    kept = a.gather(dim=1, index=m.unmerged.expand(batch, -1, channels))
    moved = a.gather(dim=1, index=m.src.expand(batch, -1, channels))
    b = b.scatter_reduce(1, m.dst.expand(batch, -1, channels), moved, reduce=mode)
    return torch.cat([kept, b], dim=1)


def merge_wavg(x: Tensor, sizes: Tensor, m: Matching) -> tuple[Tensor, Tensor]:
    """Size-weighted average merge; keeps sum(sizes) and sum(sizes * x) unchanged."""
    s = sizes[..., None]
    weighted = merge(x * s, m, "sum")
    s = merge(s, m, "sum")
    return (weighted / s).to(x.dtype), s[..., 0]


def merge_source(source: Tensor, m: Matching) -> Tensor:
    """Track which input tokens each merged token holds: rows are OR-ed (amax) together."""
    return merge(source, m, "amax")


def initial_state(tokens: Tensor) -> tuple[Tensor, Tensor]:
    """Sizes of ones and the identity source matrix for (B, N0, C) input tokens.

    Both are float32 whatever the tokens' dtype: bfloat16 counts exactly only up to 256.
    """
    batch, n0, _ = tokens.shape
    sizes = torch.ones(batch, n0, device=tokens.device)
    source = torch.eye(n0, device=tokens.device).expand(batch, n0, n0)
    return sizes, source
