"""Small real-format corpora made in code: WebDataset tar shards (img2dataset layout) and LLaVA JSON with an
image folder, with real JPEG/PNG bytes of varied sizes, and the four kinds of bad sample."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 220)}


def encode(image: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, quality=90)
    return buffer.getvalue()


def picture(rng: np.random.Generator, colour: str, height: int, width: int) -> np.ndarray:
    """A coloured square on a noisy background: the colour is what a caption names."""
    image = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
    side = min(height, width) // 2
    top, left = (height - side) // 2, (width - side) // 2
    image[top : top + side, left : left + side] = COLOURS[colour]
    return image


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def webdataset_corpus(
    root: Path, n: int, shard_size: int = 16, seed: int = 0, bad: dict[int, str] | None = None
) -> Path:
    """`n` samples in `train-000000.tar`, ...: JPEG + .txt captions for even keys, PNG + .json conversations
    for odd ones, sizes between 40 and 96 pixels. `bad` maps sample numbers to a bad kind: `image` (bytes
    that do not decode)."""
    rng = np.random.default_rng(seed)
    bad = bad or {}
    root.mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(0, n, shard_size)):
        path = root / f"train-{k:06d}.tar"
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(start, min(n, start + shard_size)):
                key, colour = f"{i:08d}", list(COLOURS)[i % 3]
                pixels = picture(rng, colour, int(rng.integers(40, 97)), int(rng.integers(40, 97)))
                ext = "jpg" if i % 2 == 0 else "png"
                image = encode(pixels, "JPEG" if ext == "jpg" else "PNG")
                if bad.get(i) == "image":
                    image = image[:40]
                _add(tar, f"{key}.{ext}", image)
                if i % 2 == 0:
                    _add(tar, f"{key}.txt", f"a {colour} square".encode())
                else:
                    talk = [
                        {"from": "human", "value": "<image>\nwhat colour is the square?"},
                        {"from": "gpt", "value": colour},
                        {"from": "human", "value": "and the background?"},
                        {"from": "gpt", "value": "dark noise"},
                    ]
                    _add(tar, f"{key}.json", json.dumps({"conversations": talk}).encode())
    return root


def corrupt_member(shard: Path, name: str) -> None:
    """Overwrite the header checksum of the member `name`: tar readers refuse the header."""
    with tarfile.open(shard) as tar:
        offset = tar.getmember(name).offset
    with open(shard, "r+b") as handle:
        handle.seek(offset + 148)
        handle.write(b"garbage!")


def llava_corpus(root: Path, n: int, seed: int = 0, bad: dict[int, str] | None = None) -> Path:
    """`n` rows in `conversations.jsonl` with images under `images/` (JPEG and PNG), every fifth row
    text-only. `bad` maps row numbers to `missing` (the image file is absent) or `no-conversations`."""
    rng = np.random.default_rng(seed)
    bad = bad or {}
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        colour = list(COLOURS)[i % 3]
        row: dict = {
            "id": f"row-{i:05d}",
            "conversations": [
                {"from": "human", "value": "<image>\ndescribe the picture"},
                {"from": "gpt", "value": f"a {colour} square"},
            ],
        }
        if i % 5 == 4:
            row.pop("id")
            row["conversations"] = [
                {"from": "human", "value": f"name colour {i % 3}"},
                {"from": "gpt", "value": colour},
            ]
        else:
            ext = "jpg" if i % 2 == 0 else "png"
            row["image"] = f"images/{i:05d}.{ext}"
            if bad.get(i) != "missing":
                pixels = picture(rng, colour, int(rng.integers(40, 97)), int(rng.integers(40, 97)))
                (root / row["image"]).write_bytes(encode(pixels, "JPEG" if ext == "jpg" else "PNG"))
        if bad.get(i) == "no-conversations":
            del row["conversations"]
        rows.append(row)
    (root / "conversations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def many_samples(root: Path, n: int, shard_size: int = 1000, side: int = 16, seed: int = 0) -> Path:
    """A large WebDataset domain made fast: `n` samples of a small JPEG (one of 64 made once) and a caption."""
    rng = np.random.default_rng(seed)
    colours = list(COLOURS)
    images = [encode(picture(rng, colours[i % 3], side, side), "JPEG") for i in range(64)]
    root.mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(0, n, shard_size)):
        with tarfile.open(root / f"shard-{k:06d}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(start, min(n, start + shard_size)):
                _add(tar, f"{i:08d}.jpg", images[i % 64])
                _add(tar, f"{i:08d}.txt", f"a {colours[i % 64 % 3]} square number {i}".encode())
    return root


def upload_real_corpora(store, prefix: str, work: Path, n: int = 24) -> list[dict]:
    """A WebDataset domain and a LLaVA domain (its images under a separate imageRoot) uploaded under
    `prefix` of `store`; their DomainSet entries."""
    webdataset_corpus(work / "captions", n, shard_size=8)
    llava = llava_corpus(work / "chat", n)
    store.upload_dir(work / "captions", f"{prefix}/captions")
    store.upload_dir(llava / "images", f"{prefix}/chat-media/images")
    store.put_bytes(f"{prefix}/chat/train.jsonl", (llava / "conversations.jsonl").read_bytes())
    root = f"{store.uri}/{prefix}"
    return [
        {
            "name": "captions",
            "uri": f"{root}/captions/train-{{000000..{(n - 1) // 8:06d}}}.tar",
            "format": "webdataset",
            "modalities": ["image", "text"],
            "taskType": "captioning",
            "weight": 1.0,
        },
        {
            "name": "chat",
            "uri": f"{root}/chat/train.jsonl",
            "imageRoot": f"{root}/chat-media",
            "modalities": ["image", "text"],
            "taskType": "vqa",
            "weight": 1.0,
        },
    ]
