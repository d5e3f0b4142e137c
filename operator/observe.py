"""Reads the store (and an executor's job states) into the `Observed` the state machine takes."""

from __future__ import annotations

from collections.abc import Mapping

from mixtura_operator import layout
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.domain_index import DomainLocation
from mixtura_operator.reconcile import JobState, Observed, TrialResult
from mixtura_operator.store import ArtifactStore, open_store


def domain_data_problems(domainset: DomainSet, endpoint_url: str | None = None) -> dict[str, str]:
    """Domains whose data URI holds nothing, by name (for a URI naming its files, nothing with the names'
    leading part)."""
    problems: dict[str, str] = {}
    for domain in domainset.spec.domains:
        location = DomainLocation.parse(domain.uri)
        lead = (location.pattern or "").split("{")[0]
        try:
            empty = not any(key.startswith(lead) for key in open_store(location.root, endpoint_url).list())
        except Exception as error:
            problems[domain.name] = f"cannot read {domain.uri}: {type(error).__name__}: {error}"
            continue
        if empty:
            problems[domain.name] = f"no data at {domain.uri}"
    return problems


def concept_source(store: ArtifactStore | None, finished: bool, name: str) -> tuple[str | None, str | None]:
    """(root URI, problem) of the search that `spec.search.conceptCentroidsFrom` names, from its store (None
    before it has one): its root once its cells exist; a problem once nothing more will come (`finished`)."""
    if store is not None and store.exists(layout.success_marker("cells")):
        return store.uri, None
    if finished:
        return None, f"MixtureSearch {name!r} has no concept centroids (its cells step never finished)"
    return None, None


class StoreObserver:
    """Observes one search's artifacts; finished results are immutable, so each is read once."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self._trials: dict[str, TrialResult] = {}

    def observe(
        self,
        jobs: Mapping[str, JobState],
        domain_problems: Mapping[str, str],
        concepts: tuple[str | None, str | None] = (None, None),
    ) -> Observed:
        """`concepts`: what `concept_source` says of the search's conceptCentroidsFrom."""
        keys = self.store.list()
        done, failed = set(), {}
        for key in keys:
            step_key = layout.step_key_of_marker(key)
            if step_key is None:
                continue
            if key.endswith("_SUCCESS"):
                done.add(step_key)
            else:
                failed[step_key] = self.store.get_bytes(key).decode(errors="replace")
        for step_key in done:
            tid = step_key.removeprefix("trial/")
            if step_key.startswith("trial/") and tid not in self._trials:
                metrics = self.store.get_json(layout.trial_metrics(tid))
                weights = self.store.get_json(layout.trial_mixture(tid))["weights"]
                self._trials[tid] = TrialResult(float(metrics["objective"]), weights)
        madmix = self.store.get_json(layout.MADMIX)["weights"] if "score" in done else None
        final = None
        if "final" in done:
            final = TrialResult(
                float(self.store.get_json(layout.FINAL_METRICS)["objective"]),
                self.store.get_json(layout.FINAL_MIXTURE)["weights"],
            )
        return Observed(
            root_uri=self.store.uri,
            snapshot=layout.SNAPSHOT in keys,
            done=frozenset(done),
            failed=failed,
            jobs=dict(jobs),
            trials=dict(self._trials),
            madmix_weights=madmix,
            final=final,
            domain_problems=dict(domain_problems),
            concept_source=concepts[0],
            concept_source_problem=concepts[1],
        )
