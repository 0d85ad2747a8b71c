"""Data larger than memory (issue 20): peak memory of a `vaekit train --mmap` run over a float32 `.npy` about
four times larger than the memory limit it runs under.

    python -m bench.outofcore [--gb 3] [--limit-gb 1] [--dim 4096] [--epochs 1] [--hidden 8] [--again] [--in-memory]
                              [--no-evaluate] [--timeout 420]

A random float32 array of ``--gb`` GB (rows of ``--dim`` values in [0, 1]) is written in chunks to a temporary
folder; then `vaekit train --mmap` runs in a fresh process inside a memory cgroup limited to ``--limit-gb`` (cgroup
v1 ``memory.limit_in_bytes`` or v2 ``memory.max``; root only: the limit covers the process's own memory *and*
the page cache it fills, so a run that kept the data resident would be killed). The first run streams the file
into vaekit's split-ordered cache (same folder) and trains, ending with its ELBOs, ``evaluation.json`` and
``report.html``; then (unless ``--no-evaluate``) ``vaekit evaluate`` re-reads that run's data under the same limit
(through the cache); ``--again``: a second run reuses the cache. Reported per run:
its wall time, when the cache file appeared and when ``results.json`` did (seconds from the start), the
training epochs' seconds (``metrics.jsonl``), the peak RSS (``ru_maxrss``: anonymous memory plus the pages of the mapped file it touched and
the kernel had not yet reclaimed), the peak anonymous memory (``RssAnon`` sampled every 0.1 s) and the cgroup's
peak charge. ``--in-memory`` adds the same run without ``--mmap`` under the same limit (expected: killed, or
refused). Everything written (data, cache, run, cgroup) is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import print_table, write_result

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")


def make_cgroup(limit: int) -> tuple[Path, str, str]:
    """A new memory cgroup limited to ``limit`` bytes: (its folder, the limit file, the peak file)."""
    name = f"vaekit-outofcore-{os.getpid()}"
    if (V1 / "memory.limit_in_bytes").exists() or (V1 / "cgroup.procs").exists():
        own = next((line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
                    if line.split(":")[1] == "memory"), "/")
        group = V1 / own.lstrip("/") / name
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(limit))
        try:
            (group / "memory.memsw.limit_in_bytes").write_text(str(limit))  # no swap either
        except OSError:
            pass
        return group, "memory.limit_in_bytes", "memory.max_usage_in_bytes"
    group = V2 / name
    group.mkdir()
    (group / "memory.max").write_text(str(limit))
    (group / "memory.swap.max").write_text("0")
    return group, "memory.max", "memory.peak"


def write_array(path: Path, nbytes: int, dim: int) -> tuple[int, int]:
    """A random float32 ``[N, dim]`` array of about ``nbytes`` in [0, 1], written 64 MB at a time."""
    n = max(3, nbytes // (4 * dim))
    rng = np.random.default_rng(0)
    step = max(1, (64 << 20) // (4 * dim))
    # plain writes, not a memory map: this process's ru_maxrss is inherited by the runs it starts (fork + exec
    # keep the high-water mark), and a map of the whole file made every run report the file's size
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.dtype(np.float32).str, "fortran_order": False,
                                                 "shape": (n, dim)})
        for a in range(0, n, step):
            f.write(rng.random((min(step, n - a), dim), dtype=np.float32).tobytes())
        f.flush()
        os.fsync(f.fileno())  # out of the page cache: the run under the limit reads it (and is charged for it)
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return n, path.stat().st_size


def run_limited(cmd: list[str], group: Path, env: dict, timeout: float, watch: dict | None = None) -> dict:
    """Run ``cmd`` inside ``group``; its wall time, exit code, peak RSS and sampled peak anonymous memory, and
    for each ``watch`` name (a folder, a glob pattern) the seconds until a file matched (None: never)."""
    t0 = time.perf_counter()
    seen: dict = {name: None for name in watch or {}}
    proc = subprocess.Popen(["sh", "-c", f'echo $$ > "{group}/cgroup.procs" && exec "$@"', "sh", *cmd],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak_anon = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            for name, (folder, pattern) in (watch or {}).items():
                if seen[name] is None and folder.is_dir() and any(folder.glob(pattern)):
                    seen[name] = time.perf_counter() - t0
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("RssAnon:"):
                        peak_anon[0] = max(peak_anon[0], int(line.split()[1]) * 1024)
            except OSError:
                pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    killer = threading.Timer(timeout, proc.kill)  # the bench's time budget: a run over it is killed (exit -9)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
        stop.set()
    sampler.join()
    err = proc.stderr.read().strip().splitlines() if proc.stderr else []
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"seconds": time.perf_counter() - t0, "returncode": proc.returncode, **{f"{k}_s": v for k, v in seen.items()},
            "peak_rss": usage.ru_maxrss * 1024, "peak_anon": peak_anon[0], "last_error": err[-1] if err else ""}


def add_run_options(p: argparse.ArgumentParser, timeout: float) -> None:
    """The options of the training runs, shared with bench.outofcore_images."""
    p.add_argument("--limit-gb", type=float, default=1.0, help="memory limit of the training process (GB)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--hidden", default="8", help="hidden layer sizes (small: the question is memory, not compute)")
    p.add_argument("--again", action="store_true", help="also a second --mmap run, reusing the cache")
    p.add_argument("--timeout", type=float, default=timeout, help="seconds a run may take before it is killed")
    p.add_argument("--in-memory", action="store_true", help="also run without --mmap under the same limit")
    p.add_argument("--tmp", default=None, help="folder for the data and cache (default: the system's temp dir)")


def train_command(data: Path, args: argparse.Namespace, cache: Path) -> list[str]:
    """``vaekit train`` of ``data`` with the bench's small model (the question is memory, not compute)."""
    return [sys.executable, "-m", "vaekit", "train", "--data", str(data), "--epochs", str(args.epochs),
            "--hidden", args.hidden, "--latent-dim", "4", "--batch-size", str(args.batch_size),
            "--no-early-stopping", "--report-iwae-k", "0", "--cache-dir", str(cache), "-q"]


