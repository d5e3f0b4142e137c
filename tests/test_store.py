"""The same store contract for file:// and s3:// (the latter against the real loopback S3 server)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from mixtura_operator.store import ArtifactNotFound, open_store


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def store(request, tmp_path):
    if request.param == "file":
        return open_store(f"file://{tmp_path}/root")
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return open_store(f"s3://{bucket}/{uuid.uuid4().hex}", endpoint_url=server.endpoint)


def test_bytes_json_and_arrays_round_trip(store):
    store.put_bytes("a/b.bin", b"\x00\x01")
    store.put_json("a/c.json", {"x": [1, 2]})
    store.put_array("d/e.npy", np.arange(6.0).reshape(2, 3))
    assert store.get_bytes("a/b.bin") == b"\x00\x01"
    assert store.get_json("a/c.json") == {"x": [1, 2]}
    np.testing.assert_array_equal(store.get_array("d/e.npy"), np.arange(6.0).reshape(2, 3))


def test_listing_is_by_folder_not_by_string_prefix(store):
    for key in ("trials/001/_SUCCESS", "trials/0010/_SUCCESS", "trials/001/metrics.json", "spec.json"):
        store.put_bytes(key, b"")
    assert store.list("trials/001") == ["trials/001/_SUCCESS", "trials/001/metrics.json"]
    assert store.list() == sorted(
        ["spec.json", "trials/0010/_SUCCESS", "trials/001/_SUCCESS", "trials/001/metrics.json"]
    )
    assert store.list("nothing") == []


def test_missing_key_raises_and_exists_says_no(store):
    with pytest.raises(ArtifactNotFound):
        store.get_bytes("missing")
    assert not store.exists("missing")
    store.put_bytes("present", b"1")
    assert store.exists("present")


def test_child_stores_and_deletion(store):
    child = store.child("ns/search/uid")
    child.put_json("spec.json", {})
    assert store.exists("ns/search/uid/spec.json")
    assert child.list() == ["spec.json"]
    assert store.delete_prefix("ns") == 1
    assert store.list() == []


def test_directories_upload_and_download(store, tmp_path):
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "x.npz").write_bytes(b"data")
    store.upload_dir(source, "domain")
    target = store.download_dir("domain", tmp_path / "dst")
    assert (target / "sub" / "x.npz").read_bytes() == b"data"


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="unsupported artifact URI"):
        open_store("http://example/x")
