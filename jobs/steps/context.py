"""What every step needs: the search's store, its spec snapshot, domain data, seeds and markers."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mixtura_jobs.data.domain import DomainData, open_domain
from mixtura_operator import layout
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch
from mixtura_operator.store import ArtifactStore, open_store


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
