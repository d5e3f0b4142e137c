"""A small, seeded demo corpus made in code: seven visually and textually distinct domains.

Every source ships with an installed package (scikit-learn's digits, scikit-image's CC0 photos,
Pillow's default font, matplotlib, the stdlib's pydoc topics), so nothing is downloaded.
"""

from collections.abc import Callable
from pathlib import Path
from pydoc_data.topics import topics

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont
from skimage import data as skdata
from skimage.transform import resize
from sklearn.datasets import load_digits

from mixtura_jobs.data.npz_shards import DomainSamples, write_shards

SIZE = 64
VIDEO_FRAMES = 8

DEMO_DOMAINS: list[dict] = [
    {"name": "digits", "taskType": "captioning", "modalities": ["image", "text"]},
    {"name": "documents", "taskType": "ocr", "modalities": ["image", "text"]},
    {"name": "charts", "taskType": "vqa", "modalities": ["image", "text"]},
    {"name": "shapes", "taskType": "grounding", "modalities": ["image", "text"]},
    {"name": "photos", "taskType": "captioning", "modalities": ["image", "text"]},
    {"name": "text", "taskType": "text", "modalities": ["text"]},
    {"name": "video", "taskType": "captioning", "modalities": ["text", "video"]},
]

# fmt: off
_WORDS = [
    "the", "of", "and", "data", "model", "image", "text", "mix", "cell", "task", "loss", "step",
    "batch", "train", "test", "grid", "node", "pod", "job", "search", "trial", "score", "weight",
    "merge", "token", "patch", "frame", "video", "chart", "shape", "photo", "digit", "page",
    "line",
]
# fmt: on
_COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "orange": (240, 150, 30),
    "purple": (140, 60, 180),
}
# skimage.data images documented as CC0 / public domain, with the caption each crop gets.
_PHOTOS = {
    "astronaut": "a photo of the astronaut eileen collins",
    "chelsea": "a photo of chelsea the cat",
    "coffee": "a photo of a cup of coffee",
    "rocket": "a photo of a rocket on its launch pad",
    "horse": "a silhouette of a horse",
    "hubble_deep_field": "a photo of the hubble deep field",
    "coins": "a photo of old coins",
}


def _digit_images() -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target


def _make_digits(n: int, rng: np.random.Generator) -> DomainSamples:
    images, labels = _digit_images()
    pick = rng.integers(len(images), size=n)
    # Bilinear upscaling of the 8x8 scans, grey on black, copied to three channels.
    big = resize(images[pick], (n, SIZE, SIZE), order=1)
    rgb = np.repeat((big * 255).astype(np.uint8)[..., None], 3, axis=-1)
    answers = [f"a handwritten digit {labels[i]}" for i in pick]
    return DomainSamples(prompts=["describe the image"] * n, answers=answers, images=rgb)


def _make_documents(n: int, rng: np.random.Generator) -> DomainSamples:
    font = ImageFont.load_default(size=11)
    images, answers = [], []
    for _ in range(n):
        page = Image.new("RGB", (SIZE, SIZE), tuple(int(v) for v in rng.integers(225, 256, size=3)))
        draw = ImageDraw.Draw(page)
        x, y = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        lines = []
        for _ in range(int(rng.integers(2, 5))):
            # Words are added while they fit, so the answer is exactly the visible text.
            words = [str(rng.choice(_WORDS))]
            while True:
                longer = [*words, str(rng.choice(_WORDS))]
                if font.getlength(" ".join(longer)) > SIZE - x - 1:
                    break
                words = longer
            lines.append(" ".join(words))
            draw.text((x, y), lines[-1], fill=(20, 20, 20), font=font)
            y += 14
        images.append(np.asarray(page))
        answers.append(" ".join(lines))
    return DomainSamples(prompts=["read the text"] * n, answers=answers, images=np.stack(images))


def _make_charts(n: int, rng: np.random.Generator) -> DomainSamples:
    # One reused figure whose bars are swapped: a new figure (or ax.clear) per chart is ~20x slower.
    fig = Figure(figsize=(1, 1), dpi=SIZE)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.05, 0.05, 0.9, 0.9), xticks=[], yticks=[], ylim=(0, 1.05))
    images, answers = [], []
    for _ in range(n):
        k = int(rng.integers(3, 6))
        names = [str(c) for c in rng.permutation(list(_COLOURS))[:k]]
        heights = rng.uniform(0.2, 0.8, size=k)
        heights[rng.integers(k)] = 1.0  # a clear winner, so the answer is unambiguous
        for old in list(ax.patches):
            old.remove()
        ax.bar(range(k), heights, color=[np.array(_COLOURS[c]) / 255 for c in names])
        ax.set_xlim(-0.6, k - 0.4)
        canvas.draw()
        images.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
        answers.append(f"the {names[int(np.argmax(heights))]} bar")
    return DomainSamples(prompts=["which bar is tallest?"] * n, answers=answers, images=np.stack(images))


