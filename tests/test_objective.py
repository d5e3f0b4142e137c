"""Issue 20: the objective, one pure function of a run's metrics, and everything that ranks trials by it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from malformed import domainset, search
from mixtura_operator import layout
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch, Objective
from mixtura_operator.objective import ObjectiveError, label, objective_parts, objective_value, score
from mixtura_operator.observe import StoreObserver
from mixtura_operator.reconcile import JobState, Observed, TrialResult, reconcile
from mixtura_operator.store import open_store

METRICS = {"heldout_loss": {"digits": 2.0, "prose": 4.0, "charts": 3.0}, "accuracy": 0.25, "objective": 3.0}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_default_is_the_mean_heldout_loss_the_builtin_trainer_reports():
    assert objective_value(METRICS, Objective()) == METRICS["objective"]
    assert label(Objective()) == "min heldout_loss"


def test_domain_weights_weight_a_per_domain_metric():
    objective = Objective(domain_weights={"digits": 3, "prose": 1, "charts": 0})
    assert objective_value(METRICS, objective) == pytest.approx((3 * 2.0 + 4.0) / 4)
    assert label(objective) == "min heldout_loss{charts:0,digits:3,prose:1}"


def test_the_parts_of_a_per_domain_objective_are_its_weighted_terms_and_sum_to_it():
    objective = Objective(domain_weights={"digits": 3, "prose": 1, "charts": 0})
    assert objective_parts(METRICS, objective) == pytest.approx({"digits": 3 * 2.0 / 4, "prose": 4.0 / 4})
    thirds = {d: v / 3 for d, v in METRICS["heldout_loss"].items()}
    assert objective_parts(METRICS, Objective()) == pytest.approx(thirds)
    for o in (objective, Objective(), Objective(metric="accuracy")):
        assert sum(objective_parts(METRICS, o).values()) == pytest.approx(objective_value(METRICS, o))
    assert objective_parts(METRICS, Objective(metric="accuracy")) == {"accuracy": 0.25}


def test_a_maximised_scalar_scores_as_itself_and_a_minimised_one_negated():
    accuracy = Objective(metric="accuracy", goal="maximize")
    assert score(objective_value(METRICS, accuracy), accuracy) == 0.25
    assert score(objective_value(METRICS, Objective()), Objective()) == -3.0


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        (Objective(metric="bleu"), "no 'bleu' (spec.objective.metric) among the metrics: accuracy, heldout_loss"),
        (Objective(metric="accuracy", domain_weights={"digits": 1}), "'accuracy' is one number, not one per domain"),
        (Objective(domain_weights={"video": 1}), "'heldout_loss' has no value for video"),
    ],
)
def test_metrics_that_do_not_give_the_objective_say_why(objective, message):
    with pytest.raises(ObjectiveError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        objective_value({k: v for k, v in METRICS.items() if k != "objective"}, objective)


def test_a_non_number_is_refused():
    with pytest.raises(ObjectiveError, match="'accuracy' is 'high', not a number"):
        objective_value({"accuracy": "high"}, Objective(metric="accuracy"))


def make(objective: dict, trainer: dict | None = None) -> tuple[MixtureSearch, DomainSet]:
    extra = {"trainer": trainer} if trainer else {}
    s = MixtureSearch.model_validate(search(method="random", objective=objective, **extra))
    s.metadata.generation = 1
    return s, DomainSet.model_validate(domainset())


def test_best_trial_follows_the_goal_and_status_names_the_objective():
    trials = {"000": TrialResult(0.2, {"digits": 1.0}), "001": TrialResult(0.7, {"prose": 1.0})}
    observed = Observed(snapshot=True, trials=trials)
    for goal, best in (("minimize", "000"), ("maximize", "001")):
        s, ds = make({"metric": "accuracy", "goal": goal})
        status = reconcile(s, ds, observed, NOW).status
        assert status.best_trial.id == best and status.objective == f"{goal[:3]} accuracy"


def test_domain_weights_must_name_domains_of_the_domainset():
    s, ds = make({"domainWeights": {"digits": 1, "video": 1}})
    status = reconcile(s, ds, Observed(), NOW).status
    assert status.phase == "Failed"
    assert status.message == "spec.objective.domainWeights: video is no domain of DomainSet corpus"


def test_a_trainer_that_exits_0_without_success_fails_its_trial_saying_metrics_are_missing():
    s, ds = make({}, trainer={"command": ["train"]})
    observed = Observed(snapshot=True, done=frozenset({"propose/0"}), jobs={"trial/000": JobState("Succeeded")})
    decision = reconcile(s, ds, observed, NOW)
    (failure,) = [a for a in decision.actions if getattr(a, "message", None)]
    assert failure.message == (
        "the trainer exited 0 but wrote no metrics: expected trials/000/metrics.json, then trials/000/_SUCCESS"
    )


def test_a_run_whose_metrics_lack_the_objective_is_observed_as_failed(tmp_path):
    store = open_store(tmp_path.as_uri())
    for tid, metrics in (("000", {"accuracy": 0.5}), ("001", {"loss": 1.0})):
        store.put_json(layout.trial_mixture(tid), {"weights": {"digits": 1.0}})
        store.put_json(layout.trial_metrics(tid), metrics)
        store.put_bytes(layout.success_marker(f"trial/{tid}"), b"")
    store.put_bytes(layout.success_marker("trial/002"), b"")
    observed = StoreObserver(store, Objective(metric="accuracy", goal="maximize")).observe({})
    assert observed.trials == {"000": TrialResult(0.5, {"digits": 1.0})}
    assert observed.failed == {
        "trial/001": "trials/001/metrics.json: no 'accuracy' (spec.objective.metric) among the metrics: loss",
        "trial/002": "trials/002/metrics.json is missing: a trainer writes its metrics before _SUCCESS",
    }
