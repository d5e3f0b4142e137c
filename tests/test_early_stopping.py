"""spec.search.earlyStopping: the pure rules (median stopping, ASHA), the state machine that stops trials and
records them as stopped (not failed), and what the propose step makes of a stopped trial."""

from __future__ import annotations

import argparse

import pytest
from test_reconcile import NOW, make

from malformed import domainset, search
from mixtura_operator import layout
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch, Phase
from mixtura_operator.driver import snapshot
from mixtura_operator.reconcile import CreateJob, JobState, Observed, StopTrial, TrialResult, reconcile
from mixtura_operator.stopping_rules import asha_stops, median_stops, promoted
from mixtura_operator.store import open_store
from mixtura_operator.trainer_contract import progress_curve


def flat(value: float, steps=(10, 20, 30)) -> tuple[tuple[int, float], ...]:
    return tuple((s, value) for s in steps)


def test_median_stops_a_trial_worse_than_the_median_at_the_same_step():
    curves = {"000": flat(1.0), "001": flat(1.2), "002": flat(1.4), "003": ((10, 1.3), (20, 1.5))}
    # 003 at step 20: best 1.3 against the running averages 1.0, 1.2, 1.4 at step 20 (median 1.2): stopped.
    stops = median_stops(curves, ["003"], maximize=False, min_trials=3)
    assert list(stops) == ["003"] and "at step 20" in stops["003"] and "median" in stops["003"]
    # 002 is the worst at every step but only 2 others (000, 001; 003 has not reached 30) reached its step 30.
    assert median_stops(curves, ["002"], maximize=False, min_trials=3) == {}
    assert median_stops(curves, ["000"], maximize=False, min_trials=1) == {}


def test_median_never_stops_the_first_trials_nor_before_the_start_step():
    # The first trials: fewer than minTrialsRequired others have reported at their step.
    first = {"000": flat(1.0), "001": flat(9.0)}
    assert median_stops(first, ["001"], maximize=False, min_trials=2) == {}
    assert list(median_stops(first, ["001"], maximize=False, min_trials=1)) == ["001"]
    late = {"000": flat(1.0), "001": flat(1.1), "002": ((10, 9.0),)}
    assert median_stops(late, ["002"], maximize=False, min_trials=2, start_step=20) == {}
    assert list(median_stops(late, ["002"], maximize=False, min_trials=2, start_step=10)) == ["002"]


def test_median_compares_running_averages_and_the_best_value_so_far_by_the_goal():
    # Maximising: 002's best (0.5, at step 10) beats the median of the others' running averages (0.45).
    curves = {"000": ((10, 0.4), (20, 0.5)), "001": ((10, 0.3), (20, 0.6)), "002": ((10, 0.5), (20, 0.2))}
    assert median_stops(curves, ["002"], maximize=True, min_trials=2) == {}
    curves["002"] = ((10, 0.2), (20, 0.3))
    assert list(median_stops(curves, ["002"], maximize=True, min_trials=2)) == ["002"]


def test_asha_promotes_exactly_the_top_one_over_eta_of_a_rung():
    values = [1.9, 1.1, 1.5, 1.0, 1.7, 1.3, 1.2, 1.8, 1.4]
    curves = {f"{i:03d}": ((5, v),) for i, v in enumerate(values)}
    assert promoted(curves, 5, 3, maximize=False) == ["003", "001", "006"]
    stops = asha_stops(curves, list(curves), maximize=False, rungs=[5, 15], eta=3)
    assert sorted(set(curves) - set(stops)) == ["001", "003", "006"]
    assert "top 1/3 of the 9 trials" in stops["000"]
    # ceil(n / eta): of 4 trials at a rung, 2 go on with eta 3 (as Ray's percentile cutoff).
    assert len(promoted(dict(list(curves.items())[:4]), 5, 3, maximize=False)) == 2


def test_asha_judges_a_trial_at_the_highest_rung_it_reached():
    curves = {"000": ((5, 1.0), (15, 0.8)), "001": ((5, 1.2), (15, 0.7)), "002": ((5, 1.1), (15, 0.9))}
    # At rung 15 (eta 3: the best of 3 goes on) 001 leads, though it was last at rung 5.
    assert sorted(asha_stops(curves, list(curves), maximize=False, rungs=[5, 15], eta=3)) == ["000", "002"]
    assert asha_stops({"000": ((4, 1.0),)}, ["000"], maximize=False, rungs=[5], eta=3) == {}


