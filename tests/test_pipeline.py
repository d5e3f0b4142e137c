"""End to end: `mixtura run` on small demo manifests, every job step a real `python -m mixtura_jobs` process.

Each step pays the ML imports (seconds), so the searches are tiny and the uninterrupted search doubles as
the reference the interrupted one must reproduce.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mixtura_jobs.training.tiny_vlm import build_vlm
from pipeline_manifests import domain_set, mixture_search, write_manifest

pytestmark = pytest.mark.slow

# The `mixtura` console script's entry point, run by this interpreter so the jobs use it too.
MIXTURA = [sys.executable, "-m", "mixtura_operator.cli"]
# One domain per modality combination (image+text, text only, text+video): MaD-Mix decouples the missing ones.
SMALL = ("digits", "text", "video")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[dict]:
    from mixtura_jobs.data.demo import make_demo_corpus

    return make_demo_corpus(tmp_path_factory.mktemp("demo-data"), samples_per_domain=24, seed=0)


@pytest.fixture(scope="module")
def small(corpus) -> dict:
    return domain_set([d for d in corpus if d["name"] in SMALL])


def mixtura(*args: str, logs: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MIXTURA_LOG_DIR": str(logs)}
    return subprocess.run([*MIXTURA, *args], env=env, capture_output=True, text=True, timeout=600, cwd=cwd)


def search_root(artifacts: Path, name: str = "demo") -> Path:
    (root,) = artifacts.glob(f"*/{name}/*")
    return root


def status(root: Path) -> dict:
    return json.loads((root / "status.json").read_text())


def finished_trials(artifacts: Path) -> set[str]:
    return {marker.parent.name for marker in artifacts.glob("*/*/*/trials/*/_SUCCESS")}


def round_one_at_work(logs: Path, artifacts: Path) -> bool:
    """A round-1 step (propose/1, trial 002 or 003) has started (the executor wrote its log) and not finished."""
    roots = list(artifacts.glob("*/*/*/spec.json"))
    if not roots:
        return False
    root = roots[0].parent
    markers = {
        "propose-1": root / "proposals/round-1/_SUCCESS",
        "trial-002": root / "trials/002/_SUCCESS",
        "trial-003": root / "trials/003/_SUCCESS",
    }
    return any(not markers[log.stem].exists() for log in logs.glob("*/*/*.log") if log.stem in markers)


def live_jobs(artifacts: Path) -> list[list[str]]:
    """The arguments of every live job process of the searches under `artifacts` (zombies have no cmdline)."""
    jobs = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").rstrip("\0").split("\0")
        except OSError:
            continue
        if "mixtura_jobs" in args and any(str(artifacts) in arg for arg in args):
            jobs.append(args[args.index("mixtura_jobs") + 1 :])
    return jobs


def assert_no_jobs_left(artifacts: Path) -> None:
    deadline = time.monotonic() + 5
    while live_jobs(artifacts) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_jobs(artifacts) == []


def assert_mixture(weights: dict[str, float], domains: tuple[str, ...]) -> None:
    assert sorted(weights) == sorted(domains)
    assert all(w >= 0 for w in weights.values()), weights
    assert math.isclose(sum(weights.values()), 1.0, rel_tol=0, abs_tol=1e-9), weights


def stamp(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def attempts(log: Path) -> int:
    return log.read_text(errors="replace").count("--- attempt ")


def results(root: Path) -> tuple[dict[str, float], dict[str, float]]:
    """What a search found: each trial's objective, and the final mixture."""
    objectives = {
        path.parent.name: json.loads(path.read_text())["objective"] for path in root.glob("trials/*/metrics.json")
    }
    return objectives, json.loads((root / "final/mixture.json").read_text())["weights"]


# Asynchronous proposals depend on which trial finishes first: searches that must repeat bit for bit run in rounds.
REPEATABLE = {"schedule": "rounds"}


def write_search(base: Path, small: dict) -> Path:
    """The madmix+mixatlas search (MaD-Mix, then 2 rounds of 2 trials), its artifacts under `base`."""
    return write_manifest(base / "search.yaml", small, mixture_search(base / "artifacts", search=REPEATABLE))


