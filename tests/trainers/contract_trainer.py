"""A user's trainer as the tests run it (spec.trainer): no model, but the whole contract. It reads its run from
the environment, counts its data, draws batches with Mixtura's sampler, and writes metrics that are a known
function of the mixture it was given, so that a test can say which trial an objective must pick:

    heldout_loss[d] = 1 - weight of d        accuracy = weight of `text`

(reported to progress.json at every step too), and `received`: what the contract handed it (seed, steps,
trial, mixture weights, domains drawn).

    python contract_trainer.py [--no-metrics] [--step-seconds S]
        --no-metrics: exit 0 having written nothing; --step-seconds: sleep S after each step (and its
        progress report), so that early stopping can catch the run

`SLOW_TRIALS=000=40,003=5` makes those trials take that many seconds more (a schedule's test).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from mixtura_jobs.training.trainer_run import TrainerRun
from mixtura_operator.store import open_store


def domain_keys(run: TrainerRun) -> dict[str, list[str]]:
    """Each domain's sample keys as Mixtura names npz samples (`<shard stem>/<row>`), wherever it is stored."""
    keys = {}
    with tempfile.TemporaryDirectory() as tmp:
        for domain in run.domains:
            path = open_store(domain.uri).download_dir("", Path(tmp) / domain.name)
            keys[domain.name] = [
                f"{shard.stem}/{i}"
                for shard in sorted(path.glob("shard-*.npz"))
                for i in range(len(np.load(shard)["prompts"]))
            ]
    return keys


def main(argv: list[str]) -> int:
    run = TrainerRun.from_env()
    if "--no-metrics" in argv:
        print(f"trial {run.trial}: exiting without metrics", flush=True)
        return 0
    sampler = run.sampler(domain_keys(run))
    drawn: Counter[str] = Counter()
    pause = float(argv[argv.index("--step-seconds") + 1]) if "--step-seconds" in argv else 0.0
    weights = run.mixture["weights"]
    heldout = {"heldout_loss": {name: 1.0 - w for name, w in weights.items()}, "accuracy": weights.get("text", 0.0)}
    for step in range(run.steps):
        drawn.update(name for name, _ in sampler.draw(8))
        run.report_progress(step + 1, heldout)
        time.sleep(pause)
    slow = dict(item.split("=") for item in os.environ.get("SLOW_TRIALS", "").split(",") if item)
    time.sleep(float(slow.get(run.trial, 0)))
    run.write_metrics(
        {
            **heldout,
            "received": {
                "seed": run.seed,
                "steps": run.steps,
                "trial": run.trial,
                "weights": weights,
                "cells": "cells" in run.mixture,
                "drawn": dict(drawn),
            },
        }
    )
    run.succeed()
    print(f"trial {run.trial}: seed {run.seed}, drew {dict(drawn)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
