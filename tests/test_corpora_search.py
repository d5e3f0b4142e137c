"""A whole search, run locally by `mixtura run`, from a WebDataset domain and a LLaVA-JSON domain on the S3
server: no download of the corpus, sample counts from the index the embed step writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from corpora import upload_real_corpora

from mixtura_operator.store import open_store
from pipeline_manifests import domain_set, mixture_search, write_manifest
from testbed.s3 import CREDENTIALS

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def test_a_search_runs_from_webdataset_and_llava_domains_on_s3(s3_server, s3_bucket, tmp_path: Path) -> None:
    store = open_store(f"s3://{s3_bucket}", s3_server.endpoint)
    domains = upload_real_corpora(store, "real", tmp_path / "corpora")
    search = mixture_search(tmp_path / "artifacts", max_trials=2, proxy_steps=5, final_steps=5)
    search["spec"]["search"]["conceptClusters"] = 3
    search["spec"]["artifacts"]["endpointUrl"] = s3_server.endpoint
    manifest = write_manifest(tmp_path / "search.yaml", domain_set(domains), search)
    env = {**os.environ, **CREDENTIALS, "MIXTURA_LOG_DIR": str(tmp_path / "logs")}
    run = subprocess.run(
        [sys.executable, "-m", "mixtura_operator.cli", "run", str(manifest)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (root,) = (tmp_path / "artifacts").glob("*/demo/*")
    status = json.loads((root / "status.json").read_text())
    assert status["phase"] == "Succeeded" and set(status["madmixWeights"]) == {"captions", "chat"}
    assert status["trials"]["succeeded"] == 2 and len(list(root.glob("trials/*/metrics.json"))) == 2
    embedded = json.loads((root / "embeddings/chat/samples.json").read_text())
    assert embedded["drawn"] == 24 and len(embedded["samples"]["image"]["keys"]) < 24, "text-only rows have no image"
    assert any(key.startswith("real/chat/_mixtura_index-") for key in store.list("real/chat")), "embed wrote it"
