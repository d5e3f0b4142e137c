"""Reads the store (and an executor's job states) into the `Observed` the state machine takes."""

from __future__ import annotations

from collections.abc import Mapping

from mixtura_operator import layout
from mixtura_operator.api.cross_object import LOCAL_REFUSED, LOCAL_SCHEME
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import BaselineComparison, Objective, SurrogateFit
from mixtura_operator.domain_index import DomainLocation
from mixtura_operator.objective import objective_value
from mixtura_operator.reconcile import JobState, Observed, TrialResult
from mixtura_operator.store import ArtifactStore, open_store


def domain_data_problems(
    domainset: DomainSet, endpoint_url: str | None = None, allow_local: bool = True
) -> dict[str, str]:
    """Domains whose data URI holds nothing, by name (for a URI naming its files, nothing with the names'
    leading part); without `allow_local` (on a cluster) a file:// URI is refused unread."""
    problems: dict[str, str] = {}
    for domain in domainset.spec.domains:
        if not allow_local and domain.uri.startswith(LOCAL_SCHEME):
            problems[domain.name] = f"uri: {LOCAL_REFUSED}"
            continue
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


def read_result(store: ArtifactStore, metrics_key: str, mixture_key: str, objective: Objective) -> TrialResult | str:
    """A finished run's objective value and weights, or why its metrics do not give the objective."""
    if not store.exists(metrics_key):
        return f"{metrics_key} is missing: a trainer writes its metrics before _SUCCESS"
    try:
        value = objective_value(store.get_json(metrics_key), objective)
    except ValueError as error:  # ObjectiveError, or metrics that are not JSON
        return f"{metrics_key}: {error}"
    return TrialResult(value, store.get_json(mixture_key)["weights"])


class StoreObserver:
    """Observes one search's artifacts; finished results are immutable, so each is read once. A run that
    wrote `_SUCCESS` without a usable objective counts as failed."""

    def __init__(self, store: ArtifactStore, objective: Objective) -> None:
        self.store = store
        self.objective = objective
        self._results: dict[str, TrialResult | str] = {}

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
        trials: dict[str, TrialResult] = {}
        final = None
        for step_key in sorted(done):
            if not (step_key.startswith("trial/") or step_key == "final"):
                continue
            result = self._result(step_key)
            if isinstance(result, str):
                failed.setdefault(step_key, result)
            elif step_key == "final":
                final = result
            else:
                trials[step_key.removeprefix("trial/")] = result
        madmix = self.store.get_json(layout.MADMIX)["weights"] if "score" in done else None
        # A report written before summaries existed has none.
        has_summary = "report" in done and self.store.exists(layout.REPORT_SUMMARY)
        summary = self.store.get_json(layout.REPORT_SUMMARY) if has_summary else {}
        surrogate = summary.get("surrogate")
        return Observed(
            root_uri=self.store.uri,
            snapshot=layout.SNAPSHOT in keys,
            done=frozenset(done),
            failed=failed,
            jobs=dict(jobs),
            trials=trials,
            madmix_weights=madmix,
            final=final,
            domain_problems=dict(domain_problems),
            concept_source=concepts[0],
            concept_source_problem=concepts[1],
            comparison=tuple(BaselineComparison.model_validate(c) for c in summary.get("comparison", [])),
            surrogate=None if surrogate is None else SurrogateFit.model_validate(surrogate),
        )

    def _result(self, step_key: str) -> TrialResult | str:
        if step_key not in self._results:
            if step_key == "final":
                keys = layout.FINAL_METRICS, layout.FINAL_MIXTURE
            else:
                tid = step_key.removeprefix("trial/")
                keys = layout.trial_metrics(tid), layout.trial_mixture(tid)
            self._results[step_key] = read_result(self.store, *keys, self.objective)
        return self._results[step_key]