def _make_shapes(n: int, rng: np.random.Generator) -> DomainSamples:
    images, answers = [], []
    for _ in range(n):
        kind = str(rng.choice(["circle", "square", "triangle"]))
        side = int(rng.integers(14, 30))
        x0, y0 = (int(v) for v in rng.integers(0, SIZE - side, size=2))
        box = (x0, y0, x0 + side, y0 + side)
        canvas = Image.new("RGB", (SIZE, SIZE), tuple(int(v) for v in rng.integers(0, 90, size=3)))
        draw = ImageDraw.Draw(canvas)
        fill = tuple(int(v) for v in rng.integers(140, 256, size=3))
        if kind == "circle":
            draw.ellipse(box, fill=fill)
        elif kind == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(x0, y0 + side), (x0 + side, y0 + side), (x0 + side // 2, y0)], fill=fill)
        images.append(np.asarray(canvas))
        answers.append(f"{kind} at [{box[0]},{box[1]},{box[2]},{box[3]}]")
    return DomainSamples(prompts=["locate the shape"] * n, answers=answers, images=np.stack(images))


def _photo_sources() -> dict[str, np.ndarray]:
    sources = {}
    for name in _PHOTOS:
        img = np.asarray(getattr(skdata, name)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        img = img[..., :3].astype(np.float32) / (1.0 if img.dtype == bool else 255.0)
        # Downscale once so each crop's resize is cheap.
        scale = 192 / min(img.shape[:2])
        sources[name] = resize(img, (round(img.shape[0] * scale), round(img.shape[1] * scale)), order=1)
    return sources


def _make_photos(n: int, rng: np.random.Generator) -> DomainSamples:
    sources = _photo_sources()
    names = sorted(sources)
    images, answers = [], []
    for _ in range(n):
        name = names[int(rng.integers(len(names)))]
        src = sources[name]
        side = int(rng.integers(64, min(src.shape[:2]) + 1))
        top = int(rng.integers(0, src.shape[0] - side + 1))
        left = int(rng.integers(0, src.shape[1] - side + 1))
        crop = resize(src[top : top + side, left : left + side], (SIZE, SIZE), order=1, anti_aliasing=True)
        images.append((np.clip(crop, 0, 1) * 255).astype(np.uint8))
        answers.append(_PHOTOS[name])
    return DomainSamples(prompts=["describe the image"] * n, answers=answers, images=np.stack(images))


def _paragraphs() -> list[list[str]]:
    paragraphs = []
    for key in sorted(topics):
        for para in topics[key].split("\n\n"):
            words = para.split()
            # Prose only: code blocks and grammar rules are mostly short lines of symbols.
            if len(words) >= 20 and sum(w.isalpha() for w in words) > 0.7 * len(words):
                paragraphs.append(words)
    return paragraphs


def _make_text(n: int, rng: np.random.Generator) -> DomainSamples:
    paragraphs = _paragraphs()
    prompts, answers = [], []
    for _ in range(n):
        words = paragraphs[int(rng.integers(len(paragraphs)))]
        start = int(rng.integers(0, len(words) - 16))
        # A few words of context, then whole words up to ~56 characters: short sequences keep training fast.
        chunk = words[start + 3]
        for word in words[start + 4 : start + 16]:
            if len(chunk) + 1 + len(word) > 56:
                break
            chunk += " " + word
        prompts.append("continue: " + " ".join(words[start : start + 3]))
        answers.append(chunk)
    return DomainSamples(prompts=prompts, answers=answers)


def _make_video(n: int, rng: np.random.Generator) -> DomainSamples:
    images, labels = _digit_images()
    digit_side, speed = 24, 4
    travel = speed * (VIDEO_FRAMES - 1)
    moves = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
    videos = np.zeros((n, VIDEO_FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    answers = []
    for i in range(n):
        d = int(rng.integers(len(images)))
        sprite = (resize(images[d], (digit_side, digit_side), order=1) * 255).astype(np.uint8)
        direction = str(rng.choice(list(moves)))
        dy, dx = moves[direction]
        # Start where the whole path stays inside the frame.
        lo = [travel if step < 0 else 0 for step in (dy, dx)]
        hi = [SIZE - digit_side - (travel if step > 0 else 0) for step in (dy, dx)]
        y, x = (int(rng.integers(a, b + 1)) for a, b in zip(lo, hi, strict=True))
        for t in range(VIDEO_FRAMES):
            yt, xt = y + dy * speed * t, x + dx * speed * t
            videos[i, t, yt : yt + digit_side, xt : xt + digit_side] = sprite[..., None]
        answers.append(f"a digit {labels[d]} moving {direction}")
    return DomainSamples(prompts=["describe the video"] * n, answers=answers, videos=videos)


_IMAGE_EXT = {"photos": "jpg"}
_MAKERS: dict[str, Callable[[int, np.random.Generator], DomainSamples]] = {
    "digits": _make_digits,
    "documents": _make_documents,
    "charts": _make_charts,
    "shapes": _make_shapes,
    "photos": _make_photos,
    "text": _make_text,
    "video": _make_video,
}


def write_webdataset(path: Path, name: str, samples: DomainSamples) -> None:
    """The domain as tar shards (photos as JPEG, the other images as PNG: their text and edges stay exact)
    and its index."""
    from mixtura_jobs.data.domain import index_domain
    from mixtura_jobs.data.webdataset_shards import write_tar_shards
    from mixtura_operator.api.domainset import Domain

    write_tar_shards(path, [samples.sample(i, f"{i:06d}") for i in range(len(samples))], _IMAGE_EXT.get(name, "png"))
    index_domain(Domain(name=name, uri=path.as_uri(), modalities=["text"], task_type="text", format="webdataset"))


def make_demo_corpus(out_dir: str | Path, samples_per_domain: int = 96, seed: int = 0, fmt: str = "npz") -> list[dict]:
    """Write one shard directory per demo domain under `out_dir`, as npz or WebDataset shards; returns the
    DomainSet domain entries."""
    root = Path(out_dir).resolve()
    entries = []
    for index, domain in enumerate(DEMO_DOMAINS):
        # One stream per domain, so a domain's samples do not depend on the others.
        rng = np.random.default_rng([seed, index])
        samples = _MAKERS[domain["name"]](samples_per_domain, rng)
        if fmt == "webdataset":
            write_webdataset(root / domain["name"], domain["name"], samples)
        else:
            write_shards(root / domain["name"], samples)
        entries.append({**domain, "uri": (root / domain["name"]).as_uri(), "samples": len(samples)})
    return entries
