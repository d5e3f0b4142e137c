"""ToMe invariants (sizes, source matrix, weighted sums) and the CLIP vision-tower wrapper."""

import open_clip
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import CLIPVisionModel

from mixtura_jobs.training.mergemix.tome import (
    bipartite_soft_matching,
    initial_state,
    max_merge,
    merge_source,
    merge_wavg,
    parse_r,
)
from mixtura_jobs.training.mergemix.vision import tome_forward
from tiny_models import clip_vision_tower


def hf_tower(layers: int = 3) -> CLIPVisionModel:
    return clip_vision_tower(layers)


def open_clip_model() -> open_clip.CLIP:
    torch.manual_seed(0)
    return open_clip.CLIP(
        embed_dim=64,
        vision_cfg={"image_size": 64, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
        text_cfg={"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    ).eval()


def images(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def assert_invariants(sizes: torch.Tensor, source: torch.Tensor, n0: int) -> None:
    assert torch.all(sizes.sum(dim=1) == n0)
    assert torch.all(source.sum(dim=1) == 1), "every input token is held by exactly one merged token"
    assert set(source.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(source.sum(dim=2), sizes)


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 3),
    n=st.integers(2, 40),
    channels=st.integers(2, 8),
    r=st.integers(0, 25),
    seed=st.integers(0, 2**16),
)
def test_one_merge_keeps_sizes_sources_and_weighted_sum(batch: int, n: int, channels: int, r: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, channels, generator=g, dtype=torch.float64)
    metric = torch.randn(batch, n, channels, generator=g, dtype=torch.float64)
    sizes, source = initial_state(x)
    m = bipartite_soft_matching(metric, r)
    merged, new_sizes = merge_wavg(x, sizes, m)
    new_source = merge_source(source, m)

    assert merged.shape[1] == n - min(r, max_merge(n)) == new_sizes.shape[1] == new_source.shape[1]
    assert_invariants(new_sizes, new_source, n)
    torch.testing.assert_close((new_sizes[..., None] * merged).sum(1), (sizes[..., None] * x).sum(1))
    assert torch.all(new_source[:, 0, 0] == 1) and torch.all(new_sizes[:, 0] == 1), "CLS never merged"
    torch.testing.assert_close(merged[:, 0], x[:, 0])


@settings(max_examples=40, deadline=None)
@given(n0=st.integers(3, 70), r=st.lists(st.integers(0, 20), min_size=1, max_size=6), seed=st.integers(0, 2**16))
def test_sizes_sum_to_n0_after_every_layer(n0: int, r: list[int], seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, n0, 4, generator=g, dtype=torch.float64)
    sizes, source = initial_state(x)
    for r_layer in r:
        m = bipartite_soft_matching(torch.randn(x.shape, generator=g, dtype=torch.float64), r_layer)
        x, sizes = merge_wavg(x, sizes, m)
        source = merge_source(source, m)
        assert_invariants(sizes, source, n0)


def test_bfloat16_tokens_keep_exact_float32_sizes():
    x = torch.randn(1, 4, 8).bfloat16()
    sizes = torch.tensor([[1.0, 300.0, 257.0, 3.0]])  # 257 has no bfloat16 value
    merged, new_sizes = merge_wavg(x, sizes, bipartite_soft_matching(x, 1))
    assert merged.dtype == torch.bfloat16 and new_sizes.dtype == torch.float32
    assert sorted(new_sizes[0].tolist()) in ([1.0, 3.0, 557.0], [1.0, 260.0, 300.0])


def test_matching_merges_the_most_similar_pair():
    metric = torch.eye(5)[None].clone()
    metric[0, 2] = metric[0, 3]  # token 2 (in A) duplicates token 3 (in B)
    m = bipartite_soft_matching(metric, 1)
    _, source = initial_state(metric)
    holder = merge_source(source, m)[0, :, 2].argmax()
    assert merge_source(source, m)[0, holder].nonzero().flatten().tolist() == [2, 3]


def test_parse_r_schedules():
    assert parse_r(4, 8) == [8, 8, 8, 8]
    rising, falling = parse_r(5, (8, 0.5)), parse_r(5, (8, -0.5))
    assert rising == sorted(rising) and falling == sorted(falling, reverse=True)
    assert sum(rising) == pytest.approx(40, abs=5) and sum(falling) == pytest.approx(40, abs=5)
    assert parse_r(1, 8) == [8]
    assert parse_r(4, [3, 2]) == [3, 2, 0, 0]
    with pytest.raises(ValueError, match="5 entries for 4 layers"):
        parse_r(4, [1] * 5)


def test_hf_wrapper_without_merging_matches_the_library():
    tower, x = hf_tower(), images()
    with torch.no_grad():
        out = tome_forward(tower, x, r=0)
        expected = tower(pixel_values=x).last_hidden_state
    torch.testing.assert_close(out.tokens, expected)
    assert out.grid == (8, 8) and out.patch_size == 8 and out.merged_fraction == 0


def test_open_clip_wrapper_without_merging_matches_the_library():
    model, x = open_clip_model(), images()
    with torch.no_grad():
        out = tome_forward(model, x, r=0)
        pooled = model.visual.ln_post(out.tokens)[:, 0] @ model.visual.proj
        torch.testing.assert_close(pooled, model.visual(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("make", "layers"), [(hf_tower, 3), (open_clip_model, 2)])
@pytest.mark.parametrize("proportional", [False, True])
def test_wrapper_merges_and_tracks_sources(make, layers: int, proportional: bool):
    with torch.no_grad():
        out = tome_forward(make(), images(), r=8, proportional_attention=proportional)
    assert out.tokens.shape[1] == 65 - 8 * layers
    assert_invariants(out.sizes, out.source, 65)
    assert out.merged_fraction == pytest.approx(8 * layers / 64)


def test_cls_attention_is_read_with_the_source_at_that_layer_input():
    tower = hf_tower(layers=3)
    with torch.no_grad():
        first = tome_forward(tower, images(), r=8, score_layer=0)
        last = tome_forward(tower, images(), r=8, score_layer=-1)
    torch.testing.assert_close(first.score_source, torch.eye(65).expand(2, 65, 65))
    assert last.score_source.shape == (2, 65 - 16, 65) and last.cls_attention.shape == (2, 65 - 16)
    torch.testing.assert_close(last.cls_attention.sum(1), torch.full((2,), 4.0))  # one softmax row per head


def test_proportional_attention_is_a_no_op_without_merging():
    tower = hf_tower()
    with torch.no_grad():
        plain = tome_forward(tower, images(), r=0)
        proportional = tome_forward(tower, images(), r=0, proportional_attention=True)
        merged_plain = tome_forward(tower, images(), r=8)
        merged_proportional = tome_forward(tower, images(), r=8, proportional_attention=True)
    torch.testing.assert_close(plain.tokens, proportional.tokens)
    assert not torch.allclose(merged_plain.tokens, merged_proportional.tokens)


def test_score_layer_outside_the_tower_is_refused():
    with pytest.raises(ValueError, match="score_layer 3 is outside a tower of 3 layers"):
        tome_forward(hf_tower(), images(), r=0, score_layer=3)


def test_unknown_tower_is_refused():
    with pytest.raises(TypeError, match="neither a transformers nor an open_clip"):
        tome_forward(torch.nn.Linear(2, 2), images(), r=0)
