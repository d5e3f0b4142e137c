"""Issue 20 locally: searches whose trials (and final training) run a user's trainer command under the trainer
contract, and searches judged by an objective of their own (`mixtura run`, every step a real process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_pipeline import mixtura, search_root, status

from mixtura_operator.trainer_contract import trial_seed
from pipeline_manifests import domain_set, mixture_search, write_manifest

pytestmark = pytest.mark.slow
TRAINER = Path(__file__).resolve().parent / "trainers" / "contract_trainer.py"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def trainer(*args: str) -> dict:
    return {"image": "team/trainer:1", "command": ["python", str(TRAINER)], "args": list(args)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[dict]:
    from mixtura_jobs.data.demo import make_demo_corpus

    return make_demo_corpus(tmp_path_factory.mktemp("demo-data"), samples_per_domain=24, seed=0)


def run_search(tmp_path: Path, domains: list[dict], **spec) -> tuple[int, Path, str]:
    manifest = write_manifest(
        tmp_path / "search.yaml", domain_set(domains), mixture_search(tmp_path / "artifacts", **spec)
    )
    result = mixtura("run", str(manifest), logs=tmp_path / "logs")
    return result.returncode, search_root(tmp_path / "artifacts"), result.stdout + result.stderr


def random_domain_search(tmp_path: Path, corpus: list[dict], names: tuple[str, ...], **spec) -> tuple[int, Path, str]:
    """A search of random domain weights over the `names` domains, every trial run by the test trainer."""
    spec.setdefault("trainer", trainer())
    domains = [d for d in corpus if d["name"] in names]
    return run_search(tmp_path, domains, method="random", search={"space": "domains"}, **spec)


def read(root: Path, key: str) -> dict:
    return json.loads((root / key).read_text())


def test_trials_and_final_training_run_the_users_trainer(tmp_path, corpus):
    """Acceptance 1: the trainer gets each trial's mixture (cell weights, factorized space) and seed, and the
    final mixture that `final-pick` wrote before it; the search succeeds on the trainer's metrics alone."""
    domains = [d for d in corpus if d["name"] in ("digits", "text", "video")]
    code, root, output = run_search(
        tmp_path,
        domains,
        method="random",
        seed=3,
        search={"space": "factorized", "maxRepetition": 16},
        trainer=trainer(),
        final_steps=5,
    )
    assert code == 0, output
    assert status(root)["phase"] == "Succeeded"
    for tid in ("000", "001", "002", "003"):
        received = read(root, f"trials/{tid}/metrics.json")["received"]
        mixture = read(root, f"trials/{tid}/mixture.json")
        assert received["seed"] == trial_seed(3) and received["trial"] == tid and received["steps"] == 10
        assert received["weights"] == mixture["weights"] and received["cells"] and "cells" in mixture
        assert sum(received["drawn"].values()) == 80
        assert [r["step"] for r in read(root, f"trials/{tid}/progress.json")] == list(range(1, 11))
    final = read(root, "final/metrics.json")["received"]
    assert final["seed"] == 3 and final["trial"] == "final" and final["steps"] == 5
    assert final["weights"] == read(root, "final/mixture.json")["weights"]
    assert not (root / "final/model.pt").exists()
    (log,) = (tmp_path / "logs").glob("*/*/trial-000.log")
    assert "contract_trainer.py" in log.read_text() and "proxy-train" not in log.read_text()


