"""The artifact-store interface: keys are '/'-separated paths under the store's root URI."""

from __future__ import annotations

import io
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


class ArtifactNotFound(KeyError):
    """The key does not exist in the store."""


class ArtifactStore(ABC):
    """Bytes in, bytes out. Everything else (JSON, arrays, directories) is built on the four primitives."""

    uri: str

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A stream of the key's bytes, read as consumed (a whole shard never sits in memory)."""

    @abstractmethod
    def get_range(self, key: str, start: int, stop: int) -> bytes:
        """Bytes [start, stop) of the key: one sample out of a shard without reading the rest."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every key under `prefix`, sorted."""

    @abstractmethod
    def has_any(self, prefix: str = "") -> bool:
        """Whether any key lies under `prefix`, from one small listing (at most one key)."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def child(self, prefix: str) -> ArtifactStore:
        """A store rooted at `prefix` under this one."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    def put_json(self, key: str, value: Any) -> None:
        self.put_bytes(key, json.dumps(value, indent=2, sort_keys=True).encode())

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def put_array(self, key: str, array: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        self.put_bytes(key, buffer.getvalue())

    def get_array(self, key: str) -> np.ndarray:
        return np.load(io.BytesIO(self.get_bytes(key)), allow_pickle=False)

    def delete_prefix(self, prefix: str = "") -> int:
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def upload_file(self, path: Path, key: str) -> None:
        """A local file to `key`; stores that can stream it (s3: multipart) override this."""
        self.put_bytes(key, path.read_bytes())

    def download_file(self, key: str, path: Path) -> None:
        path.write_bytes(self.get_bytes(key))

    def upload_dir(self, local: Path, prefix: str) -> None:
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            self.upload_file(path, f"{prefix}/{path.relative_to(local).as_posix()}")

    def download_dir(self, prefix: str, local: Path) -> Path:
        """Copy every key under `prefix` into `local`; keys already there are kept."""
        for key in self.list(prefix):
            target = local / key[len(prefix) :].lstrip("/")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                self.download_file(key, target)
        return local


def open_store(
    uri: str, endpoint_url: str | None = None, credentials: Mapping[str, str] | None = None
) -> ArtifactStore:
    """The store for a `file://` or `s3://` URI. S3 credentials: `credentials` (AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, a search's Secret), else the environment's."""
    if uri.startswith("file://"):
        from mixtura_operator.store.file import FileStore

        return FileStore(Path(os.path.expanduser(uri.removeprefix("file://"))))
    if uri.startswith("s3://"):
        from mixtura_operator.store.s3 import S3Store

        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        return S3Store(
            bucket, prefix.strip("/"), endpoint_url or os.environ.get("MIXTURA_S3_ENDPOINT"), credentials=credentials
        )
    raise ValueError(f"unsupported artifact URI {uri!r}: expected file://PATH or s3://BUCKET/PREFIX")
