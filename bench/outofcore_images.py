"""Image folders larger than memory (issue 20): peak memory of a `vaekit train --mmap` run over a folder of PNGs
whose decoded float32 pixels exceed the memory limit it runs under (the image counterpart of bench.outofcore,
whose memory cgroup and sampling it uses).

    python -m bench.outofcore_images [--images 40000] [--px 64] [--limit-gb 1] [--again] [--in-memory]

``--images`` random RGB PNGs of ``--px`` pixels square (10 class subfolders; N x 3 x px x px x 4 bytes decoded)
are written to a temporary folder and dropped from the page cache; then `vaekit train --mmap` runs in a fresh
process inside a memory cgroup limited to ``--limit-gb`` (root only). The first run decodes the folder once, a
chunk at a time, into vaekit's split-ordered cache, then trains; ``--again``: a second run reuses the cache;
``--in-memory``: the same run without ``--mmap`` (it holds every decoded image: expected killed, or refused).
Reported per run: its wall time, when the cache was in place (seconds from its start: it is renamed into
place once written), the peak RSS, the sampled peak anonymous memory and the cgroup's peak charge.
Everything written (images, cache, runs, cgroup) is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import print_table, write_result
from bench.outofcore import add_run_options, make_cgroup, measure, remove_cgroup, train_command


def write_images(folder: Path, n: int, px: int, classes: int = 10) -> int:
    """``n`` random RGB ``px`` x ``px`` PNGs in ``classes`` subfolders, synced and dropped from the page cache
    (the run under the limit reads them, and is charged for it); their bytes on disk."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        d = folder / f"class{i % classes}"
        d.mkdir(parents=True, exist_ok=True)
        paths.append(d / f"{i:07d}.png")
        Image.fromarray(rng.integers(0, 256, (px, px, 3), dtype=np.uint8)).save(paths[-1], compress_level=1)
    os.sync()
    for path in paths:
        with open(path, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return sum(p.stat().st_size for p in paths)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=40000, help="number of PNGs")
    p.add_argument("--px", type=int, default=64, help="side of each PNG (pixels)")
    add_run_options(p, timeout=280.0)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench.outofcore_images needs root (it creates a memory cgroup)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout still removes what was written
    work = Path(tempfile.mkdtemp(prefix="vaekit-outofcore-images-", dir=args.tmp))
    group = None
    rows = []
    decoded = args.images * 3 * args.px * args.px * 4
    try:
        size = write_images(work / "images", args.images, args.px)
        group, _, peak_file = make_cgroup(int(args.limit_gb * 1e9))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "VAEKIT_CACHE": str(work / "cache")}
        base = train_command(work / "images", args, work / "cache")
        runs = [("mmap, first (decodes into the cache)", ["--mmap"])]
        if args.again:
            runs.append(("mmap, again (cache reused)", ["--mmap"]))
        if args.in_memory:
            runs.append(("in memory", []))
        for i, (label, extra) in enumerate(runs):
            cache = (work / "cache" / "outofcore", "[!.]*.npy")  # renamed into place once written
            fresh = extra and not (cache[0].is_dir() and any(cache[0].glob(cache[1])))
            watch = {"cache_written": cache} if fresh else None  # a reused cache is not timed
            r = measure(label, base + extra + ["--out", str(work / f"run{i}")], group, peak_file, env, args.timeout,
                        watch)
            r.setdefault("cache_written_s", None)
            rows.append(r)
            shutil.rmtree(work / f"run{i}", ignore_errors=True)
    finally:
        remove_cgroup(group)
        shutil.rmtree(work, ignore_errors=True)
    mb = 1e6
    print_table(f"vaekit train over {args.images} {args.px}x{args.px} RGB PNGs ({size / 1e9:.2f} GB; "
                f"{decoded / 1e9:.2f} GB decoded) under a {args.limit_gb:g} GB memory limit ({args.epochs} epoch, "
                f"batch {args.batch_size})",
                [(r["label"], r["returncode"], f"{r['seconds']:.1f}",
                  "-" if r["cache_written_s"] is None else f"{r['cache_written_s']:.1f}",
                  f"{r['peak_rss'] / mb:.0f}", f"{r['peak_anon'] / mb:.0f}",
                  "-" if r["cgroup_peak"] is None else f"{r['cgroup_peak'] / mb:.0f}") for r in rows],
                ("run", "exit", "seconds", "cache written at s", "peak RSS MB", "peak anon MB", "cgroup peak MB"))
    for r in rows:
        if r["returncode"] != 0:
            print(f"{r['label']}: exit {r['returncode']}: {r['last_error']}")
    payload = {"images": args.images, "px": args.px, "file_bytes": size, "decoded_bytes": decoded,
               "limit_gb": args.limit_gb, "epochs": args.epochs, "batch_size": args.batch_size, "runs": rows}
    write_result("outofcore_images", payload)
    return payload


if __name__ == "__main__":
    main()