def measure(label: str, cmd: list[str], group: Path, peak_file: str, env: dict, timeout: float,
            watch: dict | None = None) -> dict:
    """:func:`run_limited` with the cgroup's peak charge (reset first where cgroup v1 allows) and a label."""
    if peak_file == "memory.max_usage_in_bytes":
        (group / peak_file).write_text("0")
    r = run_limited(cmd, group, env, timeout, watch)
    try:
        r["cgroup_peak"] = int((group / peak_file).read_text())
    except (OSError, ValueError):
        r["cgroup_peak"] = None
    r["label"] = label
    return r


def remove_cgroup(group: Path | None) -> None:
    """Remove the bench's cgroup once its processes are gone (it is busy for a moment after they exit)."""
    if group is None:
        return
    for _ in range(50):
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.1)


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=3.0, help="size of the float32 array (GB, 1e9 bytes)")
    p.add_argument("--dim", type=int, default=4096, help="values per row")
    p.add_argument("--no-evaluate", action="store_true", help="skip `vaekit evaluate` of the first run")
    add_run_options(p, timeout=420.0)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench.outofcore needs root (it creates a memory cgroup)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout still removes what was written
    limit = int(args.limit_gb * 1e9)
    work = Path(tempfile.mkdtemp(prefix="vaekit-outofcore-", dir=args.tmp))
    group = None
    rows = []
    try:
        n, size = write_array(work / "big.npy", int(args.gb * 1e9), args.dim)
        group, limit_file, peak_file = make_cgroup(limit)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "VAEKIT_CACHE": str(work / "cache")}
        base = train_command(work / "big.npy", args, work / "cache")
        runs = [("mmap, first (writes the cache)", ["--mmap"])]
        if not args.no_evaluate:
            runs.append(("vaekit evaluate (of the first run)", None))
        if args.again:
            runs.append(("mmap, again (cache reused)", ["--mmap"]))
        if args.in_memory:
            runs.append(("in memory", []))
        for i, (label, extra) in enumerate(runs):
            out = work / f"run{i}"
            if extra is None:  # re-reads the first run's data through its cache, as `vaekit report` would
                cmd = [sys.executable, "-m", "vaekit", "evaluate", str(work / "run0"), "--iwae-k", "0",
                       "--no-quality", "--json"]
                watch = None
            else:
                cmd = base + extra + ["--out", str(out)]
                watch = {"cache": (work / "cache" / "outofcore", "[!.]*.npy"), "results": (out, "results.json"),
                         "report": (out, "report.html")}
            r = measure(label, cmd, group, peak_file, env, args.timeout, watch)
            try:
                r["epoch_s"] = [round(json.loads(line)["seconds"], 1)
                                for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
            except (OSError, ValueError, KeyError):
                r["epoch_s"] = None
            rows.append(r)
            if i > 0 or args.no_evaluate:
                shutil.rmtree(out, ignore_errors=True)
    finally:
        remove_cgroup(group)
        shutil.rmtree(work, ignore_errors=True)
    mb = 1e6
    print_table(f"vaekit train over a {size / 1e9:.2f} GB float32 .npy ({n} x {args.dim}) under a "
                f"{args.limit_gb:g} GB memory limit ({args.epochs} epoch, batch {args.batch_size})",
                [(r["label"], r["returncode"], f"{r['seconds']:.1f}", _s(r.get("cache_s")),
                  ",".join(map(str, r["epoch_s"])) if r.get("epoch_s") else "-", _s(r.get("results_s")),
                  _s(r.get("report_s")), f"{r['peak_rss'] / mb:.0f}", f"{r['peak_anon'] / mb:.0f}",
                  "-" if r["cgroup_peak"] is None else f"{r['cgroup_peak'] / mb:.0f}")
                 for r in rows],
                ("run", "exit", "seconds", "cache at s", "epoch s", "results at s", "report at s", "peak RSS MB",
                 "peak anon MB", "cgroup peak MB"))
    print(f"load average {os.getloadavg()[0]:.1f} at the end (1 min); {os.cpu_count()} CPUs")
    for r in rows:
        if r["returncode"] != 0:
            print(f"{r['label']}: exit {r['returncode']}: {r['last_error']}")
    payload = {"load_average": os.getloadavg(), "gb": args.gb, "limit_gb": args.limit_gb, "rows_n": n, "dim": args.dim, "file_bytes": size,
               "epochs": args.epochs, "batch_size": args.batch_size, "runs": rows}
    write_result("outofcore", payload)
    return payload


if __name__ == "__main__":
    main()
