"""MergeMix cost: a training step with vs without MergeMix, and a vision-tower forward with vs without ToMe.

Training step: forward + backward + AdamW of the `target` TinyVLM on one fixed batch of image samples, with
the trainer's calling convention (the clean batch's log-probabilities are reused as the SimPO winner).
Vision tower: a forward (no grad) of a CLIP vision tower with ToMe (r > 0) against the library's forward.
Every ratio compares two variants timed interleaved in the same run; each is the median of N repetitions.

    python bench/mergemix_step.py [--reps 7] [--threads 1]
"""

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from mixtura_jobs.training.mergemix import MergeMixConfig, make_mergemix_augment, mergemix_images, tome_forward
from mixtura_jobs.training.tiny_vlm import IGNORE, TinyVLM, VLMBatch, build_vlm, sft_loss

BATCH = 8
TEXT_TOKENS = 48


def make_batch(vocab: int, seed: int = 0) -> VLMBatch:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (BATCH, TEXT_TOKENS), generator=g)
    labels = ids.clone()
    labels[:, : TEXT_TOKENS // 2] = IGNORE
    return VLMBatch(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        labels=labels,
        has_image=torch.ones(BATCH, dtype=torch.bool),
        pixel_values=torch.randn(BATCH, 3, 64, 64, generator=g),
        has_video=torch.zeros(BATCH, dtype=torch.bool),
        video_values=None,
    )


def train_step(base: TinyVLM, batch: VLMBatch, config: MergeMixConfig | None) -> Callable[[], None]:
    """One step of a fresh copy of `base` on `batch`; `config=None` is plain SFT."""
    model = copy.deepcopy(base).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    augment = make_mergemix_augment(config) if config is not None else None
    rng = np.random.default_rng(0)

    def step() -> None:
        sum_logp, n_tokens = model.answer_logprobs(batch)
        loss, _ = sft_loss(sum_logp, n_tokens)
        if augment is not None:
            extra, _ = augment(model, batch, 0, rng, winner=(sum_logp, n_tokens))
            loss = loss + extra
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def tower_forward(tower: CLIPVisionModel, pixels: torch.Tensor, r: int | None) -> Callable[[], None]:
    """The library's forward (`r=None`) or the ToMe wrapper's, without gradients."""

    def forward() -> None:
        with torch.no_grad():
            if r is None:
                tower(pixel_values=pixels)
            else:
                tome_forward(tower, pixels, r)

    return forward


def median_ms(variants: dict[str, Callable[[], None]], reps: int) -> dict[str, float]:
    """Median wall time of each variant; repetitions interleave the variants so drift hits all alike."""
    for run in variants.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(reps):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def vit_tiny() -> CLIPVisionModel:
    """A DeiT-Tiny-shaped tower: 224 px, 16 px patches (196 + 1 tokens), width 192, 12 layers."""
    torch.manual_seed(0)
    config = CLIPVisionConfig(
        image_size=224,
        patch_size=16,
        hidden_size=192,
        intermediate_size=768,
        num_hidden_layers=12,
        num_attention_heads=3,
    )
    return CLIPVisionModel(config).eval()


def mixing_only(model: TinyVLM, batch: VLMBatch) -> Callable[[], None]:
    """MergeMix's own work, without the loser's VLM pass: ToMe saliency, mask and mixed images."""
    config, rng = MergeMixConfig(enabled=True), np.random.default_rng(0)
    return lambda: mergemix_images(model.vision_tower, batch.pixel_values, config, rng)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    # One thread by default: on a shared CPU, two OpenMP threads stall on each other's barriers and the
    # many small ops of a tiny model swing by 10x, which swamps the ratios.
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_vlm({"preset": "target"}, seed=0)
    batch = make_batch(model.lm.config.vocab_size)

    step = median_ms(
        {
            "sft": train_step(model, batch, None),
            "mergemix": train_step(model, batch, MergeMixConfig(enabled=True)),
            "detached": train_step(model, batch, MergeMixConfig(enabled=True, detach_loser=True)),
            "mixing": mixing_only(model, batch),
        },
        args.reps,
    )
    small = median_ms(
        {
            "library": tower_forward(model.vision_tower, batch.pixel_values, None),
            "tome": tower_forward(model.vision_tower, batch.pixel_values, 8),
        },
        args.reps,
    )
    vit, pixels = vit_tiny(), torch.randn(BATCH, 3, 224, 224)
    large = median_ms(
        {
            "library": tower_forward(vit, pixels, None),
            "wrapper": tower_forward(vit, pixels, 0),
            "tome": tower_forward(vit, pixels, 13),
        },
        args.reps,
    )

    rows = [
        ("train step (target TinyVLM): SFT vs SFT + MergeMix", step["sft"], step["mergemix"]),
        ("train step: SFT vs SFT + MergeMix, detach_loser", step["sft"], step["detached"]),
        ("train step: SFT vs MergeMix mixing alone (no loser pass)", step["sft"], step["mixing"]),
        ("vision fwd, 64 px tower (65 tokens): library vs ToMe r=8", small["library"], small["tome"]),
        (
            "vision fwd, ViT-T/16 224 px (197 tokens): library vs wrapper r=0",
            large["library"],
            large["wrapper"],
        ),
        ("vision fwd, ViT-T/16 224 px: library vs ToMe r=13", large["library"], large["tome"]),
    ]
    print(f"batch {BATCH}, {torch.get_num_threads()} threads, median of {args.reps}\n")
    print("| measurement | baseline ms | variant ms | ratio |")
    print("|---|---:|---:|---:|")
    for name, base, variant in rows:
        print(f"| {name} | {base:.1f} | {variant:.1f} | {variant / base:.2f} |")
    print(
        f"\nMergeMix step time ratio {step['mergemix'] / step['sft']:.2f} "
        f"(detach_loser {step['detached'] / step['sft']:.2f}, "
        f"mixing alone {step['mixing'] / step['sft']:.2f}); "
        f"ToMe vision forward ratio {large['tome'] / large['library']:.2f} (ViT-T/16, r=13), "
        f"{small['tome'] / small['library']:.2f} (64 px tower, r=8)"
    )


if __name__ == "__main__":
    main()