def test_progress_json_is_read_leniently():
    assert progress_curve([{"step": 20, "objective": 1.5}, {"step": 10, "objective": 2.0}]) == ((10, 2.0), (20, 1.5))
    assert progress_curve({"step": 10, "loss": 2.0}) == ()
    assert progress_curve([{"step": 10}, {"step": True, "objective": 1.0}, "x"]) == ()


def settings(**early):
    return {"space": "domains", "earlyStopping": {"type": "median", "minTrialsRequired": 1, **early}}


def behind_the_median():
    """A search whose trial 001 runs far behind the finished trial 000, at the same steps."""
    s, ds = make(method="random", max_trials=4, parallel=2, max_failed=0, final=False, settings=settings())
    jobs = {"trial/000": JobState("Succeeded"), "trial/001": JobState("Running")}
    observed = Observed(
        root_uri="file:///x",
        snapshot=True,
        done=frozenset({"propose/0", "trial/000"}),
        started=frozenset(jobs),
        proposed={0: ("000", "001")},
        jobs=jobs,
        trials={"000": TrialResult(1.0, {"digits": 0.5, "prose": 0.5})},
        progress={"000": flat(1.0, (6, 12, 18, 24, 30)), "001": flat(2.0, (6, 12))},
    )
    return s, ds, jobs, observed


def test_the_operator_stops_a_trial_and_records_it_stopped_not_failed():
    s, ds, jobs, observed = behind_the_median()
    stopping = reconcile(s, ds, observed, NOW)
    assert StopTrial("trial/001", stopping.actions[0].message) == stopping.actions[0]
    (event,) = [e for e in stopping.events if e.reason == "TrialStopped"]
    assert event.type == "Normal" and event.message.startswith("trial/001: at step 12")
    assert stopping.status.trials.stopped == 1 and stopping.status.trials.failed == 0
    # The next look: the job is gone (cancelled), the marker says stopped; the round goes on to round 1.
    after = reconcile(s, ds, _stopped(observed, jobs), NOW)
    counts = after.status.trials
    assert (counts.stopped, counts.failed, counts.stopped_ids, counts.progress) == (1, 0, ["001"], "2/4")
    assert after.status.phase == Phase.SEARCHING
    assert [a.step_key for a in after.actions if isinstance(a, CreateJob)] == ["propose/1"]
    assert not any(e.reason == "TrialFailed" for e in after.events)


def test_a_rerun_of_repeat_top_is_never_stopped():
    """A rerun measures the seed noise of a finished trial: stopped, it would measure the stopping instead."""
    from dataclasses import replace

    s, ds, _, observed = behind_the_median()
    assert any(isinstance(a, StopTrial) for a in reconcile(s, ds, observed, NOW).actions)
    rerun = replace(observed, repeats={"001": "000"})
    assert not any(isinstance(a, StopTrial) for a in reconcile(s, ds, rerun, NOW).actions)


def _stopped(observed: Observed, jobs: dict) -> Observed:
    from dataclasses import replace

    gone = {k: j for k, j in jobs.items() if k != "trial/001"}
    return replace(observed, jobs=gone, stopped={"trial/001": "at step 12 ..."})


def test_without_early_stopping_no_trial_is_stopped():
    s, ds = make(method="random", max_trials=2, parallel=2, final=False, settings={"space": "domains"})
    observed = Observed(
        snapshot=True,
        done=frozenset({"propose/0"}),
        proposed={0: ("000", "001")},
        jobs={"trial/000": JobState("Running"), "trial/001": JobState("Running")},
        progress={"000": flat(1.0), "001": flat(5.0)},
    )
    assert not any(isinstance(a, StopTrial) for a in reconcile(s, ds, observed, NOW).actions)


@pytest.mark.parametrize(
    ("early", "field"),
    [
        ({"type": "median", "minResource": 5}, "minResource, reductionFactor are settings of type asha"),
        ({"type": "asha", "minTrialsRequired": 2}, "minTrialsRequired, startStep are settings of type median"),
    ],
)
def test_settings_of_the_other_rule_are_refused(early, field):
    with pytest.raises(ValueError, match=field):
        MixtureSearch.model_validate(search(search={"earlyStopping": early}))