@pytest.fixture(scope="module")
def search(small, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """An uninterrupted run of the search: its base directory and the finished `mixtura run`."""
    base = tmp_path_factory.mktemp("search")
    return base, mixtura("run", str(write_search(base, small)), logs=base / "logs")


def assert_cell_mixture(record: dict, cells: dict) -> None:
    """On the cells' simplex, every cell within its cap."""
    caps = {cell["id"]: cell["cap"] for cell in cells["cells"]}
    assert sorted(record["cells"]) == sorted(caps)
    assert math.isclose(sum(record["cells"].values()), 1.0, rel_tol=0, abs_tol=1e-9)
    assert all(-1e-12 <= w <= caps[c] + 1e-9 for c, w in record["cells"].items()), record["cells"]


def test_madmix_mixatlas_search_succeeds_with_a_report_and_simplex_weights(search):
    base, run = search
    assert run.returncode == 0, run.stdout + run.stderr
    root = search_root(base / "artifacts")
    assert status(root)["phase"] == "Succeeded"
    assert f"report: {root / 'report/index.html'}" in run.stdout.splitlines()
    checkpoint = torch.load(root / "final/model.pt", weights_only=True)
    build_vlm(checkpoint["config"], seed=0).load_state_dict(checkpoint["state_dict"])
    plots = ("weights", "trials", "surrogate", "final-training", "concepts", "cells")
    for image in ("index.html", *(f"{plot}.png" for plot in plots)):
        assert (root / "report" / image).stat().st_size > 0
    mixtures = [root / "scores/madmix.json", root / "final/mixture.json", *root.glob("trials/*/mixture.json")]
    assert len(mixtures) == 2 + 4
    for path in mixtures:
        assert_mixture(json.loads(path.read_text())["weights"], SMALL)
    # The default space is factorized: concepts of the one image domain (digits), text and video concept-free.
    cells = json.loads((root / "cells/cells.json").read_text())
    assert {c["id"] for c in cells["cells"] if c["concept"] == "none"} == {"none/text", "none/captioning"}
    assert len(np.load(root / "cells/assignments/digits.npy")) == 24
    for path in mixtures[1:]:
        record = json.loads(path.read_text())
        assert_cell_mixture(record, cells)
        assert sorted(record["factors"]) == ["concepts", "tasks"]
    trials = status(root)["trials"]
    assert (trials["succeeded"], trials["failed"], trials["progress"]) == (4, 0, "4/4")


def test_the_report_diagnoses_the_surrogate_and_links_each_trials_metrics_and_log(search):
    base, _ = search
    root = search_root(base / "artifacts")
    page = (root / "report/index.html").read_text()
    for plot in ("loo", "sensitivity", "slice"):
        assert (root / f"report/{plot}.png").stat().st_size > 0 and f'src="{plot}.png"' in page
    fit = status(root)["surrogate"]
    assert -1.0 <= fit["looSpearman"] <= 1.0 and "surrogate leave-one-out" in page
    for tid in ("000", "001", "002", "003"):
        assert f"trial={tid} objective=" in (root / f"trials/{tid}/log.txt").read_text()
        assert f'href="../trials/{tid}/log.txt"' in page and f'href="../trials/{tid}/metrics.json"' in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs headless Chromium (Debian package chromium)")
def test_the_report_opens_offline_with_every_image_loaded_and_no_table_overflowing(search, tmp_path):
    base, _ = search
    report = search_root(base / "artifacts") / "report/index.html"
    shot = tmp_path / "report.png"
    check = [sys.executable, str(Path(__file__).parent.parent / "bench/report_screenshot.py"), str(report)]
    result = subprocess.run([*check, "--out", str(shot)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout and "OVERFLOWS" not in result.stdout
    assert shot.stat().st_size > 0


def test_an_interrupted_search_resumes_without_rerunning_finished_trials(search, small, tmp_path):
    reference, reference_run = search
    assert reference_run.returncode == 0, reference_run.stdout + reference_run.stderr
    artifacts, logs = tmp_path / "artifacts", tmp_path / "logs"
    command = ["run", str(write_search(tmp_path, small))]
    env = {**os.environ, "MIXTURA_LOG_DIR": str(logs)}
    with (tmp_path / "out.txt").open("w") as out:
        process = subprocess.Popen([*MIXTURA, *command], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 400
            # Interrupt while a round-1 step is at work, so that mixtura has a job to stop. Files only: reading
            # /proc/<pid>/cmdline of a job that is mapping torch's libraries can stall for seconds.
            while process.poll() is None and time.monotonic() < deadline:
                if round_one_at_work(logs, artifacts):
                    break
                time.sleep(0.05)
            assert process.poll() is None, "the search ended before it could be interrupted"
            # SIGINT to mixtura alone (a terminal's Ctrl-C reaches the jobs too): it must stop its jobs itself.
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=60) == 130
        finally:
            if process.poll() is None:
                process.kill()
    assert "interrupted: rerun the same command to resume" in (tmp_path / "out.txt").read_text()
    assert_no_jobs_left(artifacts)
    root = search_root(artifacts)
    assert status(root)["phase"] == "Searching"
    finished = finished_trials(artifacts)
    before = {tid: stamp(root / f"trials/{tid}/metrics.json") for tid in finished}

    rerun = mixtura(*command, logs=logs)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert status(root)["phase"] == "Succeeded"
    assert {tid: stamp(root / f"trials/{tid}/metrics.json") for tid in finished} == before
    step_logs = logs / "demo" / root.name
    for tid in finished:
        assert attempts(step_logs / f"trial-{tid}.log") == 1
    # The job cut short by the interrupt ran again.
    assert any(attempts(log) == 2 for log in step_logs.glob("*.log"))
    for tid in ("000", "001", "002", "003"):
        assert (step_logs / f"trial-{tid}.log").read_text().count(f"trial={tid} objective=") == 1
    assert results(root) == results(search_root(reference / "artifacts"))


def test_a_regression_search_is_reproducible_and_a_later_search_reuses_its_concepts(small, tmp_path):
    """The same regression search (factorized cells) run twice proposes bit-identical mixtures; a search
    with conceptCentroidsFrom maps the corpus onto the first one's concepts."""
    budget = {"max_trials": 4, "parallel_trials": 2, "proxy_steps": 2, "final_training": False}
    roots = []
    for run_dir, with_reuse in ((tmp_path / "a", False), (tmp_path / "b", True)):
        run_dir.mkdir()
        artifacts = run_dir / "artifacts"
        documents = [mixture_search(artifacts, name="regress", method="regression", search=REPEATABLE, **budget)]
        if with_reuse:
            reuse = {"conceptCentroidsFrom": "regress"}
            one = {**budget, "max_trials": 1, "parallel_trials": 1}
            documents.append(mixture_search(artifacts, name="reuse", method="random", search=reuse, **one))
        run = mixtura("run", str(write_manifest(run_dir / "search.yaml", small, *documents)), logs=run_dir / "logs")
        assert run.returncode == 0, run.stdout + run.stderr
        roots.append(search_root(artifacts, "regress"))
    first, again = roots
    records = {path.parent.name: path.read_bytes() for path in first.glob("trials/*/mixture.json")}
    assert sorted(records) == ["000", "001", "002", "003"]
    assert {tid: (again / f"trials/{tid}/mixture.json").read_bytes() for tid in records} == records
    sources = [json.loads(records[tid])["source"] for tid in sorted(records)]
    assert sources == ["random", "random", "regression", "regression"]
    cells = json.loads((first / "cells/cells.json").read_text())
    for record in records.values():
        assert_cell_mixture(json.loads(record), cells)
    reuse = search_root(tmp_path / "b" / "artifacts", "reuse")
    assert json.loads((reuse / "cells/cells.json").read_text())["centroidsFrom"] == again.as_uri()
    np.testing.assert_array_equal(np.load(reuse / "cells/centroids.npy"), np.load(again / "cells/centroids.npy"))


def run_crashing(tmp_path: Path, small: dict, max_failed_trials: int) -> tuple[subprocess.CompletedProcess, Path]:
    artifacts = tmp_path / "artifacts"
    spec = mixture_search(
        artifacts,
        method="random",
        max_trials=2,
        parallel_trials=2,
        max_failed_trials=max_failed_trials,
        final_training=False,
        fail_trials=("001",),
        # Failures are what this is about: plain domain weights spare the embed and cells steps.
        search={"space": "domains"},
    )
    run = mixtura("run", str(write_manifest(tmp_path / "search.yaml", small, spec)), logs=tmp_path / "logs")
    return run, search_root(artifacts)


def test_a_crashing_trial_within_max_failed_trials_is_recorded_and_the_search_succeeds(small, tmp_path):
    run, root = run_crashing(tmp_path, small, max_failed_trials=2)
    assert run.returncode == 0, run.stdout + run.stderr
    assert status(root)["phase"] == "Succeeded"
    assert status(root)["trials"]["failed"] == 1 and status(root)["trials"]["succeeded"] == 1
    assert "failTrials" in (root / "trials/001/_FAILED").read_text()
    assert not (root / "trials/001/_SUCCESS").exists() and (root / "trials/000/_SUCCESS").exists()
    assert attempts(tmp_path / "logs/demo" / root.name / "trial-001.log") == 1
    assert (root / "report/_SUCCESS").exists()


def test_too_many_crashing_trials_fail_the_search(small, tmp_path):
    # More than maxFailedTrials (Katib's semantics): with 0, the one crash fails the search.
    run, root = run_crashing(tmp_path, small, max_failed_trials=0)
    assert run.returncode == 1, run.stdout + run.stderr
    assert status(root)["phase"] == "Failed"
    assert status(root)["message"] == "1 trial failed (maxFailedTrials: 0)"
    assert status(root)["message"] in run.stdout
    assert (root / "trials/001/_FAILED").exists() and not (root / "report").exists()
    assert_no_jobs_left(tmp_path / "artifacts")


@pytest.mark.parametrize("make_dir", [True, False], ids=["empty", "missing"])
def test_a_domain_without_data_fails_the_search_naming_it_before_any_job(corpus, tmp_path, make_dir):
    video = tmp_path / "video"
    if make_dir:
        video.mkdir()
    domains = [{**d, "uri": video.as_uri()} if d["name"] == "video" else d for d in corpus]
    assert [d["name"] for d in domains].index("video") == 6
    manifest = write_manifest(tmp_path / "search.yaml", domain_set(domains), mixture_search(tmp_path / "artifacts"))
    run = mixtura("run", str(manifest), logs=tmp_path / "logs")
    message = f"spec.domains[6] (video): no data at {video.as_uri()}"
    assert run.returncode == 1, run.stdout + run.stderr
    root = search_root(tmp_path / "artifacts")
    assert status(root)["phase"] == "Failed" and status(root)["message"] == message
    assert message in run.stdout
    assert [p.name for p in root.iterdir()] == ["status.json"]
    assert list((tmp_path / "logs").rglob("*.log")) == []


def test_uniform_without_final_training_runs_only_the_report(small, tmp_path):
    spec = mixture_search(tmp_path / "artifacts", method="uniform", final_training=False)
    manifest = write_manifest(tmp_path / "search.yaml", small, spec)
    start = time.monotonic()
    run = mixtura("run", str(manifest), logs=tmp_path / "logs")
    elapsed = time.monotonic() - start
    assert run.returncode == 0, run.stdout + run.stderr
    root = search_root(tmp_path / "artifacts")
    assert status(root)["phase"] == "Succeeded"
    assert [p.name for p in (tmp_path / "logs").rglob("*.log")] == ["report.log"]
    assert sorted(p.name for p in root.iterdir()) == ["report", "spec.json", "status.json"]
    assert (root / "report/weights.png").exists() and not (root / "report/trials.png").exists()
    assert elapsed < 60, f"one report step took {elapsed:.0f}s"


def test_a_final_training_of_two_processes_runs_locally_under_torchrun(small, tmp_path):
    """Issue 14: `mixtura run` trains a world of 2 (two nodes of one CPU process) as torchrun --standalone with
    2 processes on this machine; the summary and status name the final model."""
    final = {"enabled": True, "steps": 4, "nodes": 2, "gpusPerNode": 0}
    spec = mixture_search(tmp_path / "artifacts", method="uniform", finalTraining=final)
    manifest = write_manifest(tmp_path / "search.yaml", small, spec)
    run = mixtura("run", str(manifest), logs=tmp_path / "logs")
    assert run.returncode == 0, run.stdout + run.stderr
    root = search_root(tmp_path / "artifacts")
    (log,) = (tmp_path / "logs").rglob("final.log")
    assert "torchrun --standalone --nproc-per-node 2 -m mixtura_jobs final-train" in log.read_text()
    model = status(root)["artifacts"]["model"]
    assert model == (root / "final/model.pt").as_uri() and (root / "final/model.pt").is_file()
    assert f"final model: {root / 'final/model.pt'}" in run.stdout


def test_a_mixture_that_the_objective_favours_reaches_uniforms_loss_in_fewer_steps(small, tmp_path):
    """The objective (mean held-out loss over digits, text, video) is known to favour the captioning domains
    over text: 60 steps barely move text's prose (2.92 -> 2.81 with 80 % of the data on text, measured with
    these seeds), while digits' and video's captions are templates that 60 steps learn and that share "a digit
    N". So the manual mixture that puts 10 % on text (measured: ratio 0.65) must reach the uniform baseline's
    final loss before the baseline's last step, and status, `mixtura run` and the report must say so."""
    weights = {"digits": 4.5, "text": 1.0, "video": 4.5}
    corpus = domain_set([{**d, "weight": weights[d["name"]]} for d in small["spec"]["domains"]])
    spec = mixture_search(tmp_path / "artifacts", method="manual", final_steps=60, compare_with=("uniform",))
    spec["spec"]["models"]["target"] = {"config": {"preset": "proxy"}}
    result = mixtura("run", str(write_manifest(tmp_path / "m.yaml", corpus, spec)), logs=tmp_path / "logs")
    assert result.returncode == 0, result.stdout + result.stderr
    root = search_root(tmp_path / "artifacts")
    (comparison,) = status(root)["comparison"]
    assert comparison["baseline"] == "uniform"
    assert comparison["stepsRatio"] < 1.0
    chosen = json.loads((root / "final/metrics.json").read_text())["objective"]
    assert chosen < comparison["objective"]
    assert "against uniform" in result.stdout
    assert "comparison.png" in (root / "report/index.html").read_text()
