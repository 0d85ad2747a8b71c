"""Scaling out (issue 20): training throughput of 1 vs N processes (PyTorch DDP over gloo, `vaekit train
--nproc N`) with the same global batch, on this machine.

    python -m bench.scaling [--nproc 2] [--epochs 3] [--repeats 2] [--threads-each 1] [--data digits]
                            [--hidden 512,256] [--batch-size 256]

Each configuration is one `vaekit train` subprocess (the 2-process one through `--nproc`, i.e. PyTorch's elastic
launcher); examples/s = training examples × epochs / the seconds the run's metrics.jsonl gives its epochs
(startup, data loading and the report are left out); the median over ``--repeats`` alternating rounds.
Threads: ``--threads-each`` per process (OMP_NUM_THREADS, default 1: on a shared machine OpenMP threads
spinning for a busy core make one process with 2 threads erratic, see README "Threads"), so the question
measured is what a second process adds. The numbers depend on what else runs on the machine: the load
average before and after is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(nproc: int, args: argparse.Namespace, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads_each)}
    cmd = [sys.executable, "-m", "vaekit", "train", "--data", args.data, "--epochs", str(args.epochs),
           "--hidden", args.hidden, "--latent-dim", "16", "--batch-size", str(args.batch_size), "--seed", "0",
           "--no-early-stopping", "--report-iwae-k", "0", "--out", str(out), "-q"]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    rows = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines() if s.strip()]
    n_train = json.loads((out / "config.json").read_text())["data"]["n_train"]
    seconds = sum(r["seconds"] for r in rows)
    return {"processes": nproc, "threads_each": int(env["OMP_NUM_THREADS"]), "epochs": len(rows),
            "train_seconds": round(seconds, 2), "wall_seconds": round(wall, 1),
            "examples_per_s": round(n_train * len(rows) / seconds, 1), "final_val_loss": round(rows[-1]["val_loss"], 3)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--data", default="digits")
    p.add_argument("--hidden", default="512,256")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads-each", type=int, default=1)
    args = p.parse_args(argv)
    load0 = os.getloadavg()[0]
    rows: dict[int, list[dict]] = {1: [], args.nproc: []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            for n in rows:
                rows[n].append(run(n, args, Path(tmp) / f"run{n}-{k}"))
    load1 = os.getloadavg()[0]
    for runs in rows.values():
        for r in runs:
            print(json.dumps(r))
    rate = {n: statistics.median(r["examples_per_s"] for r in runs) for n, runs in rows.items()}
    print(json.dumps({"median_examples_per_s": rate, "speedup": round(rate[args.nproc] / rate[1], 2),
                      "cores": os.cpu_count(), "load_average_before_after": [round(load0, 1), round(load1, 1)]}))


if __name__ == "__main__":
    main()
