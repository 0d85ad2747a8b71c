"""Start-up of small CLI commands: wall and CPU time of `vaekit --help`, `sample`, `encode`, `reconstruct` and `score`
as fresh processes, against `python -c "import torch"` measured in the same rounds (the ratio is the number
to compare across machines; on a busy machine every wall time grows, the ratio much less).

    python -m bench.startup [--repeats 5]

Each round runs every command once (interleaved, so a neighbour's burst hits all of them alike); the table
shows the median over rounds. A tiny digits run is trained first (not timed).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import common as C


def _commands(run: Path, tmp: Path) -> dict[str, list[str]]:
    py = [sys.executable]
    vk = py + ["-m", "vaekit"]
    return {
        'python -c "import torch"': py + ["-c", "import torch"],
        "vaekit --help": vk + ["--help"],
        "vaekit sample RUN -n 16": vk + ["sample", str(run), "-n", "16", "--out", str(tmp / "s.png"), "--overwrite"],
        "vaekit encode RUN --data digits": vk + ["encode", str(run), "--data", "digits",
                                                 "--out", str(tmp / "z.npy"), "--overwrite"],
        "vaekit reconstruct RUN -n 16": vk + ["reconstruct", str(run), "--data", "digits", "-n", "16",
                                              "--out", str(tmp / "r.png"), "--overwrite"],
        "vaekit score RUN --split test": vk + ["score", str(run), "--data", "digits", "--split", "test",
                                               "--iwae-k", "8", "--out", str(tmp / "sc.csv"), "--overwrite"],
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    import vaekit

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(vaekit.__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        run = tmp / "run"
        vaekit.train("digits", out=run, latent_dim=4, hidden=[32], epochs=1, report=False)
        cmds = _commands(run, tmp)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        cpu: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(args.repeats):
            for name, cmd in cmds.items():
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                p = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
                times[name].append(time.perf_counter() - t0)
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
                if p.returncode != 0:
                    raise SystemExit(f"{name} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    base = C.median(times['python -c "import torch"'])
    cbase = C.median(cpu['python -c "import torch"'])
    rows = [(name, C.median(t), min(t), C.median(t) / base, C.median(cpu[name]), C.median(cpu[name]) / cbase)
            for name, t in times.items()]
    C.print_table(f"start-up, median of {args.repeats} rounds (seconds; CPU = user + system of the process)", rows,
                  ("command", "wall s", "best wall s", "wall × import torch", "CPU s", "CPU × import torch"))
    payload = {"repeats": args.repeats, "seconds": times, "cpu_seconds": cpu,
               "cpu_ratio_to_import_torch": {n: C.median(t) / cbase for n, t in cpu.items()},
               "median": {n: C.median(t) for n, t in times.items()},
               "ratio_to_import_torch": {n: C.median(t) / base for n, t in times.items()}}
    path = C.write_result("startup", payload)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
