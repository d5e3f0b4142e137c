"""The trainer contract from a trainer's side (docs/trainer-contract.md): a user's own training script reads its
run from the environment, draws batches by the proposed mixture and writes its metrics back.

    run = TrainerRun.from_env()
    sampler = run.sampler({"charts": chart_keys, "documents": document_keys})   # each domain's sample keys
    for step in range(run.steps):
        keys = sampler.draw(16)            # [(domain, index into its keys), ...]: reading them is yours
        if step % 20 == 0:  # held-out metrics, as in metrics.json: early stopping reads their objective
            run.report_progress(step, {"heldout_loss": evaluate(model)})
    run.write_metrics({"heldout_loss": {"charts": 2.1, "documents": 2.4}})
    run.succeed()
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mixtura_jobs.data.sampling import MixtureSampler
from mixtura_jobs.data.streaming import Groups, KeyedGroups, group_of
from mixtura_jobs.search.cell_weights import sample_cells
from mixtura_operator import layout, trainer_contract
from mixtura_operator.api.domainset import Domain, DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch, Objective
from mixtura_operator.objective import ObjectiveError, objective_value
from mixtura_operator.store import ArtifactStore, open_store


def cell_groups(domains: Sequence[Domain], assignments: ArtifactStore) -> dict[str, Groups]:
    """Each domain's samples' concept x task cells by sample key, from the cells step's assignments (the store
    under `cells/assignments`); samples without an image (every sample of a domain without images) are in the
    domain's task's no-concept cell."""
    groups: dict[str, Groups] = {}
    for d in domains:
        no_image = str(sample_cells(d.task_type, None, 1)[0])
        if "image" in d.modalities:
            labels = assignments.get_array(f"{d.name}.npy")
            keys = assignments.get_array(f"{d.name}.keys.npy").tolist()
            cells = sample_cells(d.task_type, labels, len(labels)).tolist()
            groups[d.name] = KeyedGroups(dict(zip(keys, cells, strict=True)), no_image)
        else:
            groups[d.name] = no_image
    return groups


class ProgressLog:
    """A run's `progress.json`: the objective at each checkpoint so far, a list of {step, objective} rewritten
    whole at each report (a store has no append), which early stopping reads while the run goes on."""

    def __init__(self, store: ArtifactStore, key: str, objective: Objective) -> None:
        self.store, self.key, self.objective = store, key, objective
        self.reports: list[dict] = []

    def report(self, step: int, metrics: Mapping) -> None:
        """Held-out metrics at `step`, named as in `metrics.json`; those that do not give the objective (it may
        be measured only at the end) are not reported: a warning says why, and the run goes on."""
        try:
            value = objective_value(metrics, self.objective)
        except ObjectiveError as error:
            print(f"progress at step {step} not reported: {error}", file=sys.stderr, flush=True)
            return
        self.reports.append({"step": int(step), "objective": value})
        self.store.put_json(self.key, self.reports)


class ContractError(RuntimeError):
    """The environment does not carry the trainer contract's variables."""


@dataclass(frozen=True)
class TrainerRun:
    """One run a trainer is asked for: a proxy trial or the final training."""

    search_uri: str
    mixture_uri: str
    assignments_uri: str
    output_uri: str
    steps: int
    seed: int
    trial: str
    model_config: dict

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TrainerRun:
        env = os.environ if env is None else env
        names = (
            trainer_contract.SEARCH_URI,
            trainer_contract.MIXTURE_URI,
            trainer_contract.ASSIGNMENTS_URI,
            trainer_contract.OUTPUT_URI,
            trainer_contract.STEPS,
            trainer_contract.SEED,
            trainer_contract.TRIAL,
        )
        missing = [name for name in names if name not in env]
        if missing:
            raise ContractError(f"not run by Mixtura: {', '.join(missing)} not set (see docs/trainer-contract.md)")
        return cls(
            search_uri=env[trainer_contract.SEARCH_URI],
            mixture_uri=env[trainer_contract.MIXTURE_URI],
            assignments_uri=env[trainer_contract.ASSIGNMENTS_URI],
            output_uri=env[trainer_contract.OUTPUT_URI],
            steps=int(env[trainer_contract.STEPS]),
            seed=int(env[trainer_contract.SEED]),
            trial=env[trainer_contract.TRIAL],
            model_config=json.loads(env.get(trainer_contract.MODEL_CONFIG, "{}")),
        )

    @cached_property
    def mixture(self) -> dict:
        """The mixture record: `weights` (per domain) and, in a cell space, `cells` (per concept x task cell)."""
        return _get_json(self.mixture_uri)

    @cached_property
    def _snapshot(self) -> dict:
        return open_store(self.search_uri).get_json(layout.SNAPSHOT)

    @cached_property
    def domains(self) -> list[Domain]:
        """The DomainSet's domains (name, uri, modalities, taskType): where the trainer finds its data."""
        return DomainSet.model_validate(self._snapshot["domainSet"]).spec.domains

    def groups(self, keys: Mapping[str, Sequence[str]]) -> dict[str, np.ndarray] | None:
        """Each domain's cell id per sample when the mixture weighs cells (None when it weighs domains). `keys`:
        each domain's sample keys in the trainer's order (the format's own: WebDataset `__key__`, LLaVA `id`,
        npz `<shard stem>/<row>`)."""
        if "cells" not in self.mixture:
            return None
        by_key = cell_groups(self.domains, open_store(self.assignments_uri))
        return {name: np.array([group_of(by_key[name], key) for key in keys[name]]) for name in keys}

    def sampler(
        self, keys: Mapping[str, Sequence[str]], heldout: Mapping[str, np.ndarray] | None = None
    ) -> MixtureSampler:
        """Draws (domain, index into its `keys`) by the mixture (its cells when it has them), seeded with the
        run's seed. `heldout`: indices per domain never to draw (the trainer's own evaluation samples)."""
        heldout = heldout or {}
        train = {name: np.setdiff1d(np.arange(len(k)), heldout.get(name, [])) for name, k in keys.items()}
        weights = self.mixture.get("cells", self.mixture["weights"])
        return MixtureSampler(weights, train, self.groups(keys), seed=self.seed)

    @property
    def output(self) -> ArtifactStore:
        return open_store(self.output_uri)

    @cached_property
    def _progress(self) -> ProgressLog:
        objective = MixtureSearch.model_validate(self._snapshot["search"]).spec.objective
        return ProgressLog(self.output, trainer_contract.PROGRESS, objective)

    def report_progress(self, step: int, metrics: Mapping) -> None:
        """Held-out metrics at `step`, named as in `metrics.json`: their value of spec.objective is added to
        `progress.json`, which spec.search.earlyStopping reads (optional; a run that never reports is never
        stopped). See `ProgressLog.report`."""
        self._progress.report(step, metrics)

    def write_metrics(self, metrics: Mapping) -> None:
        """The run's metrics; the search's objective (spec.objective.metric) must be among them."""
        self.output.put_json(trainer_contract.METRICS, dict(metrics))

    def succeed(self) -> None:
        """The `_SUCCESS` marker, last: the run counts only once it is there."""
        self.output.put_bytes(trainer_contract.SUCCESS, b"")


def _get_json(uri: str) -> dict:
    folder, _, name = uri.rpartition("/")
    return open_store(folder).get_json(name)
