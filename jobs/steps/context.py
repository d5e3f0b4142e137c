"""What every step needs: the search's store, its spec snapshot, domain data, seeds and markers."""

from __future__ import annotations

import hashlib
import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TextIO

import numpy as np

from mixtura_jobs.data.npz_shards import DomainSamples, read_domain
from mixtura_jobs.search.cell_weights import sample_cells
from mixtura_operator import layout
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch
from mixtura_operator.domain_index import count_samples
from mixtura_operator.store import ArtifactStore, open_store


class _Tee(io.TextIOBase):
    """Writes to a stream and keeps a copy."""

    def __init__(self, stream: TextIO, copy: io.StringIO) -> None:
        self.stream, self.copy = stream, copy

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


@dataclass
class StepContext:
    store: ArtifactStore

    @classmethod
    def open(cls, search_uri: str) -> StepContext:
        return cls(open_store(search_uri))

    @cached_property
    def _snapshot(self) -> dict:
        return self.store.get_json(layout.SNAPSHOT)

    @cached_property
    def search(self) -> MixtureSearch:
        return MixtureSearch.model_validate(self._snapshot["search"])

    @cached_property
    def domainset(self) -> DomainSet:
        return DomainSet.model_validate(self._snapshot["domainSet"])

    @property
    def domain_names(self) -> list[str]:
        return [d.name for d in self.domainset.spec.domains]

    @property
    def seed(self) -> int:
        return self.search.spec.search.seed

    def is_done(self, step_key: str) -> bool:
        return self.store.exists(layout.success_marker(step_key))

    def mark_done(self, step_key: str) -> None:
        self.store.put_bytes(layout.success_marker(step_key), b"")

    @contextmanager
    def tee_output(self, key: str) -> Iterator[None]:
        """Copy what the block prints (stdout and stderr) to `key` in the store, also when it fails."""
        copy = io.StringIO()
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, copy), _Tee(err, copy)
        try:
            yield
        except BaseException as error:
            copy.write(f"{type(error).__name__}: {error}\n")
            raise
        finally:
            sys.stdout, sys.stderr = out, err
            self.store.put_bytes(key, copy.getvalue().encode())

    def domain_path(self, name: str) -> Path:
        """A local directory with the domain's shards (downloaded once when the URI is s3://)."""
        domain = next(d for d in self.domainset.spec.domains if d.name == name)
        if domain.uri.startswith("file://"):
            return Path(domain.uri.removeprefix("file://")).expanduser()
        cache = Path(os.environ.get("MIXTURA_CACHE", Path.home() / ".cache" / "mixtura")) / "data"
        local = cache / hashlib.sha256(domain.uri.encode()).hexdigest()[:16]
        endpoint = self.search.spec.artifacts.endpoint_url
        return open_store(domain.uri, endpoint).download_dir("", local)

    def read_domain(self, name: str, max_samples: int | None = None) -> DomainSamples:
        return read_domain(self.domain_path(name), max_samples=max_samples)

    def domain_sizes(self) -> np.ndarray:
        """Samples per domain: the DomainSet's count where given, else counted from the shards' headers."""
        return np.array(
            [
                d.samples if d.samples is not None else max(count_samples(self.domain_path(d.name)).values())
                for d in self.domainset.spec.domains
            ],
            dtype=float,
        )

    def vector(self, weights: dict[str, float]) -> np.ndarray:
        return np.array([weights.get(name, 0.0) for name in self.domain_names], dtype=float)

    def as_weights(self, vector: np.ndarray) -> dict[str, float]:
        return {name: float(w) for name, w in zip(self.domain_names, vector, strict=True)}

    def cell_groups(self, sizes: dict[str, int]) -> dict[str, np.ndarray]:
        """Each sample's concept x task cell, from the cells step's assignments; `sizes`: samples per domain."""
        return {
            d.name: sample_cells(
                d.task_type,
                self.store.get_array(layout.assignments(d.name)) if "image" in d.modalities else None,
                sizes[d.name],
            )
            for d in self.domainset.spec.domains
        }
