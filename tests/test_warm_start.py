"""spec.search.warmStartFrom: the operator waits for the named searches and passes their roots to every proposal;
the propose step fits its GP on their trials too, and refuses trials of another space."""

from __future__ import annotations

import argparse

import pytest
from test_reconcile import NOW, World, make

from malformed import domainset, search
from mixtura_operator import layout
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch, Phase
from mixtura_operator.driver import snapshot
from mixtura_operator.reconcile import CreateJob, Observed, reconcile
from mixtura_operator.store import open_store


def test_proposals_wait_for_the_named_searches_then_carry_their_roots():
    s, ds = make(method="random", max_trials=2, settings={"space": "domains", "warmStartFrom": ["earlier"]})
    world = World()
    world.observed = Observed(warm_start_waiting="earlier")
    waiting = reconcile(s, ds, world.observed, NOW)
    assert waiting.status.phase == Phase.SEARCHING and "waiting for MixtureSearch 'earlier'" in waiting.status.message
    assert not any(isinstance(a, CreateJob) for a in waiting.actions)
    proposing = reconcile(s, ds, Observed(snapshot=True, warm_start=("s3://b/runs/ns/earlier/u",)), NOW)
    assert proposing.actions == (
        CreateJob("propose/0", ("--round", "0", "--trials", "000,001", "--warm-start", "s3://b/runs/ns/earlier/u")),
    )
    refused = reconcile(s, ds, Observed(warm_start_problem="MixtureSearch 'earlier' finished without artifacts"), NOW)
    assert refused.status.phase == Phase.FAILED and refused.status.message.startswith("spec.search.warmStartFrom: ")


def searched(root, domains: dict[str, float], objectives: list[float]):
    """A store holding finished trials over `domains`."""
    store = open_store(root.as_uri())
    for index, objective in enumerate(objectives):
        tid = layout.trial_id(index)
        weights = {name: share * (1 + index) for name, share in domains.items()}
        total = sum(weights.values())
        store.put_json(layout.trial_mixture(tid), {"weights": {k: v / total for k, v in weights.items()}})
        store.put_json(layout.trial_metrics(tid), {"heldout_loss": dict.fromkeys(domains, objective)})
        store.put_bytes(layout.success_marker(f"trial/{tid}"), b"")
    return store


@pytest.fixture
def new_search(tmp_path):
    """The store of a mixatlas search over domains a and b (their sizes given: no data is read), before round 0."""
    domains = [
        {"name": n, "uri": f"file:///data/{n}", "modalities": ["text"], "taskType": "text", "samples": 100}
        for n in ("a", "b")
    ]
    ds = DomainSet.model_validate(domainset(domains=domains))
    s = MixtureSearch.model_validate(
        search(method="mixatlas", search={"space": "domains"}, budget={"maxTrials": 4, "parallelTrials": 2})
    )
    store = open_store((tmp_path / "new").as_uri())
    store.put_json(layout.SNAPSHOT, snapshot(s, ds))
    return store


def propose_round_0(store, warm_start: str) -> dict:
    from mixtura_jobs.steps import propose
    from mixtura_jobs.steps.context import StepContext

    args = argparse.Namespace(round=0, trials="000,001", warm_start=warm_start, pending="", repeat_of="")
    propose.run(StepContext(store), args)
    return store.get_json(layout.proposal(0))


def test_the_gp_of_the_first_round_fits_the_imported_trials(new_search, tmp_path, one_torch_thread):
    earlier = searched(tmp_path / "earlier", {"a": 0.3, "b": 0.7}, [2.0, 1.5, 1.2, 1.9])
    summary = propose_round_0(new_search, earlier.uri)
    # Without observations round 0 is the initial design; with the 4 imported trials the GP proposes.
    assert summary["observations"] == 4 and summary["imported"] == [earlier.uri]
    assert summary["source"] == "gp-ucb" and "gp" in summary
    # A per-domain heldout_loss (as the built-in trainer reports it): one GP per domain's term.
    assert summary["objectiveParts"] == 2 and len(summary["gp"]["parts"]) == 2


def test_trials_of_another_space_are_refused_naming_the_field(new_search, tmp_path, one_torch_thread):
    other = searched(tmp_path / "other", {"a": 0.5, "c": 0.5}, [1.0, 2.0])
    with pytest.raises(ValueError, match=r"^spec.search.warmStartFrom: the search at .* searched other domains"):
        propose_round_0(new_search, other.uri)
