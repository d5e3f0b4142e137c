"""What every step needs: the search's store, its spec snapshot, domain data, seeds and markers."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TextIO

import numpy as np

from mixtura_jobs.data.domain import DomainData, open_domain
from mixtura_jobs.data.streaming import Groups
from mixtura_jobs.training.trainer_run import cell_groups
from mixtura_operator import layout
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch
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

    def domain_data(self, name: str) -> DomainData:
        """The domain's data, read where it lives (s3:// or file://), shard by shard, never downloaded whole."""
        domain = next(d for d in self.domainset.spec.domains if d.name == name)
        return open_domain(domain, self.search.spec.artifacts.endpoint_url)

    def domain_sizes(self) -> np.ndarray:
        """Samples per domain: the DomainSet's count where given, else the domain index's."""
        return np.array(
            [
                d.samples if d.samples is not None else self.domain_data(d.name).total
                for d in self.domainset.spec.domains
            ],
            dtype=float,
        )

    def vector(self, weights: dict[str, float]) -> np.ndarray:
        return np.array([weights.get(name, 0.0) for name in self.domain_names], dtype=float)

    def as_weights(self, vector: np.ndarray) -> dict[str, float]:
        return {name: float(w) for name, w in zip(self.domain_names, vector, strict=True)}

    def cell_groups(self) -> dict[str, Groups]:
        """Each sample's concept x task cell by its key (see `contract.cell_groups`)."""
        return cell_groups(self.domainset.spec.domains, self.store.child(layout.ASSIGNMENTS))
