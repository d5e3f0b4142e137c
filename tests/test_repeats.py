"""The propose step's schedule inputs: repeatTop's reruns copy their originals' mixtures, and the proposals after
them fit the GP with the seed noise the reruns measured; an async proposal's pending trials that have finished
since count as observations."""

from __future__ import annotations

import argparse

from malformed import domainset, search
from mixtura_operator import layout
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch
from mixtura_operator.driver import snapshot
from mixtura_operator.store import open_store


def finished(store, tid: str, weights: dict[str, float], loss: float) -> None:
    store.put_json(layout.trial_mixture(tid), {"weights": weights, "round": 0, "source": "initial-design"})
    store.put_json(layout.trial_metrics(tid), {"heldout_loss": dict.fromkeys(weights, loss)})
    store.put_bytes(layout.success_marker(f"trial/{tid}"), b"")


def propose(store, index: int, trials: str, repeat_of: str = "", pending: str = "") -> dict:
    from mixtura_jobs.steps import propose as step
    from mixtura_jobs.steps.context import StepContext

    args = argparse.Namespace(round=index, trials=trials, warm_start="", pending=pending, repeat_of=repeat_of)
    step.run(StepContext(store), args)
    return store.get_json(layout.proposal(index))


def test_reruns_copy_their_mixtures_and_the_next_gp_takes_their_noise(tmp_path, one_torch_thread):
    domains = [
        {"name": n, "uri": f"file:///data/{n}", "modalities": ["text"], "taskType": "text", "samples": 100}
        for n in ("a", "b")
    ]
    s = MixtureSearch.model_validate(
        search(method="mixatlas", search={"space": "domains", "repeatTop": 2}, budget={"maxTrials": 6})
    )
    store = open_store(tmp_path.as_uri())
    store.put_json(layout.SNAPSHOT, snapshot(s, DomainSet.model_validate(domainset(domains=domains))))
    losses = [2.0, 1.5, 1.2, 1.9]
    for index, loss in enumerate(losses):
        share = 0.2 + 0.15 * index
        finished(store, layout.trial_id(index), {"a": share, "b": 1 - share}, loss)
    summary = propose(store, 1, "004,005", repeat_of="002,001")
    assert summary["repeatOf"] == {"004": "002", "005": "001"} and summary["source"] == "repeat"
    for rerun, original in summary["repeatOf"].items():
        record = store.get_json(layout.trial_mixture(rerun))
        assert record["weights"] == store.get_json(layout.trial_mixture(original))["weights"]
        assert record["repeatOf"] == original and record["round"] == 1
    for rerun, loss in (("004", 1.3), ("005", 1.4)):
        store.put_json(layout.trial_metrics(rerun), {"heldout_loss": {"a": loss, "b": loss}})
        store.put_bytes(layout.success_marker(f"trial/{rerun}"), b"")
    after = propose(store, 2, "006")
    # Pooled within (1.2, 1.3) and (1.5, 1.4): 0.005 + 0.005 over 2 degrees of freedom.
    assert after["noise"]["repeats"] == 2 and abs(after["noise"]["variance"] - 0.005) < 1e-12
    assert after["source"] == "gp-ucb"


def test_a_pending_trial_that_has_finished_since_is_an_observation(tmp_path, one_torch_thread):
    domains = [
        {"name": n, "uri": f"file:///data/{n}", "modalities": ["text"], "taskType": "text", "samples": 100}
        for n in ("a", "b")
    ]
    s = MixtureSearch.model_validate(search(method="mixatlas", search={"space": "domains"}, budget={"maxTrials": 6}))
    store = open_store(tmp_path.as_uri())
    store.put_json(layout.SNAPSHOT, snapshot(s, DomainSet.model_validate(domainset(domains=domains))))
    for index, loss in enumerate([2.0, 1.5, 1.2, 1.9]):
        finished(store, layout.trial_id(index), {"a": 0.2 + 0.15 * index, "b": 0.8 - 0.15 * index}, loss)
    store.put_json(layout.trial_mixture("004"), {"weights": {"a": 0.5, "b": 0.5}, "round": 1})
    summary = propose(store, 2, "005", pending="003,004")
    assert summary["observations"] == 4 and summary["pending"] == ["004"]
