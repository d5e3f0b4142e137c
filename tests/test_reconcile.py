"""The reconcile state machine, alone: no executor, no store — a tiny in-memory world plays the jobs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from malformed import domainset, search
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import BaselineComparison, MixtureSearch, Phase, SurrogateFit
from mixtura_operator.reconcile import (
    CreateJob,
    JobState,
    Observed,
    RecordFailure,
    ResetStep,
    TrialResult,
    WriteSnapshot,
    reconcile,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make(
    method="madmix+mixatlas", max_trials=6, parallel=2, max_failed=2, final=True, settings=None, compare=(), **ds
) -> tuple[MixtureSearch, DomainSet]:
    s = MixtureSearch.model_validate(
        search(
            method=method,
            budget={"maxTrials": max_trials, "parallelTrials": parallel, "maxFailedTrials": max_failed},
            finalTraining={"enabled": final, "compareWith": list(compare)},
            search=settings or {},
        )
    )
    s.metadata.generation = 1
    return s, DomainSet.model_validate(domainset(**ds))


class World:
    """Carries out actions: created jobs start Running; `finish` ends them as the jobs would."""

    def __init__(self) -> None:
        self.observed = Observed(root_uri="file:///x")
        self.created: list[str] = []
        self.args: dict[str, tuple[str, ...]] = {}

    def apply(self, actions) -> None:
        jobs = dict(self.observed.jobs)
        failed = dict(self.observed.failed)
        started, done = set(self.observed.started), set(self.observed.done)
        for action in actions:
            if isinstance(action, WriteSnapshot):
                self.observed = replace(self.observed, snapshot=True)
            elif isinstance(action, CreateJob):
                assert action.step_key not in jobs, f"duplicate job {action.step_key}"
                self.created.append(action.step_key)
                self.args[action.step_key] = action.args
                jobs[action.step_key] = JobState("Running")
                started.add(action.step_key)
            elif isinstance(action, ResetStep):
                for held in (jobs, failed):
                    held.pop(action.step_key, None)
                started.discard(action.step_key)
                done.discard(action.step_key)
            elif isinstance(action, RecordFailure):
                failed[action.step_key] = action.message
        self.observed = replace(
            self.observed, jobs=jobs, failed=failed, started=frozenset(started), done=frozenset(done)
        )

    def finish(self, key: str, ok: bool = True, objective: float = 1.0) -> None:
        jobs = dict(self.observed.jobs)
        if not ok:
            jobs[key] = JobState("Failed", "exit code 1: boom")
            self.observed = replace(self.observed, jobs=jobs)
            return
        jobs[key] = JobState("Succeeded")
        trials = dict(self.observed.trials)
        if key.startswith("trial/"):
            trials[key.split("/")[1]] = TrialResult(objective, {"digits": 0.5, "prose": 0.5})
        extra = {"madmix_weights": {"digits": 0.6, "prose": 0.4}} if key == "score" else {}
        if key.startswith("propose/"):
            job = CreateJob(key, self.args[key])
            ids = tuple(job.option("--trials").split(","))
            extra = {"proposed": {**self.observed.proposed, int(key.split("/")[1]): ids}}
            if job.option("--repeat-of"):
                rerun = dict(zip(ids, job.option("--repeat-of").split(","), strict=True))
                extra["repeats"] = {**self.observed.repeats, **rerun}
        self.observed = replace(self.observed, jobs=jobs, done=self.observed.done | {key}, trials=trials, **extra)

    def running(self) -> list[str]:
        return [k for k, j in self.observed.jobs.items() if j.phase == "Running" and k not in self.observed.done]


def drive(s, ds, world, fail=(), limit=200):
    """Reconcile until terminal, finishing every running job each turn; returns the phases seen."""
    phases = []
    for _ in range(limit):
        decision = reconcile(s, ds, world.observed, NOW)
        world.apply(decision.actions)
        s = s.model_copy(update={"status": decision.status})
        if not phases or phases[-1] != decision.status.phase:
            phases.append(decision.status.phase)
        if decision.status.phase in (Phase.SUCCEEDED, Phase.FAILED):
            return s, phases
        running = world.running()
        assert sum(k.startswith("trial/") for k in running) <= s.spec.budget.parallel_trials
        for index, key in enumerate(running):
            world.finish(key, ok=key not in fail, objective=1.0 + index / 10)
    raise AssertionError("no terminal phase")


def test_full_search_walks_every_phase_once_and_never_duplicates_a_job():
    s, ds = make()
    world = World()
    s, phases = drive(s, ds, world)
    assert phases == [Phase.EMBEDDING, Phase.SCORING, Phase.SEARCHING, Phase.TRAINING, Phase.SUCCEEDED]
    assert world.created == [
        "embed/digits",
        "embed/prose",
        "score",
        "cells",
        "propose/0",
        "trial/000",
        "trial/001",
        "propose/1",
        "trial/002",
        "trial/003",
        "propose/2",
        "trial/004",
        "trial/005",
        "final",
        "report",
    ]
    status = s.status
    assert status.trials.succeeded == 6 and status.trials.progress == "6/6"
    assert status.best_trial.objective == 1.0
    assert status.madmix_weights == {"digits": 0.6, "prose": 0.4}
    assert {c.type: c.status for c in status.conditions} == {
        "Ready": "True",
        "Progressing": "False",
        "Degraded": "False",
    }
    assert status.start_time == NOW and status.completion_time == NOW


SEARCH = ["propose/0", "trial/000", "trial/001", "propose/1", "trial/002", "trial/003", "final", "report"]


@pytest.mark.parametrize(
    ("method", "space", "expected"),
    [
        ("madmix", None, ["embed/digits", "embed/prose", "score", "final", "report"]),
        ("uniform", None, ["final", "report"]),
        ("random", "domains", SEARCH),
        ("mixatlas", "domains", SEARCH),
        # Cells need the image embeddings only.
        ("random", None, ["embed/digits", "cells", *SEARCH]),
        ("regression", "full", ["embed/digits", "cells", *SEARCH]),
        ("madmix+mixatlas", "domains", ["embed/digits", "embed/prose", "score", *SEARCH]),
    ],
)
def test_methods_run_only_their_steps(method, space, expected):
    s, ds = make(method=method, max_trials=4, settings={"space": space} if space else None)
    world = World()
    drive(s, ds, world)
    assert world.created == expected


def test_cells_run_beside_scoring_on_a_gpu():
    s, ds = make()
    world = World()
    world.apply(reconcile(s, ds, world.observed, NOW).actions)
    for key in ("embed/digits", "embed/prose"):
        world.finish(key)
    decision = reconcile(s, ds, world.observed, NOW)
    assert decision.actions == (CreateJob("score", (), 0), CreateJob("cells", (), 1))
    assert decision.status.message == "computing MaD-Mix weights and concept cells"


def test_a_cell_space_without_image_domains_searches_domain_weights():
    text_only = [{"name": "prose", "uri": "s3://bucket/prose", "modalities": ["text"], "taskType": "text"}]
    s, ds = make(method="random", max_trials=4, settings={"space": "factorized"}, domains=text_only)
    world = World()
    drive(s, ds, world)
    assert world.created == SEARCH


def test_reused_concepts_wait_for_the_other_search_then_come_with_its_root():
    s, ds = make(method="random", max_trials=2, settings={"conceptCentroidsFrom": "first"})
    world = World()
    world.apply(reconcile(s, ds, world.observed, NOW).actions)
    world.finish("embed/digits")
    waiting = reconcile(s, ds, world.observed, NOW)
    assert waiting.actions == () and waiting.status.phase == Phase.SCORING
    assert "waiting for the concepts of MixtureSearch 'first'" in waiting.status.message
    world.observed = replace(world.observed, concept_source="s3://bucket/runs/ns/first/uid")
    started = reconcile(s, ds, world.observed, NOW)
    assert started.actions == (CreateJob("cells", ("--centroids-from", "s3://bucket/runs/ns/first/uid"), 1),)


def test_reused_concepts_that_never_came_fail_the_search_naming_the_field():
    s, ds = make(method="random", settings={"conceptCentroidsFrom": "first"})
    problem = "MixtureSearch 'first' has no concept centroids (its cells step never finished)"
    decision = reconcile(s, ds, Observed(concept_source_problem=problem), NOW)
    assert decision.status.phase == Phase.FAILED
    assert decision.status.message == f"spec.search.conceptCentroidsFrom: {problem}"


def test_a_failed_trial_is_recorded_and_the_search_goes_on():
    s, ds = make(max_failed=2)
    world = World()
    s, phases = drive(s, ds, world, fail={"trial/001"})
    assert phases[-1] == Phase.SUCCEEDED
    assert s.status.trials.failed == 1 and s.status.trials.succeeded == 5
    assert world.observed.failed == {"trial/001": "exit code 1: boom"}
    assert "trial/001" in world.created and world.created.count("trial/001") == 1


def test_too_many_failed_trials_fail_the_search_with_a_reason():
    # Katib's semantics: the search fails once more than maxFailedTrials trials failed (here 0, so one does it).
    s, ds = make(max_failed=0)
    s, phases = drive(s, ds, World(), fail={"trial/000"})
    assert phases[-1] == Phase.FAILED
    ready = next(c for c in s.status.conditions if c.type == "Ready")
    assert ready.reason == "TooManyFailedTrials" and "maxFailedTrials: 0" in ready.message


def test_a_failed_step_fails_the_search_naming_it():
    s, ds = make()
    s, _ = drive(s, ds, World(), fail={"score"})
    assert s.status.phase == Phase.FAILED
    assert s.status.message == "step score failed: exit code 1: boom"


def test_missing_domainset_waits():
    s, _ = make()
    decision = reconcile(s, None, Observed(), NOW)
    assert decision.status.phase == Phase.PENDING and decision.actions == ()
    assert "DomainSet 'corpus'" in decision.status.message


def test_a_domain_without_data_fails_naming_the_domain():
    s, ds = make()
    decision = reconcile(s, ds, Observed(domain_problems={"prose": "no data at s3://bucket/prose"}), NOW)
    assert decision.status.phase == Phase.FAILED
    assert decision.status.message == "spec.domains[1] (prose): no data at s3://bucket/prose"


def test_manual_method_needs_every_weight():
    s, ds = make(method="manual")
    decision = reconcile(s, ds, Observed(), NOW)
    assert decision.status.message == "spec.domains[0].weight (digits): required by method manual"


def test_baselines_train_beside_the_chosen_mixture_within_parallel_trials():
    s, ds = make(method="uniform", parallel=2, compare=("uniform", "madmix"))
    world = World()
    for _embed_then_score in range(2):
        world.apply(reconcile(s, ds, world.observed, NOW).actions)
        for running in world.running():
            world.finish(running)
    decision = reconcile(s, ds, world.observed, NOW)
    world.apply(decision.actions)
    assert world.running() == ["final", "final/uniform"]
    assert [a.args for a in decision.actions] == [(), ("--baseline", "uniform")]
    assert decision.status.message == "training the target model on the chosen mixture, uniform, madmix"
    world.finish("final/uniform")
    world.apply(reconcile(s, ds, world.observed, NOW).actions)
    assert world.running() == ["final", "final/madmix"]
    s, _ = drive(s, ds, world)
    # MaD-Mix runs for its baseline although the method is uniform.
    assert world.created == ["embed/digits", "embed/prose", "score", "final", "final/uniform", "final/madmix", "report"]
    assert s.status.phase == Phase.SUCCEEDED


def test_a_manual_baseline_needs_every_weight():
    s, ds = make(method="uniform", compare=("manual",))
    decision = reconcile(s, ds, Observed(), NOW)
    assert decision.status.message == "spec.domains[0].weight (digits): required by finalTraining.compareWith manual"


def test_an_unreliable_surrogate_degrades_the_search_without_failing_it():
    s, ds = make(method="mixatlas", max_trials=4, settings={"space": "domains"})
    world = World()
    comparison = (BaselineComparison(baseline="uniform", objective=2.0, steps_ratio=0.6),)
    world.observed = replace(
        world.observed, comparison=comparison, surrogate=SurrogateFit(loo_r2=-0.4, loo_spearman=0.1)
    )
    s, _ = drive(s, ds, world)
    conditions = {c.type: c for c in s.status.conditions}
    assert s.status.phase == Phase.SUCCEEDED
    assert conditions["Degraded"].status == "True" and conditions["Degraded"].reason == "SurrogateUnreliable"
    assert conditions["SurrogateUnreliable"].status == "True"
    assert "Spearman 0.10 < 0.3" in conditions["SurrogateUnreliable"].message
    assert s.status.comparison == list(comparison) and s.status.surrogate.loo_spearman == 0.1


def test_a_reliable_surrogate_says_so():
    s, ds = make(method="mixatlas", max_trials=4, settings={"space": "domains"})
    world = World()
    world.observed = replace(world.observed, surrogate=SurrogateFit(loo_r2=0.8, loo_spearman=0.9))
    s, _ = drive(s, ds, world)
    conditions = {c.type: c.status for c in s.status.conditions}
    assert conditions["Degraded"] == "False" and conditions["SurrogateUnreliable"] == "False"


def test_unschedulable_jobs_show_in_degraded():
    s, ds = make()
    jobs = {"embed/digits": JobState("Pending", "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.", True)}
    decision = reconcile(s, ds, Observed(snapshot=True, jobs=jobs), NOW)
    degraded = next(c for c in decision.status.conditions if c.type == "Degraded")
    assert degraded.status == "True" and degraded.reason == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in degraded.message


def test_finished_searches_take_no_action():
    s, ds = make(method="uniform")
    s, _ = drive(s, ds, World())
    decision = reconcile(s, ds, Observed(), NOW)
    assert decision.actions == () and decision.status.phase == Phase.SUCCEEDED


def test_phase_changes_emit_events():
    s, ds = make()
    decision = reconcile(s, ds, Observed(), NOW)
    assert [(e.type, e.reason) for e in decision.events] == [("Normal", "Embedding")]
