"""The built-in trainer on a demo corpus, alone or as one rank under torchrun: the distributed tests' worker.
Arguments: the corpus folder, the JSON file rank 0 writes the metrics to, the trainer's config as JSON (with
`model`: a ModelRef's fields, and `save`: a folder for the trained model) and optionally the checkpoint store's
URI.
"""

import json
import sys
from pathlib import Path

from mixtura_jobs.data.npz_shards import read_domain
from mixtura_jobs.training import distributed
from mixtura_jobs.training.backends import ModelRef
from mixtura_jobs.training.device import configure_process
from mixtura_jobs.training.trainer import train_on_mixture
from mixtura_operator.store import open_store

NAMES = ("digits", "shapes", "text", "video")


def main(corpus: str, out: str, config: str, checkpoints: str | None = None) -> None:
    world = distributed.start(configure_process())
    domains = {name: read_domain(Path(corpus) / name) for name in NAMES}
    store = None if checkpoints is None else open_store(checkpoints)
    settings = json.loads(config)
    model = ModelRef(**settings.pop("model", {}))
    save = settings.pop("save", None)
    metrics = train_on_mixture(
        domains,
        dict.fromkeys(NAMES, 1.0),
        settings,
        seed=0,
        model=model,
        checkpoint_store=store,
        on_trained=None if save is None else lambda backend, weights: backend.save(Path(save), weights),
    )
    if world.is_main:
        Path(out).write_text(json.dumps(metrics))
    distributed.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