def test_a_trainer_that_writes_no_metrics_fails_its_trial(tmp_path, corpus):
    code, root, _ = random_domain_search(
        tmp_path,
        corpus,
        ("text", "charts"),
        max_trials=1,
        parallel_trials=1,
        # Fail when more than 0 trials failed (maxFailedTrials counts as Katib's maxFailedTrialCount).
        max_failed_trials=0,
        trainer=trainer("--no-metrics"),
    )
    assert code != 0
    message = (root / "trials/000/_FAILED").read_text()
    expected = "expected trials/000/metrics.json, then trials/000/_SUCCESS"
    assert message == f"the trainer exited 0 but wrote no metrics: {expected}"
    ready = next(c for c in status(root)["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "TooManyFailedTrials"


def expected_best(root: Path, score) -> str:
    """The trial an objective must pick, from the weights each trial was given (the trainer's metrics are a
    known function of them)."""
    trials = [p.parent.name for p in root.glob("trials/*/_SUCCESS")]
    return max(sorted(trials), key=lambda tid: score(read(root, f"trials/{tid}/mixture.json")["weights"]))


@pytest.mark.parametrize(
    ("objective", "label", "score"),
    [
        (
            {"metric": "heldout_loss", "domainWeights": {"documents": 1, "charts": 1}},
            "min heldout_loss{charts:1,documents:1}",
            lambda w: w["documents"] + w["charts"],  # loss 1 - w: the least loss is the most weight
        ),
        ({"metric": "accuracy", "goal": "maximize"}, "max accuracy", lambda w: w["text"]),
    ],
    ids=["weighted-heldout-loss", "maximised-accuracy"],
)
def test_best_trial_is_chosen_by_the_objective(tmp_path, corpus, objective, label, score):
    """Acceptance 2: bestTrial (and the report) follow spec.objective, not the mean held-out loss."""
    code, root, output = random_domain_search(
        tmp_path,
        corpus,
        ("documents", "charts", "text", "shapes"),
        max_trials=6,
        parallel_trials=6,
        objective=objective,
        final_training=False,
    )
    assert code == 0, output
    final = status(root)
    best = expected_best(root, score)
    assert final["objective"] == label and final["bestTrial"]["id"] == best
    metrics = read(root, f"trials/{best}/metrics.json")
    weights = objective.get("domainWeights")
    value = sum(metrics["heldout_loss"][d] for d in weights) / len(weights) if weights else metrics[objective["metric"]]
    assert final["bestTrial"]["objective"] == pytest.approx(value)
    report = (root / "report/index.html").read_text()
    assert f"<td>objective</td><td>{label}</td>" in report
    assert f"best trial: {best} {label}" in output


def test_the_example_trainer_runs_the_example_manifest(tmp_path):
    """examples/trainer/search.yaml as the README runs it (from a directory with `examples/` and `demo-data/`),
    on a smaller corpus, budget and space: the example trainer's own metrics drive the search."""
    from mixtura_jobs.data.demo import make_demo_corpus

    make_demo_corpus(tmp_path / "demo-data", samples_per_domain=24, seed=0)
    (tmp_path / "examples").symlink_to(EXAMPLES)
    domainset, search = yaml.safe_load_all((EXAMPLES / "trainer" / "search.yaml").read_text())
    # Searching domain weights at random spares the embedding, clustering and GP steps (minutes on 2 cores).
    search["spec"].update(method="random", search={"space": "domains"})
    search["spec"]["budget"] = {"maxTrials": 3, "parallelTrials": 3, "proxySteps": 10}
    search["spec"]["finalTraining"]["steps"] = 10
    search["spec"]["resources"]["gpusPerJob"] = 0
    manifest = write_manifest(tmp_path / "search.yaml", domainset, search)
    result = mixtura("run", str(manifest), logs=tmp_path / "logs", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (root,) = (tmp_path / ".mixtura/artifacts").glob("*/own-trainer/*")
    final = status(root)
    assert final["objective"] == "max heldout_accuracy{charts:1,documents:1}"
    values = {p.parent.name: read(p.parent, "metrics.json")["heldout_accuracy"] for p in root.glob("trials/*/_SUCCESS")}
    assert final["bestTrial"]["id"] == max(sorted(values), key=lambda t: values[t]["documents"] + values[t]["charts"])
    assert (root / "final/model.pt").exists() and read(root, "final/progress.json")[-1]["step"] == 10


def test_a_trial_behind_the_median_is_stopped_and_recorded_as_stopped_not_failed(tmp_path, corpus):
    """Early stopping end to end: the trainer reports its objective (1 - its charts weight) at every step; with
    minTrialsRequired 2 the first round is never judged, and the later trials (seed 0: charts weights 0.12 and
    0.03 against 0.78 and 0.59) are worse than the median of the finished ones: recorded stopped (marker, status,
    event), not failed, and the search succeeds."""
    code, root, output = run_search(
        tmp_path,
        [d for d in corpus if d["name"] in ("text", "charts")],
        method="random",
        max_trials=4,
        max_failed_trials=0,
        final_training=False,
        trainer=trainer("--step-seconds", "0.4"),
        objective={"metric": "heldout_loss", "domainWeights": {"charts": 1}},
        search={
            "space": "domains",
            "earlyStopping": {"type": "median", "minTrialsRequired": 2},
            # Async proposals depend on which of 000 and 001 the operator saw end first: rounds draw the same
            # mixtures on every machine.
            "schedule": "rounds",
        },
    )
    assert code == 0, output
    counts = status(root)["trials"]
    assert counts["stoppedIds"] == ["002", "003"] and counts["failed"] == 0, counts
    assert counts["succeeded"] == 2 and counts["progress"] == "4/4"
    for tid in counts["stoppedIds"]:
        assert "median stopping" in (root / f"trials/{tid}/_STOPPED").read_text()
        assert not (root / f"trials/{tid}/_SUCCESS").exists() and not (root / f"trials/{tid}/_FAILED").exists()
        assert f"[Normal] TrialStopped: trial/{tid}: at step" in output
    assert "stopped=2" in output and "2 stopped early" in output
    page = (root / "report/index.html").read_text()
    assert "2 stopped early of 4" in page and page.count(" stopped</td>") == 2
