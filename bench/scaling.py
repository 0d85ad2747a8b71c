"""Scaling out (issue 20): training throughput of 1 vs N processes (PyTorch DDP over gloo, `vaekit train
--nproc N`) with the same global batch, on this machine.

    python -m bench.scaling [--nproc 2] [--epochs 3] [--data digits] [--hidden 512,256] [--batch-size 256]

Each configuration is one `vaekit train` subprocess (the 2-process one through `--nproc`, i.e. PyTorch's elastic
launcher); examples/s = training examples × epochs / the seconds the run's metrics.jsonl gives its epochs
(startup, data loading and the report are left out). Threads: each process gets cores / processes
(OMP_NUM_THREADS), so 1 process × 2 threads is compared with 2 processes × 1 thread. The numbers depend on
what else runs on the machine: the load average before and after is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(nproc: int, args: argparse.Namespace, out: Path) -> dict:
    cores = os.cpu_count() or 1
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // nproc))}
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
    args = p.parse_args(argv)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(n, args, Path(tmp) / f"run{n}") for n in (1, args.nproc)]
    load1 = os.getloadavg()[0]
    for r in rows:
        print(json.dumps(r))
    print(json.dumps({"speedup": round(rows[1]["examples_per_s"] / rows[0]["examples_per_s"], 2),
                      "cores": os.cpu_count(), "load_average_before_after": [round(load0, 1), round(load1, 1)]}))


if __name__ == "__main__":
    main()
