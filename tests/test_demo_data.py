"""The shard format and the demo corpus: round trips, counts, determinism, answers that match the pixels."""

import re
from pathlib import Path

import numpy as np
import pytest

from mixtura_jobs.data.demo import DEMO_DOMAINS, make_demo_corpus
from mixtura_jobs.data.npz_shards import DomainSamples, read_domain, write_shards
from mixtura_jobs.training import tokenizer
from mixtura_operator.domain_index import count_samples

N = 24


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("demo")
    return root, make_demo_corpus(root, samples_per_domain=N, seed=0)


def _shard_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.npz"))}


def _samples(n: int, images: bool, videos: bool) -> DomainSamples:
    rng = np.random.default_rng(0)
    return DomainSamples(
        prompts=[f"prompt {i}" for i in range(n)],
        answers=[f"answer {i} é" for i in range(n)],
        images=rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8) if images else None,
        videos=rng.integers(0, 256, (n, 3, 64, 64, 3), dtype=np.uint8) if videos else None,
    )


@pytest.mark.parametrize(("images", "videos"), [(True, False), (False, False), (False, True), (True, True)])
def test_shards_round_trip(tmp_path: Path, images: bool, videos: bool) -> None:
    samples = _samples(12, images, videos)
    written = write_shards(tmp_path, samples, shard_size=5)
    assert [p.name for p in written] == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    back = read_domain(tmp_path)
    assert back.prompts == samples.prompts and back.answers == samples.answers
    for got, want in ((back.images, samples.images), (back.videos, samples.videos)):
        assert (got is None) == (want is None)
        if want is not None:
            np.testing.assert_array_equal(got, want)
    assert count_samples(tmp_path) == {"image": 12 * images, "text": 12, "video": 12 * videos}


def test_read_domain_stops_at_max_samples(tmp_path: Path) -> None:
    samples = _samples(12, True, False)
    write_shards(tmp_path, samples, shard_size=5)
    part = read_domain(tmp_path, max_samples=7)
    assert len(part) == 7 and part.images.shape == (7, 64, 64, 3)
    np.testing.assert_array_equal(part.images, samples.images[:7])


def test_rewriting_a_domain_drops_stale_shards(tmp_path: Path) -> None:
    write_shards(tmp_path, _samples(12, False, False), shard_size=5)
    write_shards(tmp_path, _samples(4, False, False), shard_size=5)
    assert len(read_domain(tmp_path)) == 4


def test_missing_domain_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no shard"):
        read_domain(tmp_path)


def test_select_keeps_order_and_arrays() -> None:
    samples = _samples(6, True, False)
    picked = samples.select([4, 1])
    assert picked.prompts == ["prompt 4", "prompt 1"]
    np.testing.assert_array_equal(picked.images, samples.images[[4, 1]])
    assert picked.videos is None and picked.modalities == ["image", "text"]


def test_corpus_entries_match_the_shards(corpus: tuple[Path, list[dict]]) -> None:
    root, entries = corpus
    assert [e["name"] for e in entries] == [d["name"] for d in DEMO_DOMAINS]
    assert len(entries) >= 6
    for entry in entries:
        path = Path(entry["uri"].removeprefix("file://"))
        assert path == (root / entry["name"]).resolve() and entry["samples"] == N
        counts = count_samples(path)
        assert {m for m, c in counts.items() if c} == set(entry["modalities"])
        assert all(counts[m] == N for m in entry["modalities"])
        samples = read_domain(path)
        assert samples.modalities == sorted(entry["modalities"])
        assert all(s.strip() for s in samples.prompts + samples.answers)
        if samples.images is not None:
            assert samples.images.shape == (N, 64, 64, 3) and samples.images.dtype == np.uint8
        if samples.videos is not None:
            assert samples.videos.shape[0] == N and samples.videos.shape[2:] == (64, 64, 3)


def test_corpus_is_byte_identical_for_a_seed(corpus: tuple[Path, list[dict]], tmp_path: Path) -> None:
    root, _ = corpus
    assert make_demo_corpus(tmp_path / "again", samples_per_domain=N, seed=0)[0]["samples"] == N
    assert _shard_bytes(tmp_path / "again") == _shard_bytes(root)
    make_demo_corpus(tmp_path / "other", samples_per_domain=N, seed=1)
    other = _shard_bytes(tmp_path / "other")
    assert all(other[name] != data for name, data in _shard_bytes(root).items())


def test_domains_look_and_read_different(corpus: tuple[Path, list[dict]]) -> None:
    root, entries = corpus
    domains = {e["name"]: read_domain(root / e["name"]) for e in entries}
    means = {n: d.images.mean((0, 1, 2)) for n, d in domains.items() if d.images is not None}
    names = sorted(means)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(means[a] - means[b]).max() > 5, (a, b)
    assert len({d.prompts[0].split(":")[0] for d in domains.values()}) >= 5


def test_answers_follow_from_the_drawing(corpus: tuple[Path, list[dict]]) -> None:
    root, _ = corpus
    for answer in read_domain(root / "digits").answers:
        assert re.fullmatch(r"a handwritten digit \d", answer)
    for answer in read_domain(root / "video").answers:
        assert re.fullmatch(r"a digit \d moving (left|right|up|down)", answer)
    for answer in read_domain(root / "charts").answers:
        assert re.fullmatch(r"the (red|green|blue|orange|purple) bar", answer)
    shapes = read_domain(root / "shapes")
    for image, answer in zip(shapes.images, shapes.answers, strict=True):
        _, *box = re.fullmatch(r"(circle|square|triangle) at \[(\d+),(\d+),(\d+),(\d+)\]", answer).groups()
        x0, y0, x1, y1 = map(int, box)
        # The shape's centre has the fill colour; the image corner far from the box has the background.
        centre = image[(y0 + y1) // 2 + 2, (x0 + x1) // 2].astype(int)
        corner = image[0 if y0 > 32 else 63, 0 if x0 > 32 else 63].astype(int)
        assert np.abs(centre - corner).max() > 40, answer


def test_moving_digit_moves_the_stated_way(corpus: tuple[Path, list[dict]]) -> None:
    video = read_domain(corpus[0] / "video")
    for frames, answer in zip(video.videos, video.answers, strict=True):
        ys, xs = np.indices(frames.shape[1:3])
        mass = frames[..., 0].astype(float)
        cy = (mass * ys).sum((1, 2)) / mass.sum((1, 2))
        cx = (mass * xs).sum((1, 2)) / mass.sum((1, 2))
        direction = answer.rsplit(" ", 1)[1]
        delta = {
            "left": cx[0] - cx[-1],
            "right": cx[-1] - cx[0],
            "up": cy[0] - cy[-1],
            "down": cy[-1] - cy[0],
        }
        assert delta[direction] > 20, answer


def test_tokenizer_round_trips_and_marks_specials() -> None:
    text = "read the text: naïve ✓"
    ids = tokenizer.encode(text, add_bos=True, add_eos=True)
    assert ids[0] == tokenizer.BOS_ID and ids[-1] == tokenizer.EOS_ID
    assert all(0 <= i < tokenizer.VOCAB_SIZE for i in ids)
    assert tokenizer.decode(ids) == text
    assert len(set(tokenizer.SPECIAL_IDS.values())) == 4
    assert min(tokenizer.SPECIAL_IDS.values()) == 256
