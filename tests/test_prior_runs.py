"""spec.search.priorRuns: a recorded swarm (CSV) is refused, naming what is missing, unless its weight columns
are the search's domains; when they are, the propose step's GP fits the recorded runs."""

from __future__ import annotations

import argparse

import pytest
from test_reconcile import NOW, make

from malformed import domainset, search
from mixtura_operator import layout
from mixtura_operator.api.cross_object import local_uri_problems
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch, Phase
from mixtura_operator.api.prior_runs import PriorRuns
from mixtura_operator.driver import snapshot
from mixtura_operator.observe import check_prior_runs
from mixtura_operator.reconcile import Observed, reconcile
from mixtura_operator.store import open_store
from testbed.procs import free_port

SWARM = "run,a,b,loss\n1,0.2,0.8,2.1\n2,0.5,0.5,1.8\n3,0.9,0.1,1.6\n4,0.7,0.3,1.7\n"


@pytest.fixture
def swarm(tmp_path) -> str:
    path = tmp_path / "swarm.csv"
    path.write_text(SWARM)
    return path.as_uri()


def prior_runs_problem(prior: PriorRuns, domains: list[str]) -> str | None:
    problem, unreadable = check_prior_runs(prior, domains)
    assert unreadable is None
    return problem


def test_weight_columns_that_are_not_the_domains_are_refused_naming_them(swarm):
    assert prior_runs_problem(PriorRuns(uri=swarm, target="loss"), ["a", "b"]) is None
    missing = prior_runs_problem(PriorRuns(uri=swarm, target="loss", weight_columns=["a"]), ["a", "b", "c"])
    assert missing == "weightColumns has no column for the domains b, c"
    strangers = prior_runs_problem(PriorRuns(uri=swarm, target="loss", weight_columns=["a", "b", "x"]), ["a", "b"])
    assert strangers == "weightColumns x name no domain of the DomainSet"
    # By default a column per domain: the CSV lacks one for c.
    absent = prior_runs_problem(PriorRuns(uri=swarm, target="loss"), ["a", "b", "c"])
    assert absent == f"{swarm} has no weight column for the domains c (its columns: run, a, b, loss)"
    target = prior_runs_problem(PriorRuns(uri=swarm, target="accuracy"), ["a", "b"])
    assert target == f"{swarm} has no target column accuracy (its columns: run, a, b, loss)"
    gone = swarm.replace("swarm.csv", "gone.csv")
    assert prior_runs_problem(PriorRuns(uri=gone, target="loss"), ["a", "b"]) == f"no file at {gone}"


def test_a_csv_that_cannot_be_read_now_holds_the_search_degraded():
    """A store that does not answer (or a Secret without permission) may come back: the search waits, Degraded."""
    uri = "s3://swarms/runs.csv"
    keys = {"AWS_ACCESS_KEY_ID": "team", "AWS_SECRET_ACCESS_KEY": "secret"}
    endpoint = f"http://127.0.0.1:{free_port()}"
    problem, unreadable = check_prior_runs(PriorRuns(uri=uri, target="y"), ["a", "b"], endpoint, keys)
    assert problem is None and unreadable.startswith(f"cannot read {uri}: EndpointConnectionError")
    s, ds = make(method="random", settings={"space": "domains", "priorRuns": {"uri": uri, "target": "y"}})
    decision = reconcile(s, ds, Observed(prior_runs_unreadable=unreadable), NOW)
    degraded = next(c for c in decision.status.conditions if c.type == "Degraded")
    assert decision.status.phase != Phase.FAILED and decision.retry_after is not None
    assert degraded.reason == "DataUnreadable" and degraded.message == f"spec.search.priorRuns: {unreadable}"


def test_the_search_fails_with_the_problem_in_its_condition():
    prior = {"uri": "s3://swarms/runs.csv", "target": "y"}
    s, ds = make(method="random", settings={"space": "domains", "priorRuns": prior})
    problem = "weightColumns has no column for the domains prose"
    decision = reconcile(s, ds, Observed(prior_runs_problem=problem), NOW)
    assert decision.status.phase == Phase.FAILED
    ready = next(c for c in decision.status.conditions if c.type == "Ready")
    assert ready.reason == "InvalidInput" and ready.message == f"spec.search.priorRuns: {problem}"


def test_the_gp_of_the_first_round_fits_the_recorded_runs(tmp_path, swarm, one_torch_thread):
    from mixtura_jobs.steps import propose
    from mixtura_jobs.steps.context import StepContext

    domains = [
        {"name": n, "uri": f"file:///data/{n}", "modalities": ["text"], "taskType": "text", "samples": 100}
        for n in ("b", "a")
    ]
    ds = DomainSet.model_validate(domainset(domains=domains))
    spec = search(
        method="mixatlas",
        search={"space": "domains", "priorRuns": {"uri": swarm, "target": "loss"}},
        budget={"maxTrials": 4, "parallelTrials": 2},
    )
    store = open_store((tmp_path / "search").as_uri())
    store.put_json(layout.SNAPSHOT, snapshot(MixtureSearch.model_validate(spec), ds))
    ctx = StepContext(store)
    ids, x, y, _ = propose.observations(ctx, propose.load_space(ctx))
    # The DomainSet's order (b, a), not the CSV's; minimised loss becomes the GP's score.
    assert ids == ["prior:1", "prior:2", "prior:3", "prior:4"]
    assert x.tolist() == [[0.8, 0.2], [0.5, 0.5], [0.1, 0.9], [0.3, 0.7]] and y.tolist() == [-2.1, -1.8, -1.6, -1.7]
    propose.run(ctx, argparse.Namespace(round=0, trials="000,001", warm_start="", pending="", repeat_of=""))
    summary = store.get_json(layout.proposal(0))
    # Without observations round 0 would be the initial design; with the recorded runs the GP proposes.
    assert summary["prior"] == 4 and summary["observations"] == 4 and summary["source"] == "gp-ucb"


def test_a_local_csv_is_refused_on_a_cluster():
    s, _ = make(method="random", settings={"space": "domains", "priorRuns": {"uri": "file:///runs.csv", "target": "y"}})
    assert "spec.search.priorRuns.uri: file:// is refused on a cluster: use s3://" in local_uri_problems(s, None)
