"""Where everything lives: artifact keys of a search, step keys, job names. One place, used by both sides.

A *step key* names one unit of work: `embed/<domain>`, `score`, `cells`, `propose/<round>`, `trial/<id>`,
`final`, `report`. Each writes its outputs under its folder and `_SUCCESS` last; a failure (written by the
step itself, or by the operator when a job ended without a marker) is `_FAILED` there, a trial stopped early
has `_STOPPED` (why, and its last report), and `_STARTED` says a job was created for it, so the store alone says
what happened.
"""

from __future__ import annotations

import hashlib
import re

SNAPSHOT = "spec.json"
MADMIX = "scores/madmix.json"
CELLS = "cells/cells.json"
CENTROIDS = "cells/centroids.npy"
FINAL_MIXTURE = "final/mixture.json"
FINAL_METRICS = "final/metrics.json"
# The target model's checkpoint, as its backend saves it: tiny `final/model.pt`, hf `final/model/`.
FINAL_DIR = "final"
# Under a final training's checkpoint folder: one `step-NNNNNN/` per checkpoint, and `latest` (written last)
# holding the newest complete one's folder name.
CHECKPOINT_LATEST = "latest"
ASSIGNMENTS = "cells/assignments"
REPORT = "report/index.html"
# What the report found that status carries: baseline comparisons and the surrogate's leave-one-out fit.
REPORT_SUMMARY = "report/summary.json"
MARKERS = ("_SUCCESS", "_FAILED", "_STARTED", "_STOPPED")
# A step's exit code for bad input (data or spec): the Job's podFailurePolicy fails it at once, no retries.
EXIT_BAD_INPUT = 65

_FOLDERS = {"embed": "embeddings", "score": "scores", "propose": "proposals", "trial": "trials"}


def search_root(namespace: str, name: str, uid: str) -> str:
    return f"{namespace}/{name}/{uid}"


def step_folder(step_key: str) -> str:
    step, _, arg = step_key.partition("/")
    folder = _FOLDERS.get(step, step)
    if step == "propose":
        return f"{folder}/round-{arg}"
    return f"{folder}/{arg}" if arg else folder


def success_marker(step_key: str) -> str:
    return f"{step_folder(step_key)}/_SUCCESS"


def failure_marker(step_key: str) -> str:
    return f"{step_folder(step_key)}/_FAILED"


def started_marker(step_key: str) -> str:
    return f"{step_folder(step_key)}/_STARTED"


def stopped_marker(step_key: str) -> str:
    return f"{step_folder(step_key)}/_STOPPED"


def trial_id(index: int) -> str:
    return f"{index:03d}"


def trial_mixture(tid: str) -> str:
    return f"trials/{tid}/mixture.json"


def trial_metrics(tid: str) -> str:
    return f"trials/{tid}/metrics.json"


def trial_progress(tid: str) -> str:
    """The held-out objective at the trial's checkpoints so far: a list of {step, objective}."""
    return f"trials/{tid}/progress.json"


def trial_log(tid: str) -> str:
    return f"trials/{tid}/log.txt"


def final_mixture(baseline: str | None = None) -> str:
    """The mixture the target model trained on: the chosen one (FINAL_MIXTURE), or a baseline's."""
    return FINAL_MIXTURE if baseline is None else f"final/{baseline}/mixture.json"


def final_metrics(baseline: str | None = None) -> str:
    return FINAL_METRICS if baseline is None else f"final/{baseline}/metrics.json"


def final_model(backend: str) -> str:
    """The final model as its backend saved it: hf a save_pretrained directory, tiny one file."""
    return f"{FINAL_DIR}/model" if backend == "hf" else f"{FINAL_DIR}/model.pt"


def final_checkpoints(baseline: str | None = None) -> str:
    """The training checkpoints of the final model (`final/checkpoints`) or of a baseline's."""
    return f"{FINAL_DIR}/checkpoints" if baseline is None else f"{FINAL_DIR}/{baseline}/checkpoints"


def checkpoint_step(step: int) -> str:
    """A checkpoint's folder under `final_checkpoints`: the optimizer steps done, e.g. `step-000100`."""
    return f"step-{step:06d}"


def checkpoint_step_number(folder: str) -> int | None:
    """Inverse of `checkpoint_step`; None for anything else."""
    match = re.fullmatch(r"step-(\d{6,})", folder)
    return int(match.group(1)) if match else None


def proposal(round_index: int) -> str:
    return f"proposals/round-{round_index}/proposal.json"


def assignments(domain: str) -> str:
    """Each sample's concept (index into the centroids) of an image domain."""
    return f"{ASSIGNMENTS}/{domain}.npy"


def assignment_keys(domain: str) -> str:
    """The sample key of each row of `assignments(domain)`."""
    return f"cells/assignments/{domain}.keys.npy"


def embedded_samples(domain: str) -> str:
    """Which samples the embed step drew (keys and positions per modality) and what reading them cost."""
    return f"embeddings/{domain}/samples.json"


def embedding(domain: str, modality: str, samples: bool = False) -> str:
    return f"embeddings/{domain}/{modality}.{'samples.' if samples else ''}npy"


def embed_metrics(domain: str) -> str:
    """The embed step's backend, device, precision and throughput for one domain."""
    return f"embeddings/{domain}/metrics.json"


def job_name(search: str, step_key: str, limit: int = 63) -> str:
    """Deterministic DNS-1123 name (<= `limit` chars): a restarted operator finds, never duplicates, a job."""
    slug = re.sub(r"[^a-z0-9-]+", "-", step_key.lower().replace("/", "-")).strip("-")
    name = f"{search}-{slug}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def step_key_of_marker(key: str) -> str | None:
    """Inverse of `success_marker`, `failure_marker` and `started_marker`: the step key a marker belongs to."""
    folder, _, name = key.rpartition("/")
    if name not in MARKERS:
        return None
    head, _, arg = folder.partition("/")
    step = {v: k for k, v in _FOLDERS.items()}.get(head, head)
    if step == "propose":
        arg = arg.removeprefix("round-")
    return f"{step}/{arg}" if arg else step


def reset_keys(step_key: str) -> list[str]:
    """What a step that runs again must not find: its markers and, for the final training, the mixture picked
    before (the pick reuses a written one, so that a user's trainer and the built-in one agree) and the
    checkpoint pointer (a new run must not resume the old one; it prunes the old folders as it goes)."""
    keys = [success_marker(step_key), failure_marker(step_key), started_marker(step_key), stopped_marker(step_key)]
    step, _, baseline = step_key.partition("/")
    if step != "final":
        return keys
    latest = f"{final_checkpoints(baseline or None)}/{CHECKPOINT_LATEST}"
    return [*keys, latest] if baseline else [*keys, FINAL_MIXTURE, latest]
