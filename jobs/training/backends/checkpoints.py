"""A checkpoint named by a local path or a file:// or s3:// URI, as a local path: remote ones are downloaded
once per pod into the cache (`MIXTURA_CACHE`, default ~/.cache/mixtura), then reused by every later build."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from mixtura_operator.store import open_store

_COMPLETE = ".mixtura-complete"  # written last: a half-finished download is never taken for a checkpoint


def cache_root() -> Path:
    return Path(os.environ.get("MIXTURA_CACHE", Path.home() / ".cache" / "mixtura")) / "models"


def local_checkpoint(uri: str, where: str, endpoint_url: str | None = None) -> Path:
    """The local file or directory of the checkpoint at `uri`; `where` (the spec field) names it in errors."""
    if not uri.startswith("s3://"):
        path = Path(uri.removeprefix("file://")).expanduser()
        if not path.exists():
            raise ValueError(f"{where}.path: {uri} does not exist")
        return path
    parent, _, name = uri.rstrip("/").rpartition("/")
    local = cache_root() / hashlib.sha256(uri.encode()).hexdigest()[:16]
    target = local / name
    if (local / _COMPLETE).exists():
        return target
    store = open_store(parent, endpoint_url)
    # A listing by prefix also finds siblings (`model.pt` beside `model/`): keep the object and what is under it.
    keys = [key for key in store.list(name) if key == name or key.startswith(f"{name}/")]
    if not keys:
        raise ValueError(f"{where}.path: nothing stored at {uri}")
    shutil.rmtree(local, ignore_errors=True)
    local.mkdir(parents=True)
    if keys == [name]:
        target.write_bytes(store.get_bytes(name))
    else:
        store.child(name).download_dir("", target)
    (local / _COMPLETE).write_bytes(b"")
    return target
