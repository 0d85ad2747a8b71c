"""Thread settings on a shared CPU: wall time of a short conv training run (digits, `--model conv`) under
torch's default thread pool, the process's CPU-affinity cores, half of them, one thread, the OpenMP passive
wait policy, and vaekit's default, each idle and next to a competing busy process (one core spinning).

    python -m bench.threads [--epochs 1] [--repeats 2]

Every setting runs in a fresh process (OMP_* variables only act before OpenMP starts); the rounds are
interleaved, so other sessions' load hits all settings alike. The table shows the median seconds and the
ratio to one thread in the same condition (idle or busy): the number to compare across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import common as C

SETTINGS = ("torch default", "affinity cores", "half the cores", "1 thread", "passive wait (default threads)",
            "vaekit default")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _worker(setting: str, epochs: int) -> None:
    """Run inside the fresh process: set the threads, train, print the seconds as JSON."""
    import torch

    cores = _cores()
    n = {"affinity cores": cores, "half the cores": max(1, cores // 2), "1 thread": 1}.get(setting)
    if n is not None:
        torch.set_num_threads(n)
    import vaekit

    vaekit.train("digits", model="conv", latent_dim=8, epochs=1, batch_size=64, report=False, seed=0)  # warm-up
    t0 = time.perf_counter()
    vaekit.train("digits", model="conv", latent_dim=8, epochs=epochs, batch_size=64, report=False, seed=0)
    print(json.dumps({"seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}))


def _run(setting: str, epochs: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "VAEKIT_THREADS"))}
    if setting == "passive wait (default threads)":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    if setting == "vaekit default":  # what a `vaekit` command sets before torch starts
        from vaekit._threads import default_environment

        env.update(default_environment())
    import vaekit

    src = str(Path(vaekit.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    p = subprocess.run([sys.executable, "-m", "bench.threads", "--worker", setting, "--epochs", str(epochs)],
                       env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{setting} failed: {p.stderr.strip()[-800:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.epochs)
        return {}
    settings = [s.strip() for s in args.settings.split(",")]
    times: dict[str, dict[str, list[float]]] = {c: {s: [] for s in settings} for c in ("idle", "busy")}
    threads: dict[str, int] = {}
    for condition in ("idle", "busy"):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if condition == "busy" else None
        try:
            for _ in range(args.repeats):
                for s in settings:
                    r = _run(s, args.epochs)
                    times[condition][s].append(r["seconds"])
                    threads[s] = r["threads"]
                    print(f"{condition:4s}  {s:32s} {r['threads']:3d} threads  {r['seconds']:7.2f} s", flush=True)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    rows = []
    for s in settings:
        row = [f"{s} ({threads[s]})"]
        for c in ("idle", "busy"):
            one = C.median(times[c]["1 thread"]) if "1 thread" in settings else float("nan")
            med = C.median(times[c][s])
            row += [med, med / one]
        rows.append(tuple(row))
    C.print_table(f"conv digits, {args.epochs} epochs, median of {args.repeats} (seconds; ratio to 1 thread); "
                  f"{_cores()} cores in the affinity mask", rows,
                  ("setting (threads)", "idle s", "idle ×1t", "busy s", "busy ×1t"))
    payload = {"epochs": args.epochs, "repeats": args.repeats, "cores": _cores(), "threads": threads,
               "seconds": times}
    print(f"wrote {C.write_result('threads', payload)}")
    return payload


if __name__ == "__main__":
    main()
