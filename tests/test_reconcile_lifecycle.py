"""Issue 15 in the pure state machine: faults hold a search Degraded with backoff, failures count once (also of
vanished Jobs), suspend and resume, a raised maxTrials, a Failed search stops its Jobs."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from test_reconcile import NOW, World, drive, make

from mixtura_operator.api.mixturesearch import Phase
from mixtura_operator.reconcile import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    CancelJob,
    CreateJob,
    JobState,
    Observed,
    RecordFailure,
    ResetStep,
    finished,
    reconcile,
)


def condition(status, type_):
    return next((c for c in status.conditions if c.type == type_), None)


def started(s, ds, world, turns=1):
    """The search after `turns` reconciles, every running job finished before each but the first."""
    for turn in range(turns):
        if turn:
            for key in world.running():
                world.finish(key)
        decision = reconcile(s, ds, world.observed, NOW)
        world.apply(decision.actions)
        s = s.model_copy(update={"status": decision.status})
    return s


def test_an_unreadable_store_holds_the_phase_degraded_with_a_growing_backoff_then_clears():
    s, ds = make()
    world = World()
    s = started(s, ds, world, turns=3)
    phase = s.status.phase
    outage = Observed(store_error="cannot read the artifacts at s3://b/x: EndpointConnectionError: refused")
    first = reconcile(s, ds, outage, NOW)
    degraded = condition(first.status, "Degraded")
    assert first.actions == () and first.status.phase == phase
    assert (degraded.status, degraded.reason) == ("True", "StoreUnavailable") and "refused" in degraded.message
    assert first.retry_after == BACKOFF_MIN_S
    assert [e.reason for e in first.events] == ["StoreUnavailable"]
    s = s.model_copy(update={"status": first.status})
    delays = []
    for seconds in (20, 60, 3600):
        later = reconcile(s, ds, outage, NOW + timedelta(seconds=seconds))
        delays.append(later.retry_after)
        assert later.events == ()
    assert delays == [20, 60, BACKOFF_MAX_S]
    recovered = reconcile(s, ds, world.observed, NOW + timedelta(seconds=90))
    assert condition(recovered.status, "Degraded").status == "False" and recovered.retry_after is None
    assert recovered.status.phase == phase


def test_unreadable_data_waits_degraded_and_absent_data_fails():
    s, ds = make()
    waiting = reconcile(s, ds, Observed(data_unreadable={"prose": "cannot read s3://b/prose: AccessDenied"}), NOW)
    assert waiting.actions == () and waiting.status.phase == Phase.PENDING
    degraded = condition(waiting.status, "Degraded")
    assert degraded.reason == "DataUnreadable" and "prose" in degraded.message
    failed = reconcile(s, ds, Observed(domain_problems={"prose": "no data at s3://b/prose"}), NOW)
    assert failed.status.phase == Phase.FAILED


def test_a_failed_trial_job_deleted_before_it_was_seen_counts_once_from_its_marker():
    s, ds = make(max_trials=2, max_failed=1, method="random", settings={"space": "domains"})
    world = World()
    s = started(s, ds, world, turns=2)
    assert {"trial/000", "trial/001"} <= set(world.running())
    # The step wrote _FAILED itself; then its Job vanished (TTL, or a person) before the operator looked.
    jobs = {k: j for k, j in world.observed.jobs.items() if k != "trial/000"}
    world.observed = replace(world.observed, jobs=jobs, failed={"trial/000": "RuntimeError: CUDA error"})
    events = []
    for _ in range(3):
        decision = reconcile(s, ds, world.observed, NOW)
        world.apply(decision.actions)
        s = s.model_copy(update={"status": decision.status})
        events += [(e.reason, e.message) for e in decision.events if e.reason == "TrialFailed"]
        assert not any(isinstance(a, CreateJob) and a.step_key == "trial/000" for a in decision.actions)
        assert not any(isinstance(a, RecordFailure) for a in decision.actions)
        assert decision.status.trials.failed == 1 and decision.status.trials.failed_ids == ["000"]
    assert world.created.count("trial/000") == 1
    assert events == [("TrialFailed", "trial/000: RuntimeError: CUDA error")], "one event per failure"


def test_a_vanished_job_without_a_marker_is_recorded_failed_once_and_not_recreated():
    s, ds = make(max_trials=2, max_failed=1, method="random", settings={"space": "domains"})
    world = World()
    s = started(s, ds, world, turns=2)
    world.observed = replace(world.observed, jobs={k: j for k, j in world.observed.jobs.items() if k != "trial/001"})
    decision = reconcile(s, ds, world.observed, NOW)
    recorded = [a for a in decision.actions if isinstance(a, RecordFailure)]
    assert [a.step_key for a in recorded] == ["trial/001"] and "vanished" in recorded[0].message
    world.apply(decision.actions)
    again = reconcile(s.model_copy(update={"status": decision.status}), ds, world.observed, NOW)
    assert not any(isinstance(a, (RecordFailure, CreateJob)) for a in again.actions)
    assert again.status.trials.failed == 1 and world.created.count("trial/001") == 1


def test_a_failure_marker_of_a_job_still_retrying_does_not_count():
    s, ds = make(max_trials=2, max_failed=0, method="random", settings={"space": "domains"})
    world = World()
    s = started(s, ds, world, turns=2)
    world.observed = replace(world.observed, failed={"trial/000": "first attempt: OOM"})
    retrying = reconcile(s, ds, world.observed, NOW)
    assert retrying.status.phase == Phase.SEARCHING and retrying.status.trials.failed == 0
    world.finish("trial/000")
    succeeded = reconcile(s, ds, world.observed, NOW)
    assert succeeded.status.trials.failed == 0 and succeeded.status.trials.succeeded == 1


def test_more_failures_than_max_failed_trials_fail_the_search_and_stop_its_jobs():
    s, ds = make(max_trials=4, parallel=4, max_failed=1, method="random", settings={"space": "domains"})
    world = World()
    s = started(s, ds, world, turns=2)
    world.finish("trial/000", ok=False)
    one = reconcile(s, ds, world.observed, NOW)
    assert one.status.phase == Phase.SEARCHING, "one failure is not more than maxFailedTrials 1"
    world.apply(one.actions)
    world.finish("trial/001", ok=False)
    two = reconcile(s, ds, world.observed, NOW)
    assert two.status.phase == Phase.FAILED and "2 trials failed (maxFailedTrials: 1)" in two.status.message
    assert [a for a in two.actions if isinstance(a, CancelJob)] == [CancelJob("trial/002"), CancelJob("trial/003")]


def test_suspend_stops_the_running_jobs_and_resume_reruns_them_counting_each_trial_once():
    s, ds = make(max_trials=4, method="random", settings={"space": "domains"})
    world = World()
    s = started(s, ds, world, turns=2)
    assert set(world.running()) == {"trial/000", "trial/001"}
    s.spec.suspend = True
    decision = reconcile(s, ds, world.observed, NOW)
    assert set(decision.actions) == {ResetStep("trial/000"), ResetStep("trial/001")}
    assert decision.status.phase == Phase.SUSPENDED
    assert condition(decision.status, "Suspended").status == "True"
    assert condition(decision.status, "Progressing").status == "False"
    world.apply(decision.actions)
    s = s.model_copy(update={"status": decision.status})
    idle = reconcile(s, ds, world.observed, NOW)
    assert idle.actions == () and world.running() == []
    s.spec.suspend = False
    s, phases = drive(s, ds, world)
    assert phases[0] == Phase.SEARCHING and phases[-1] == Phase.SUCCEEDED
    assert condition(s.status, "Suspended").status == "False"
    assert s.status.trials.succeeded == 4 and s.status.trials.failed == 0
    assert world.created.count("trial/000") == 2 and world.created.count("trial/002") == 1


def test_a_raised_max_trials_continues_a_succeeded_search_and_redoes_final_and_report():
    s, ds = make(max_trials=3, parallel=2, method="random", settings={"space": "domains"})
    world = World()
    s, _ = drive(s, ds, world)
    assert s.status.phase == Phase.SUCCEEDED and finished(s)
    assert reconcile(s, ds, world.observed, NOW).actions == ()
    s.spec.budget.max_trials = 6
    assert not finished(s)
    reopened = reconcile(s, ds, world.observed, NOW)
    assert {ResetStep("final"), ResetStep("report")} <= set(reopened.actions)
    assert reopened.status.phase == Phase.SEARCHING and reopened.status.completion_time is None
    world.created.clear()
    s, phases = drive(s, ds, world)
    assert phases[-1] == Phase.SUCCEEDED
    # Round 1 was proposed with one trial (002): it keeps it, and the new trials form rounds 2 and 3.
    assert world.created == ["propose/2", "trial/003", "trial/004", "propose/3", "trial/005", "final", "report"]
    assert world.args["propose/2"] == ("--round", "2", "--trials", "003,004")
    assert s.status.trials.succeeded == 6 and s.status.trials.progress == "6/6"


def test_a_failed_search_stays_finished_whatever_its_budget():
    s, ds = make(max_failed=0)
    s, _ = drive(s, ds, World(), fail={"trial/000"})
    s.spec.budget.max_trials = 10
    assert finished(s) and reconcile(s, ds, Observed(), NOW).actions == ()


def test_a_step_job_that_finishes_while_it_retries_is_judged_by_its_job():
    s, ds = make()
    jobs = {"embed/digits": JobState("Running")}
    decision = reconcile(s, ds, Observed(snapshot=True, jobs=jobs, failed={"embed/digits": "attempt 1"}), NOW)
    assert decision.status.phase == Phase.EMBEDDING
