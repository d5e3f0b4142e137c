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


def test_has_any_takes_one_small_listing_and_goes_by_folder(store):
    assert not store.has_any() and not store.has_any("data")
    store.put_bytes("data/ab/x.npz", b"1")
    assert store.has_any() and store.has_any("data") and store.has_any("data/ab")
    assert not store.has_any("data/a"), "a folder, not a string prefix"


def test_delete_prefix_removes_every_key_in_batches(store, monkeypatch):
    from mixtura_operator.store import s3

    monkeypatch.setattr(s3, "DELETE_BATCH", 2)
    for index in range(5):
        store.put_bytes(f"run/{index}", b"")
    store.put_bytes("kept", b"")
    assert store.delete_prefix("run") == 5
    assert store.list() == ["kept"]


@pytest.mark.s3
def test_s3_moves_large_objects_in_parts_and_a_missing_bucket_is_absent(s3_server, s3_bucket, monkeypatch):
    from boto3.s3.transfer import TransferConfig

    from mixtura_operator.store import s3

    part = 5 * 2**20  # the smallest part S3 takes
    monkeypatch.setattr(s3, "TRANSFER", TransferConfig(multipart_threshold=part, multipart_chunksize=part))
    store = open_store(f"s3://{s3_bucket}/{uuid.uuid4().hex}", endpoint_url=s3_server.endpoint)
    data = np.random.default_rng(0).bytes(2 * part + 7)
    store.put_bytes("big.bin", data)
    head = store.client.head_object(Bucket=s3_bucket, Key=store._key("big.bin"))
    assert head["ETag"].strip('"').endswith("-3"), "a multipart upload's ETag counts its parts"
    assert store.get_bytes("big.bin") == data
    assert not open_store("s3://no-such-bucket-here/data", endpoint_url=s3_server.endpoint).has_any()
