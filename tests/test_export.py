"""`mixtura export`: each format read back by the library that consumes it."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from datasets import Dataset, interleave_datasets

from mixtura_jobs.data import mixture_exports
from mixtura_operator import layout
from mixtura_operator.api.manifests import load
from mixtura_operator.driver import snapshot
from mixtura_operator.local_runner import local_store
from pipeline_manifests import domain_set, mixture_search, write_manifest

MIXTURA = [sys.executable, "-m", "mixtura_operator.cli"]
RECORD = {"weights": {"digits": 0.5, "text": 0.3, "video": 0.2}}


def test_interleave_datasets_takes_the_hf_probabilities_in_domain_order():
    domains = ["digits", "text", "video"]
    p = mixture_exports.domain_probabilities(RECORD, domains)
    parts = [Dataset.from_dict({"domain": [name] * 2000}) for name in domains]
    mixed = interleave_datasets(parts, probabilities=p, seed=0, stopping_strategy="first_exhausted")
    counts = collections.Counter(mixed["domain"])
    shares = np.array([counts[name] for name in domains]) / sum(counts.values())
    np.testing.assert_allclose(shares, [0.5, 0.3, 0.2], atol=0.03)


def test_webdataset_resamples_the_shard_list_by_weight(tmp_path):
    shards = {}
    for name, n_shards in (("digits", 2), ("text", 1), ("video", 3)):
        shards[name] = []
        for k in range(n_shards):
            url = str(tmp_path / f"{name}-{k:05d}.tar")
            with wds.TarWriter(url) as sink:
                for i in range(4):
                    sink.write({"__key__": f"{name}-{k}-{i}", "txt": name})
            shards[name].append(url)
    listing = mixture_exports.webdataset_shards(RECORD, shards)
    assert len(listing["resampled"]) == mixture_exports.RESAMPLED_ENTRIES
    assert sum(row["weight"] for row in listing["shards"]) == pytest.approx(1.0)
    assert {row["url"]: row["weight"] for row in listing["shards"]}[shards["video"][0]] == pytest.approx(0.2 / 3)
    dataset = wds.WebDataset(listing["resampled"], resampled=True, shardshuffle=False, seed=0).decode()
    # Whole shards of 4 samples: 750 draws of shards by weight.
    domains = [sample["txt"] for _, sample in zip(range(3000), dataset, strict=False)]
    counts = collections.Counter(domains)
    np.testing.assert_allclose([counts[n] / 3000 for n in ("digits", "text", "video")], [0.5, 0.3, 0.2], atol=0.06)


def test_megatron_blend_pairs_each_weighted_prefix_with_its_weight():
    blend = mixture_exports.megatron_blend(
        {"weights": {"a": 0.75, "b": 0.0, "c": 0.25}}, {"a": "/d/a", "b": "/d/b", "c": "/d/c"}
    )
    assert blend == "0.75000000 /d/a 0.25000000 /d/c"


def test_sample_weights_split_each_cell_evenly_and_sum_to_one():
    record = {"weights": {}, "cells": {"c0/captioning": 0.6, "none/text": 0.4, "c1/captioning": 0.0}}
    groups = {"digits": np.array(["c0/captioning"] * 3 + ["c1/captioning"]), "text": np.array(["none/text"] * 2)}
    columns = mixture_exports.sample_weights(record, groups)
    assert columns["key"] == ["digits/0", "digits/1", "digits/2", "digits/3", "text/0", "text/1"]
    np.testing.assert_allclose(columns["weight"], [0.2, 0.2, 0.2, 0.0, 0.2, 0.2])


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict]:
    """The store of a finished cell search, written by hand: its snapshot, concept assignments and final
    mixture (no job runs, so the test is about export alone)."""
    from mixtura_jobs.data.demo import make_demo_corpus

    base = tmp_path_factory.mktemp("export")
    corpus = [
        d for d in make_demo_corpus(base / "data", samples_per_domain=8, seed=0) if d["name"] in RECORD["weights"]
    ]
    manifest = write_manifest(base / "search.yaml", domain_set(corpus), mixture_search(base / "artifacts"))
    bundle = load(manifest)
    search, domainset = bundle.searches[0], bundle.domainset_for(bundle.searches[0])
    store = local_store(search, domainset)
    store.put_json(layout.SNAPSHOT, snapshot(search, domainset))
    store.put_array(layout.assignments("digits"), np.array([0, 0, 0, 0, 0, 1, 1, 1]))
    # The cells step stores each row's sample key (npz: `<shard stem>/<row>`).
    store.put_array(layout.assignment_keys("digits"), np.array([f"shard-00000/{i}" for i in range(8)]))
    cells = {"c0/captioning": 0.25, "c1/captioning": 0.25, "none/text": 0.3, "none/captioning": 0.2}
    store.put_json(layout.FINAL_MIXTURE, {**RECORD, "cells": cells, "source": "posterior-mean"})
    return manifest, cells


def export(manifest: Path, *args: str) -> subprocess.CompletedProcess:
    command = [*MIXTURA, "export", "demo", "--manifest", str(manifest), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_mixtura_export_samples_writes_parquet_whose_weights_sum_to_one_per_cell(finished, tmp_path):
    manifest, cells = finished
    out = tmp_path / "samples.parquet"
    result = export(manifest, "--format", "samples", "--out", str(out))
    assert result.returncode == 0, result.stderr
    table = pq.read_table(out).to_pydict()
    assert len(table["key"]) == 24 and table["key"][0] == "digits/0"
    assert sum(table["weight"]) == pytest.approx(1.0)
    per_cell = collections.defaultdict(float)
    for group, weight in zip(table["group"], table["weight"], strict=True):
        per_cell[group] += weight
    assert dict(per_cell) == pytest.approx(cells)
    # Five of digits' eight samples are in c0: a quarter of the mixture split five ways.
    assert table["weight"][0] == pytest.approx(0.25 / 5)


def test_mixtura_export_hf_and_json_print_the_final_mixture(finished):
    manifest, cells = finished
    hf = json.loads(export(manifest, "--format", "hf").stdout)
    assert hf == {"domains": ["digits", "text", "video"], "probabilities": pytest.approx([0.5, 0.3, 0.2])}
    record = json.loads(export(manifest, "--format", "json").stdout)
    assert record["cells"] == cells and record["weights"] == RECORD["weights"]


def test_mixtura_export_names_what_is_missing(finished):
    manifest, _ = finished
    result = export(manifest, "--format", "json", "--trial", "007")
    assert result.returncode == 2 and "no trial 007 (trials/007/mixture.json is missing)" in result.stderr
    result = export(manifest, "--format", "webdataset")
    assert result.returncode == 2 and "give the shard URLs of digits, text, video with --source" in result.stderr
