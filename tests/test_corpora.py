"""WebDataset and LLaVA-JSON domains: samples, brace patterns, s3://, the domain index, seeded subsets read by
byte range, bad samples skipped and counted, and a step that fails naming the domain and the first bad key."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from corpora import corrupt_member, encode, llava_corpus, many_samples, picture, webdataset_corpus

from mixtura_jobs.data.bad_samples import TooManyBadSamples
from mixtura_jobs.data.domain import DataError, in_memory, open_domain
from mixtura_jobs.data.npz_shards import DomainSamples
from mixtura_jobs.data.streaming import KeyedGroups, mixture_data, split_heldout
from mixtura_jobs.data.webdataset_shards import encode_video
from mixtura_jobs.training.trainer import sample_batch_indices
from mixtura_operator import layout
from mixtura_operator.api.domainset import Domain
from mixtura_operator.domain_index import DomainLocation, count_domain
from mixtura_operator.store import open_store
from pipeline_manifests import domain_set, mixture_search

REPO = Path(__file__).resolve().parent.parent


def domain(uri: str, name: str = "d", **extra) -> Domain:
    return Domain.model_validate(
        {"name": name, "uri": uri, "modalities": ["image", "text"], "taskType": "vqa", **extra}
    )


@pytest.fixture(scope="module")
def wds(tmp_path_factory) -> Path:
    return webdataset_corpus(tmp_path_factory.mktemp("wds"), 40)


def test_webdataset_shards_by_brace_pattern(wds: Path) -> None:
    uri = f"{wds.as_uri()}/train-{{000000..000002}}.tar"
    data = open_domain(domain(uri))
    assert data.index.format == "webdataset" and data.total == 40 and len(data.index.shards) == 3
    assert (wds / DomainLocation.parse(uri).index_key).exists(), "the index is written beside the shards"
    samples = dict(data.stream())
    assert samples[0].key == "00000000" and samples[0].turns == (("", "a red square"),)
    assert samples[1].turns == (("<image>\nwhat colour is the square?", "green"), ("and the background?", "dark noise"))
    assert all(s.image.dtype == np.uint8 and s.image.shape[2] == 3 for s in samples.values())
    assert len({s.image.shape for s in samples.values()}) > 10, "images keep their own sizes"
    picked = dict(data.read([33, 2, 17]))
    assert list(picked) == [2, 17, 33]
    assert all(np.array_equal(picked[p].image, samples[p].image) and picked[p].key == samples[p].key for p in picked)
    assert data.tally.bad == 0


def test_a_seeded_subset_is_reproducible_and_uniform(wds: Path) -> None:
    data = open_domain(domain(wds.as_uri()))
    assert np.array_equal(data.draw(10, seed=3), data.draw(10, seed=3))
    assert not np.array_equal(data.draw(10, seed=3), data.draw(10, seed=4))
    assert np.array_equal(data.draw(99, seed=3), np.arange(40)), "a subset as large as the domain is all of it"
    hits = np.bincount(np.concatenate([data.draw(10, seed=s) for s in range(400)]), minlength=40)
    assert hits.min() > 60 and hits.max() < 140, "every sample is drawn about 100 times in 400 draws of 10"


@pytest.mark.s3
def test_webdataset_on_s3_reads_one_byte_range_per_sample(wds: Path, s3_server, s3_bucket) -> None:
    store = open_store(f"s3://{s3_bucket}", s3_server.endpoint)
    store.upload_dir(wds, "corpora/wds")
    uri = f"s3://{s3_bucket}/corpora/wds"
    data = open_domain(domain(uri), s3_server.endpoint)
    assert count_domain(uri, s3_server.endpoint) == {"image": 40, "text": 40}, "the operator counts from the index"
    ((_, sample),) = data.read([21])
    offsets = data.index.shards[1].offsets
    assert sample.key == "00000021" and data.bytes_read == offsets[6] - offsets[5]


def test_mixtura_index_writes_the_index_the_operator_counts_from(tmp_path: Path) -> None:
    root = webdataset_corpus(tmp_path / "wds", 20)
    assert count_domain(root.as_uri()) == {}, "without an index the operator cannot count tar shards"
    done = subprocess.run(
        [sys.executable, "-m", "mixtura_operator.cli", "index", root.as_uri()], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "webdataset, 2 shards, image 20, text 20" in done.stdout
    record = json.loads((root / "_mixtura_index.json").read_text())
    assert [s["samples"] for s in record["shards"]] == [16, 4] and len(record["shards"][0]["offsets"]) == 17
    assert count_domain(root.as_uri()) == {"image": 20, "text": 20}


def test_llava_rows_with_image_root_multi_turn_and_videos(tmp_path: Path) -> None:
    media = llava_corpus(tmp_path / "media", 10)
    frames = media / "clips" / "frames-a"
    frames.mkdir(parents=True)
    rng = np.random.default_rng(0)
    video = np.stack([picture(rng, "blue", 32, 48) for _ in range(5)])
    for t, frame in enumerate(video):
        (frames / f"{t:03d}.png").write_bytes(encode(frame, "PNG"))
    (media / "clips" / "b.mp4").write_bytes(encode_video(video))
    rows = (media / "conversations.jsonl").read_text().splitlines()
    talk = [{"from": "human", "value": "<video>\nwhat moves?"}, {"from": "gpt", "value": "nothing"}]
    rows += [json.dumps({"id": "v-a", "video": "clips/frames-a", "conversations": talk})]
    rows += [json.dumps({"id": "v-b", "video": "clips/b.mp4", "conversations": talk})]
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "train.json").write_text(json.dumps([json.loads(r) for r in rows]))
    data = open_domain(domain((tmp_path / "json" / "train.json").as_uri(), imageRoot=media.as_uri()))
    assert data.index.format == "llava" and data.index.counts() == {"image": 8, "text": 12, "video": 2}
    samples = dict(data.stream())
    assert samples[0].key == "row-00000" and samples[0].turns == (("<image>\ndescribe the picture", "a red square"),)
    assert samples[0].image.ndim == 3 and samples[4].image is None and samples[4].key == "train.json:4"
    assert samples[10].video.shape == (5, 32, 48, 3) and np.array_equal(samples[10].video, video)
    square = samples[11].video[:, 10:22, 18:30].astype(int)  # lossy mp4: the blue square survives, not the noise
    assert samples[11].video.shape == (5, 32, 48, 3) and square[..., 2].min() > 170 and square[..., 0].max() < 110


def test_the_four_kinds_of_bad_sample_are_skipped_counted_and_logged(tmp_path: Path, capsys) -> None:
    wds = webdataset_corpus(tmp_path / "wds", 40, bad={6: "image"})
    open_domain(domain(wds.as_uri()))  # indexed, then a member goes bad (a re-upload, bit rot)
    corrupt_member(wds / "train-000000.tar", "00000003.png")
    data = open_domain(domain(wds.as_uri(), maxBadSampleFraction=0.1))
    good = dict(data.stream())
    assert (
        len(good) == 38
        and 3 not in good
        and 6 not in good
        and data.tally.metrics()
        == {
            "samplesRead": 40,
            "badSamples": 2,
            "firstBadSample": "train-000000.tar:3",
        }
    )
    llava = llava_corpus(tmp_path / "llava", 20, bad={1: "missing", 2: "no-conversations"})
    data = open_domain(domain(llava.as_uri(), maxBadSampleFraction=0.1))
    good = dict(data.stream())
    assert len(good) == 18 and data.tally.bad == 2 and data.tally.first.key == "row-00001"
    log = capsys.readouterr().out
    for key, reason in [
        ("train-000000.tar:3", "corrupt tar member"),
        ("00000006", "image does not decode"),
        ("row-00001", "image file images/00001.png is missing"),
        ("row-00002", "the row has no `conversations`"),
    ]:
        assert f"key={key}: {reason}" in log


def test_a_domain_past_its_bad_sample_allowance_fails_naming_it(tmp_path: Path) -> None:
    wds = webdataset_corpus(tmp_path / "wds", 100, bad={i: "image" for i in range(7, 100, 20)})
    with pytest.raises(TooManyBadSamples, match=r"domain d: 5 of 100 .* the first is 00000007"):
        dict(open_domain(domain(wds.as_uri())).stream())
    with pytest.raises(DataError, match=r"domain d \(file://.*\): no \.tar shards"):
        open_domain(domain((tmp_path / "empty").as_uri()))


def test_the_embed_step_fails_with_the_domain_and_key_and_no_traceback(tmp_path: Path) -> None:
    wds = webdataset_corpus(tmp_path / "wds", 100, bad={i: "image" for i in range(7, 100, 20)})
    entry = {"name": "noisy", "uri": wds.as_uri(), "modalities": ["image", "text"], "taskType": "vqa"}
    search = mixture_search(tmp_path / "artifacts", method="madmix")
    search["spec"]["madmix"]["samplesPerDomain"] = 100
    store = open_store((tmp_path / "run").as_uri())
    store.put_json(layout.SNAPSHOT, {"search": search, "domainSet": domain_set([entry])})
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, "-m", "mixtura_jobs", "embed", "--search-uri", store.uri, "--domain", "noisy"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    # Bad input: the Job's podFailurePolicy fails it at once on this exit code.
    assert done.returncode == layout.EXIT_BAD_INPUT and "Traceback" not in done.stderr
    assert "error: domain noisy: 5 of 100 samples read are bad" in done.stderr and "first is 00000007" in done.stderr
    assert "skipped bad sample domain=noisy key=00000027" in done.stdout
    assert not store.exists(layout.success_marker("embed/noisy"))


def test_a_member_corrupt_before_indexing_is_a_bad_sample_of_its_own(tmp_path: Path) -> None:
    wds = webdataset_corpus(tmp_path / "wds", 8)
    corrupt_member(wds / "train-000000.tar", "00000003.png")
    data = open_domain(domain(wds.as_uri(), maxBadSampleFraction=0.5))
    good = dict(data.stream())
    assert data.tally.metrics()["firstBadSample"] == "train-000000.tar:3" and data.tally.bad == 1
    assert [s.key for s in good.values()] == [f"{i:08d}" for i in (0, 1, 2, 3, 4, 5, 6, 7)]
    assert good[4].image is None, "the orphaned caption of the lost image is a text sample"


@pytest.mark.slow
def test_embed_reads_at_most_5_percent_of_a_50000_sample_domain(tmp_path: Path, monkeypatch) -> None:
    from mixtura_jobs.data.domain import index_domain
    from mixtura_jobs.steps import embed
    from mixtura_jobs.steps.context import StepContext
    from mixtura_operator.store.file import FileStore

    big = many_samples(tmp_path / "big", 50_000)
    entry = {"name": "big", "uri": big.as_uri(), "modalities": ["image", "text"], "taskType": "vqa"}
    index_domain(Domain.model_validate(entry))  # what `mixtura index` writes
    corpus = sum(p.stat().st_size for p in big.iterdir())
    read: list[int] = []
    # Counted where the bytes leave the file store, beneath the readers' own count: whole files, ranges, and
    # what is read of opened files (a range is read through an opened file: counted once, as the range).
    get_bytes, get_range, open_read = FileStore.get_bytes, FileStore.get_range, FileStore.open_read
    in_range = []

    class Counted:
        def __init__(self, handle) -> None:
            self.handle = handle

        def read(self, size: int = -1) -> bytes:
            data = self.handle.read(size)
            read.append(0 if in_range else len(data))
            return data

        def __getattr__(self, name: str):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.handle.close()

    def counted_bytes(self, key):
        data = get_bytes(self, key)
        read.append(len(data) if self.root == big else 0)
        return data

    def counted_range(self, key, start, stop):
        in_range.append(True)
        try:
            data = get_range(self, key, start, stop)
        finally:
            in_range.pop()
        read.append(len(data) if self.root == big else 0)
        return data

    monkeypatch.setattr(FileStore, "get_bytes", counted_bytes)
    monkeypatch.setattr(FileStore, "get_range", counted_range)
    monkeypatch.setattr(FileStore, "open_read", lambda self, key: Counted(open_read(self, key)))
    search = mixture_search(tmp_path / "artifacts", method="madmix")
    search["spec"]["madmix"]["samplesPerDomain"] = 512
    store = open_store((tmp_path / "run").as_uri())
    store.put_json(layout.SNAPSHOT, {"search": search, "domainSet": domain_set([entry])})
    embed.run(StepContext.open(store.uri), argparse.Namespace(domain="big"))
    record = store.get_json(layout.embedded_samples("big"))
    assert record["drawn"] == 512 and len(record["samples"]["image"]["keys"]) == 512
    assert sum(read) <= 0.05 * corpus, f"embed read {sum(read)} of {corpus} bytes"
    assert 0 < record["bytesRead"] <= sum(read), "the step reports what it read"


def test_a_domain_larger_than_the_shuffle_buffer_streams_through_bounded_slots() -> None:
    n = 200
    samples = DomainSamples(prompts=["count"] * n, answers=[str(i) for i in range(n)])
    groups = KeyedGroups({str(i): "even" if i % 2 == 0 else "odd" for i in range(n)}, "none")
    mixture = mixture_data({"big": in_memory("big", samples)}, {"big": groups}, 0.2, 10, buffer_size=32, seed=0)
    _, heldout = split_heldout("big", n, 0.2)
    assert [s.key for s in mixture.heldout["big"]] == [str(p) for p in heldout[:10]]
    picks = sample_batch_indices({"even": 3.0, "odd": 1.0}, mixture.pools, 4000, np.random.default_rng(0))
    drawn = [int(sample.key) for _, sample in picks]
    assert abs(np.mean([k % 2 == 0 for k in drawn]) - 0.75) < 0.03
    assert not set(drawn) & set(heldout.tolist()), "held-out samples are never trained on"
    # Samples of the rarer cell that the common cell's reads pass over while the buffer is full wait a pass.
    assert len(set(drawn)) > 0.9 * (n - len(heldout)), "the stream goes round the training samples"
    assert mixture.pools["even"].parts[0].stream.size <= 32
