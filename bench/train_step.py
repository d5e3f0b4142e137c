"""Model throughput: samples/s of the embed step and of a training step, for the `tiny` backend and a random
LLaVA-layout `hf` VLM (CLIP tower, projector, Llama; built from a config), and the achieved TFLOP/s as a
ratio to a plain matmul measured in the same run (bf16 on a GPU, fp32 on the CPU).

    python bench/train_step.py                  # CPU: small shapes (the hf model ~30 M parameters)
    python bench/train_step.py --shape 0.5b     # a GPU: a ~0.5 B-parameter LLaVA (Qwen2-0.5B-sized LM)

FLOPs are the usual estimate, 2 x parameters x tokens per forward (x 3 for forward + backward), counting each
part (vision tower, LM) with the tokens it sees; attention's quadratic term is left out.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from hf_checkpoints import save_llava  # noqa: E402

from mixtura_jobs.data.demo import make_demo_corpus  # noqa: E402
from mixtura_jobs.data.npz_shards import read_domain  # noqa: E402
from mixtura_jobs.data.samples import Sample  # noqa: E402
from mixtura_jobs.training.backends import ModelRef, build_embedder, build_vlm_backend  # noqa: E402
from mixtura_jobs.training.device import configure_process  # noqa: E402
from mixtura_jobs.training.tiny_vlm import sft_loss  # noqa: E402
from timing import median_time  # noqa: E402

SHAPES = {
    "small": {
        "vision": {
            "image_size": 64,
            "patch_size": 8,
            "hidden_size": 192,
            "intermediate_size": 768,
            "num_hidden_layers": 4,
            "num_attention_heads": 3,
        },
        "text": {
            "hidden_size": 384,
            "intermediate_size": 1536,
            "num_hidden_layers": 6,
            "num_attention_heads": 6,
            "num_key_value_heads": 2,
            "vocab_size": 8192,
        },
    },
    "0.5b": {  # CLIP ViT-B/16 at 224 px and a Qwen2-0.5B-sized Llama: ~0.6 B parameters
        "vision": {
            "image_size": 224,
            "patch_size": 16,
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
        },
        "text": {
            "hidden_size": 896,
            "intermediate_size": 4864,
            "num_hidden_layers": 24,
            "num_attention_heads": 14,
            "num_key_value_heads": 2,
            "vocab_size": 151936,
        },
    },
}


def matmul_tflops(placement, n: int, repeats: int) -> float:
    dtype = placement.autocast_dtype or torch.float32
    a, b = (torch.randn(n, n, device=placement.device, dtype=dtype) for _ in range(2))
    seconds = median_time(lambda: sync(placement, a @ b), repeats, warmup=True)
    return 2 * n**3 / seconds / 1e12


def sync(placement, value=None):
    if placement.device.type == "cuda":
        torch.cuda.synchronize()
    return value


def parts(model: torch.nn.Module) -> tuple[int, int]:
    """(vision tower, everything else) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    tower = next(m for name, m in model.named_modules() if name.endswith("vision_tower"))
    vision = sum(p.numel() for p in tower.parameters())
    return vision, total - vision


def forward_flops(backend, batch, samples: list[Sample]) -> float:
    vision, rest = parts(backend.model)
    images = sum(s.image is not None for s in samples)
    if backend.name == "tiny":
        side = backend.model.config["vision"]["image_size"] // backend.model.config["vision"]["patch_size"]
        visual = side * side // backend.model.config["image_pool"] ** 2
        lm_tokens = int(batch.attention_mask.sum()) + images * visual
    else:
        cfg = backend.model.config.vision_config
        side = cfg.image_size // cfg.patch_size
        lm_tokens = int(batch.inputs["attention_mask"].sum())
    return 2 * vision * images * (side * side + 1) + 2 * rest * lm_tokens


def measure(ref: ModelRef, samples: list[Sample], placement, repeats: int) -> dict[str, float]:
    backend = build_vlm_backend(ref, 0, placement)
    batch = backend.collate(samples)
    optimizer = torch.optim.AdamW(backend.model.parameters(), lr=1e-4)

    def step() -> None:
        with placement.autocast():
            loss, _ = sft_loss(*backend.answer_logprobs(batch))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(placement)

    train_s = median_time(step, repeats, warmup=True)
    embedder = build_embedder(ModelRef(ref.backend, ref.path, {}, "bench"), 0, placement)
    with placement.autocast():
        embed_s = median_time(lambda: sync(placement, embedder.embed(samples, ["image", "text"])), repeats, warmup=True)
    flops = forward_flops(backend, batch, samples)
    return {
        "params": sum(p.numel() for p in backend.model.parameters()),
        "train_sps": len(samples) / train_s,
        "train_tflops": 3 * flops / train_s / 1e12,
        "embed_sps": len(samples) / embed_s,
        "embed_tflops": flops / embed_s / 1e12 if ref.backend == "hf" else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--matmul", type=int, default=0, help="matmul side (default 1024 on CPU, 8192 on GPU)")
    args = parser.parse_args()
    placement = configure_process()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_demo_corpus(Path(tmp) / "data", samples_per_domain=args.batch, seed=0)
        digits = read_domain(next(d for d in corpus if d["name"] == "digits")["uri"].removeprefix("file://"))
        samples = [digits.sample(i, str(i)) for i in range(args.batch)]
        checkpoint = save_llava(Path(tmp) / "llava", SHAPES[args.shape])
        peak = matmul_tflops(placement, args.matmul or (8192 if placement.device.type == "cuda" else 1024), 5)
        rows = {
            "tiny (target preset)": measure(ModelRef(config={"preset": "target"}), samples, placement, args.repeats),
            f"hf LLaVA ({args.shape})": measure(ModelRef("hf", str(checkpoint)), samples, placement, args.repeats),
        }
    dtype = "bf16" if placement.autocast_dtype is not None else "fp32"
    print(
        f"device={placement.device} precision={placement.precision} batch={args.batch} "
        f"matmul baseline ({dtype}): {peak:.3f} TFLOP/s"
    )
    print(
        "| model | parameters | train samples/s | train TFLOP/s | ratio to matmul | embed samples/s | embed TFLOP/s |"
        " ratio to matmul |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        embed = (
            ("n/a (open_clip + BERT encoders)", "")
            if np.isnan(r["embed_tflops"])
            else (f"{r['embed_tflops']:.4f}", f"{r['embed_tflops'] / peak:.3f}")
        )
        print(
            f"| {name} | {r['params'] / 1e6:.1f} M | {r['train_sps']:.1f} | {r['train_tflops']:.4f} | "
            f"{r['train_tflops'] / peak:.3f} | {r['embed_sps']:.1f} | {embed[0]} | {embed[1]} |"
        )
    hf = rows[f"hf LLaVA ({args.shape})"]
    print(f"summary: hf LLaVA ({args.shape}) trains at {hf['train_tflops'] / peak:.2f}x the {dtype} matmul rate")


if __name__ == "__main__":
    main()
