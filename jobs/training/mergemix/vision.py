"""Run a CLIP vision tower block by block with ToMe between attention and MLP.

A wrapper, not a fork: it reads the weights of a transformers `CLIPVisionModel` (4.x and 5.x layouts)
or an open_clip `VisionTransformer` (or a `CLIP` holding one) and recomputes attention itself, so that it
can add proportional attention and read the CLS attention row. No attention dropout is applied.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from .tome import bipartite_soft_matching, initial_state, merge_source, merge_wavg, parse_r


@dataclass(frozen=True)
class Block:
    """What ToMe needs from one pre-norm transformer block."""

    norm1: Callable[[Tensor], Tensor]
    qkv: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]
    out: Callable[[Tensor], Tensor]  # attention output projection (and layer scale)
    mlp: Callable[[Tensor], Tensor]  # the whole MLP residual branch: norm, MLP (and layer scale)
    num_heads: int


@dataclass(frozen=True)
class Tower:
    embed: Callable[[Tensor], Tensor]  # pixels (B, 3, H, W) -> input tokens (B, 1 + L, D), CLS first
    blocks: list[Block]
    patch_size: int


@dataclass(frozen=True)
class ToMeOutput:
    tokens: Tensor  # (B, K, D) output of the last block, before the tower's final norm
    sizes: Tensor  # (B, K) input tokens held by each merged token
    source: Tensor  # (B, K, 1 + L) one-hot columns: which merged token holds each input token
    cls_attention: Tensor  # (B, K_s) CLS -> token attention at the score layer, summed over heads
    score_source: Tensor  # (B, K_s, 1 + L) the source matrix at the score layer's input
    grid: tuple[int, int]
    patch_size: int

    @property
    def merged_fraction(self) -> float:
        """Fraction of the L patch tokens merged away by the last layer."""
        n0, k = self.source.shape[2], self.source.shape[1]
        return (n0 - k) / (n0 - 1)


def _hf_block(layer: nn.Module) -> Block:
    attn = layer.self_attn
    return Block(
        norm1=layer.layer_norm1,
        qkv=lambda h: (attn.q_proj(h), attn.k_proj(h), attn.v_proj(h)),
        out=attn.out_proj,
        mlp=lambda x: layer.mlp(layer.layer_norm2(x)),
        num_heads=attn.num_heads,
    )


def _hf_tower(model: nn.Module) -> Tower:
    def embed(pixel_values: Tensor) -> Tensor:
        return model.pre_layrnorm(model.embeddings(pixel_values))

    blocks = [_hf_block(layer) for layer in model.encoder.layers]
    return Tower(embed=embed, blocks=blocks, patch_size=model.embeddings.patch_size)


def _open_clip_block(block: nn.Module) -> Block:
    attn = block.attn
    if not isinstance(attn, nn.MultiheadAttention):
        raise TypeError(f"open_clip block {type(block).__name__} is not supported: needs nn.MultiheadAttention")
    return Block(
        norm1=block.ln_1,
        qkv=lambda h: F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1),
        out=lambda o: block.ls_1(attn.out_proj(o)),
        mlp=lambda x: block.ls_2(block.mlp(block.ln_2(x))),
        num_heads=attn.num_heads,
    )


def _open_clip_tower(visual: nn.Module) -> Tower:
    blocks = [_open_clip_block(b) for b in visual.transformer.resblocks]
    return Tower(embed=visual._embeds, blocks=blocks, patch_size=visual.patch_size[0])


def adapt_tower(tower: nn.Module) -> Tower:
    """Find the blocks of a transformers or open_clip CLIP vision tower."""
    while hasattr(tower, "vision_model"):
        tower = tower.vision_model
    tower = getattr(tower, "visual", tower)
    if hasattr(tower, "embeddings") and hasattr(tower, "encoder"):
        return _hf_tower(tower)
    if hasattr(tower, "conv1") and hasattr(tower, "transformer"):
        return _open_clip_tower(tower)
    raise TypeError(f"{type(tower).__name__} is neither a transformers nor an open_clip CLIP vision tower")


def _heads(x: Tensor, num_heads: int) -> Tensor:
    batch, n, dim = x.shape
    return x.reshape(batch, n, num_heads, dim // num_heads).transpose(1, 2)


def cls_attention_row(q: Tensor, k: Tensor, bias: Tensor | None) -> Tensor:
    """CLS query's softmax attention over all keys, summed over heads, in float32: (B, H, N, d) -> (B, N)."""
    logits = (q[:, :, :1] @ k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5
    if bias is not None:
        logits = logits + bias
    return logits.softmax(dim=-1).sum(dim=1)[:, 0]


def tome_forward(
    tower: nn.Module,
    pixel_values: Tensor,
    r: int | tuple[int, float] | Sequence[int],
    score_layer: int = -1,
    proportional_attention: bool = False,
) -> ToMeOutput:
    """Forward a CLIP vision tower with r tokens merged per layer, tracking sizes and sources.

    `r` is anything `parse_r` takes; `score_layer` (negative counts from the end) is where the CLS
    attention row is read, together with the source matrix at that layer's input.
    """
    t = adapt_tower(tower)
    grid = (pixel_values.shape[-2] // t.patch_size, pixel_values.shape[-1] // t.patch_size)
    x = t.embed(pixel_values)
    if x.shape[1] != 1 + grid[0] * grid[1]:
        raise ValueError(f"tower gave {x.shape[1]} tokens for a {grid} grid; is patch dropout active?")
    depth = len(t.blocks)
    if not -depth <= score_layer < depth:
        raise ValueError(f"score_layer {score_layer} is outside a tower of {depth} layers")
    schedule = parse_r(depth, r)
    score_layer %= depth
    sizes, source = initial_state(x)
    for i, (block, r_i) in enumerate(zip(t.blocks, schedule, strict=True)):
        q, k, v = (_heads(z, block.num_heads) for z in block.qkv(block.norm1(x)))
        bias = sizes.log()[:, None, None, :].to(q.dtype) if proportional_attention else None
        if i == score_layer:
            cls_attention, score_source = cls_attention_row(q, k, bias), source
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + block.out(attended.transpose(1, 2).flatten(2))
        matching = bipartite_soft_matching(k.mean(dim=1), r_i)
        x, sizes = merge_wavg(x, sizes, matching)
        source = merge_source(source, matching)
        x = x + block.mlp(x)
    return ToMeOutput(x, sizes, source, cls_attention, score_source, grid, t.patch_size)
