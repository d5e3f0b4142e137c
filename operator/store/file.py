"""file:// store: a directory tree; writes are atomic so a marker never points at half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from mixtura_operator.store.base import ArtifactNotFound, ArtifactStore


class FileStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.uri = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise ValueError(f"key {key!r} escapes the store root")
        return path

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError) as error:
            raise ArtifactNotFound(key) from error

    def open_read(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError) as error:
            raise ArtifactNotFound(key) from error

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        with self.open_read(key) as handle:
            handle.seek(start)
            return handle.read(stop - start)

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )

    def has_any(self, prefix: str = "") -> bool:
        base = self._path(prefix) if prefix else self.root
        if base.is_file():
            return True
        return base.is_dir() and any(p.is_file() and not p.name.startswith(".tmp-") for p in base.rglob("*"))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def child(self, prefix: str) -> FileStore:
        return FileStore(self._path(prefix))
