"""Final-training throughput on 1 -> N processes with the same global batch: samples/s of the built-in trainer
(the tiny `target` model on the demo corpus), under torchrun for N > 1, as a ratio to one process measured in
the same run. Each process runs one thread; on a machine with GPUs each process takes one (NCCL).

    python bench/final_scaling.py                                   # CPU: 1 and 2 processes, ddp and fsdp
    python bench/final_scaling.py --processes 1 8 --batch-size 128  # 8 GPUs of one machine

The bench runs itself as the worker under torchrun (`--worker`); rank 0 writes the metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def worker(corpus: str, out: str, config: str) -> None:
    from mixtura_jobs.data.npz_shards import read_domain
    from mixtura_jobs.training import distributed
    from mixtura_jobs.training.backends import ModelRef
    from mixtura_jobs.training.device import configure_process
    from mixtura_jobs.training.trainer import train_on_mixture

    world = distributed.start(configure_process())
    names = ("digits", "shapes", "text", "video")
    domains = {name: read_domain(Path(corpus) / name) for name in names}
    model = ModelRef(config={"preset": "target"})
    metrics = train_on_mixture(domains, dict.fromkeys(names, 1.0), json.loads(config), seed=0, model=model)
    if world.is_main:
        Path(out).write_text(json.dumps(metrics))
    distributed.stop()


def measure(corpus: Path, processes: int, strategy: str, config: dict, folder: Path) -> dict:
    out = folder / f"{processes}-{strategy}.json"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    command = [*(launcher if processes > 1 else [sys.executable]), __file__, "--worker", str(corpus), str(out)]
    env = {**os.environ, "MIXTURA_THREADS": "1", "OMP_NUM_THREADS": "1"}
    # One process wraps nothing: its strategy is only a label.
    settings = {**config, "strategy": strategy if processes > 1 else "ddp"}
    run = subprocess.run([*command, json.dumps(settings)], env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{processes} processes ({strategy}) failed:\n{run.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--strategies", nargs="+", default=["ddp", "fsdp"])
    parser.add_argument("--batch-size", type=int, default=16, help="the global batch (every run)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--worker", nargs=3, metavar=("CORPUS", "OUT", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    from mixtura_jobs.data.demo import make_demo_corpus

    config = {"steps": args.steps, "batch_size": args.batch_size, "log_every": args.steps, "warmup_steps": 2}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_demo_corpus(folder / "demo", samples_per_domain=24, seed=0)
        runs = [(n, s) for n in args.processes for s in (["single"] if n == 1 else args.strategies)]
        results = {(n, s): measure(folder / "demo", n, s, config, folder) for n, s in runs}
    base = results[runs[0]]["samples_per_second"]
    device = results[runs[0]]["device_name"]
    print(f"final training, tiny target model, global batch {args.batch_size}, {args.steps} steps, {device}")
    print(f"{'processes':>9}  {'strategy':<8}  {'samples/s':>9}  {'vs 1 process':>12}  {'final loss':>10}")
    for (n, strategy), metrics in results.items():
        rate = metrics["samples_per_second"]
        print(f"{n:>9}  {strategy:<8}  {rate:>9.1f}  {rate / base:>11.2f}x  {metrics['train_loss'][-1]:>10.4f}")
    best = max(results.items(), key=lambda item: item[1]["samples_per_second"])
    print(f"summary: {best[0][0]} processes ({best[0][1]}) run {best[1]['samples_per_second'] / base:.2f}x one process")


if __name__ == "__main__":
    main()