def test_a_stopped_trial_is_an_observation_at_its_last_reported_objective(tmp_path, one_torch_thread):
    from mixtura_jobs.steps import propose, train
    from mixtura_jobs.steps.context import StepContext

    domains = [
        {"name": n, "uri": f"file:///data/{n}", "modalities": ["text"], "taskType": "text", "samples": 100}
        for n in ("a", "b")
    ]
    ds = DomainSet.model_validate(domainset(domains=domains))
    s = MixtureSearch.model_validate(
        search(method="mixatlas", search=settings(), budget={"maxTrials": 4, "parallelTrials": 2})
    )
    store = open_store(tmp_path.as_uri())
    store.put_json(layout.SNAPSHOT, snapshot(s, ds))
    for tid, weights in (("000", {"a": 0.3, "b": 0.7}), ("001", {"a": 0.8, "b": 0.2})):
        store.put_json(layout.trial_mixture(tid), {"weights": weights})
    store.put_json(layout.trial_metrics("000"), {"heldout_loss": {"a": 1.0, "b": 1.0}})
    store.put_bytes(layout.success_marker("trial/000"), b"")
    store.put_json(layout.trial_progress("001"), [{"step": 6, "objective": 3.0}, {"step": 12, "objective": 2.5}])
    store.put_bytes(layout.stopped_marker("trial/001"), b"at step 12 ...")
    ctx = StepContext(store)
    ids, x, y, parts = propose.observations(ctx, propose.load_space(ctx))
    assert ids == ["000", "001"] and list(y) == [-1.0, -2.5] and x[1].tolist() == [0.8, 0.2]
    # A stopped trial has one number, no per-domain parts: the GP fits the objective itself.
    assert parts is None
    # The built-in trainer's reports (the step before training left out) are what the operator reads.
    report = train._progress_reporter(ctx, "002")
    for step, loss in ((0, 5.0), (6, 3.0), (12, 2.0)):
        report(step, {"a": loss, "b": loss + 1})
    assert progress_curve(store.get_json(layout.trial_progress("002"))) == ((6, 3.5), (12, 2.5))
    propose.run(ctx, argparse.Namespace(round=1, trials="002,003", warm_start="", pending="", repeat_of=""))
    assert store.get_json(layout.proposal(1))["stopped"] == ["001"]


def test_the_operator_stops_all_but_the_top_third_at_an_asha_rung():
    early = {"space": "domains", "earlyStopping": {"type": "asha", "minResource": 10, "reductionFactor": 3}}
    s, ds = make(method="random", max_trials=3, parallel=3, final=False, settings=early)
    observed = Observed(
        snapshot=True,
        done=frozenset({"propose/0"}),
        proposed={0: ("000", "001", "002")},
        jobs={f"trial/{t}": JobState("Running") for t in ("000", "001", "002")},
        progress={"000": ((10, 2.0),), "001": ((10, 1.5),), "002": ((10, 1.8),)},
    )
    decision = reconcile(s, ds, observed, NOW)
    assert sorted(a.step_key for a in decision.actions if isinstance(a, StopTrial)) == ["trial/000", "trial/002"]
    assert decision.status.trials.stopped_ids == ["000", "002"] and decision.status.trials.running == 1


def test_a_progress_log_writes_the_objective_and_skips_metrics_without_it(tmp_path, capsys):
    from mixtura_jobs.training.trainer_run import ProgressLog
    from mixtura_operator.api.mixturesearch import Objective

    store = open_store(tmp_path.as_uri())
    log = ProgressLog(store, "progress.json", Objective(domain_weights={"a": 1.0}))
    log.report(10, {"heldout_loss": {"a": 2.0, "b": 4.0}})
    log.report(20, {"accuracy": 0.5})
    log.report(30, {"heldout_loss": {"a": 1.5, "b": 4.0}})
    assert store.get_json("progress.json") == [{"step": 10, "objective": 2.0}, {"step": 30, "objective": 1.5}]
    assert "progress at step 20 not reported: no 'heldout_loss'" in capsys.readouterr().err
