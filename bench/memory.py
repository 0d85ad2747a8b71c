"""Peak resident memory of a Fashion-MNIST training run with vaekit (target: under 1 GB).

    python -m bench.memory [--epochs 1]

Each case runs in a fresh subprocess and reports its own peak RSS: ``VmHWM`` from /proc/self/status
(the headline) and ``ru_maxrss`` (which Linux carries over from the parent across fork+exec, so it can
only be trusted when the parent is small; both are printed). A baseline case (import torch + vaekit, load the
data) shows how much of the peak is the interpreter, torch and the dataset.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from . import common as C

TARGET_MB = 1024.0

CHILD = r"""
import json, resource, sys, time, tempfile
case, epochs = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
import torch, vaekit
if case == "import":
    pass
elif case == "data":
    from vaekit.data import load_source, split_dataset
    ds = load_source("fashion-mnist"); s = split_dataset(ds)
else:
    kw = dict(model="mlp", hidden=[400], latent_dim=20, likelihood="bernoulli", batch_size=128, lr=1e-3) \
        if case == "classic" else {}
    with tempfile.TemporaryDirectory() as d:
        vaekit.train("fashion-mnist", out=d + "/run", epochs=epochs, patience=None, device="cpu", **kw)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"case": case, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "vmhwm_kb": hwm,
                  "seconds": time.perf_counter() - t0}))
"""

CASES = {"import": "import torch + vaekit",
         "data": "… + load and split Fashion-MNIST",
         "classic": "vaekit.train classic recipe (784-400-20), run dir",
         "default": "vaekit.train default model (mlp 512-256, latent 16), run dir"}


def measure(case: str, epochs: int) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, case, str(epochs)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{r.stderr[-2000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    # Linux keeps ru_maxrss across fork+exec: a child of a big parent reports at least the parent's RSS
    # at fork time. VmHWM (peak RSS of the process's own address space, reset by exec) is clean; it is
    # the headline number, ru_maxrss is kept for reference (equal when the parent is small).
    out["ru_maxrss_mb"] = out["maxrss_kb"] / 1024.0  # Linux: kilobytes
    out["peak_rss_mb"] = out["vmhwm_kb"] / 1024.0
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--cases", default=",".join(CASES))
    args = p.parse_args(argv)
    res = {}
    for case in args.cases.split(","):
        res[case] = measure(case, args.epochs)
        print(f"{case}: {res[case]['peak_rss_mb']:.0f} MB", flush=True)
    rows = [(CASES[c], r["peak_rss_mb"], r["ru_maxrss_mb"], r["seconds"],
             ("yes" if r["peak_rss_mb"] < TARGET_MB else "NO") if c in ("classic", "default") else "")
            for c, r in res.items()]
    C.print_table(f"memory: peak RSS (ru_maxrss, own subprocess), {args.epochs} epoch(s)", rows,
                  ("case", "peak RSS MB (VmHWM)", "ru_maxrss MB", "seconds", "< 1 GB"))
    payload = {"epochs": args.epochs, "target_mb": TARGET_MB, "cases": res}
    path = C.write_result("memory", payload)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
