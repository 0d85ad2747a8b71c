"""Per-timestamp anomaly scores of vaekit's series-vae (the function behind ``vaekit score``) on sktime's
bundled labelled series, against two baselines, by **point-wise** AUROC and average precision (each timestamp
counts once; never point-adjusted).

- ``mitdb``: an ECG excerpt of the MIT-BIH arrhythmia database, 7,500 points, 352 anomalous (one segment at
  the end of the series); ``yahoo``: a Yahoo S5 KPI series, 1,000 points, 7 anomalous points.
- nearest-window distance: each window of ``w`` steps scores its Euclidean distance to the nearest window that
  does not overlap it (a discord); a step's score is the mean of the windows holding it.
- rolling-median z-score: |x_t − median| / (1.4826 · MAD) over the centred ``w``-step window around t.
- series-vae: trained on the series' chronological training period (the first 80%; the next 10% validates
  for early stopping), then :func:`vaekit.series_tasks.step_scores` scores every step of the whole series
  (log p(x_t | window), ``--iwae-k`` posterior draws, the mean over the windows holding the step).

These sets are easy (the simple baselines reach about 0.97 and 1.0 AUROC): treat the rows as checks that the
scores line up with labelled anomalies, not as a ranking of methods.

The data are read out of the sktime wheel (``sktime/datasets/data/{mitdb,yahoo}/*.csv``), downloaded once with
``pip download --no-deps sktime`` into a cache folder (see bench/molecules_data.py); sktime is not installed.

    python -m bench.series_anomaly [--epochs 20] [--iwae-k 20] [--wheel PATH] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import csv
import io
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from .molecules_data import fail, package_wheel

#: name → the window (baselines) and context (series-vae) in steps
SETS = {"mitdb": 256, "yahoo": 24}
MEMBER = "sktime/datasets/data/{name}/{name}.csv"


def read_set(wheel: str | Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values [T], labels [T] 0/1) of one of sktime's bundled anomaly series, read from its wheel."""
    try:
        with zipfile.ZipFile(wheel) as z:
            raw = z.read(MEMBER.format(name=name)).decode()
    except (zipfile.BadZipFile, KeyError) as err:
        fail(f"{wheel} is not an sktime wheel with the {name} data ({err}); pass the sktime-*.whl that "
             "`pip download --no-deps sktime` saves")
    rows = list(csv.DictReader(io.StringIO(raw)))
    if not rows or {"data", "label"} - set(rows[0]):
        fail(f"{name}.csv in {wheel} has no data,label columns")
    return (np.array([float(r["data"]) for r in rows]), np.array([int(float(r["label"])) for r in rows]))


def nearest_window(x: np.ndarray, w: int) -> np.ndarray:
    """[T] scores (higher = more anomalous): per window, the distance to its nearest non-overlapping window,
    averaged over the windows holding each step."""
    win = np.lib.stride_tricks.sliding_window_view(x, w).astype(np.float64)
    n = len(win)
    sq = (win ** 2).sum(1)
    best = np.full(n, np.inf)
    for i in range(0, n, 512):
        d2 = sq[i:i + 512, None] + sq[None] - 2 * win[i:i + 512] @ win.T
        rows = np.arange(i, min(i + 512, n))[:, None]
        d2[np.abs(rows - np.arange(n)[None]) < w] = np.inf
        best[i:i + 512] = np.sqrt(np.maximum(d2.min(1), 0))
    total, count = np.zeros(len(x)), np.zeros(len(x))
    for j in range(w):
        total[j:j + n] += best
        count[j:j + n] += 1
    return total / count


def rolling_median_z(x: np.ndarray, w: int) -> np.ndarray:
    """[T] |x_t − median| / (1.4826 MAD) over the centred ``w``-step window (edges padded by reflection)."""
    h = w // 2
    pad = np.pad(x, (h, w - 1 - h), mode="reflect")
    win = np.lib.stride_tricks.sliding_window_view(pad, w)
    med = np.median(win, 1)
    mad = np.median(np.abs(win - med[:, None]), 1)
    return np.abs(x - med) / (1.4826 * mad + 1e-9 * (np.abs(x).mean() + 1))


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """The series as time,value,label with a 1-minute clock (the data have none; calendar features are off)."""
    times = np.datetime64("2000-01-01T00:00") + np.arange(len(x)) * np.timedelta64(1, "m")
    lines = ["time,value,label"] + [f"{str(t).replace('T', ' ')},{float(v)!r},{int(l)}" for t, v, l in zip(times, x, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--iwae-k", type=int, default=20, help="posterior draws per window when scoring")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--context", type=int, default=None,
                    help="the series-vae's window in steps [each set's baseline window: mitdb 256, yahoo 24]")
    ap.add_argument("--stride", type=int, default=1, help="steps between the series-vae's training windows")
    ap.add_argument("--sets", default="mitdb,yahoo")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--wheel", default=None, help="an sktime-*.whl already downloaded")
    ap.add_argument("--cache-dir", default=None, help="where the wheel is kept [$VAEKIT_CACHE/sktime]")
    args = ap.parse_args()
    names = [s for s in args.sets.split(",") if s]
    if not names or set(names) - set(SETS):
        fail(f"--sets must name some of {', '.join(SETS)}, got {args.sets!r}")

    import torch

    import vaekit
    from vaekit.series_api import read_series
    from vaekit.series_tasks import step_scores
    from vaekit.tasks.anomaly import ranking_metrics

    torch.set_num_threads(args.threads)
    wheel = package_wheel("sktime", args.wheel, args.cache_dir, "about 8 MB")
    tmp = Path(tempfile.mkdtemp(prefix="vaekit-series-anomaly-"))  # left behind: the runs, to inspect
    results: dict[str, dict] = {}
    for name in names:
        x, y = read_set(wheel, name)
        w = SETS[name]
        data = write_csv(tmp / f"{name}.csv", x, y)
        # ranking_metrics ranks low scores first: the baselines' "higher = more anomalous" is negated
        rows = {"nearest-window distance": ranking_metrics(-nearest_window(x, w), y == 1),
                "rolling-median z-score": ranking_metrics(-rolling_median_z(x, w), y == 1)}
        runs = []
        ctx = min(args.context or w, w)
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            trained = vaekit.train(str(data), tmp / f"{name}-run{seed}", family="series-vae", context=ctx,
                                   stride=args.stride,
                                   target_columns=["value"], label_column="label", calendar_features=False,
                                   epochs=args.epochs, patience=5, hidden=[32], latent_dim=8, batch_size=64,
                                   seed=seed, report=False, overwrite=True, threads=args.threads)
            train_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            s = step_scores(trained, read_series(trained, str(data), "label"), args.iwae_k, seed)
            m = ranking_metrics(s, y == 1)
            runs.append({**m, "train_s": train_s, "score_s": time.perf_counter() - t1,
                         "epochs": trained.result.epochs_run, "best_epoch": trained.result.best_epoch})
        rows["series-vae (vaekit score)"] = runs
        results[name] = {"points": len(x), "anomalous": int(y.sum()), "window": w, "context": ctx, "models": rows}
    print(f"point-wise AUROC / AP over every step (not point-adjusted); {args.seeds} seed(s), {args.epochs} max "
          f"epochs, training stride {args.stride}, k={args.iwae_k}, {args.threads} threads")
    print("| series (points, anomalous) | window (baselines / series-vae) | model | AUROC | AP |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        first = f"{name} ({r['points']:,}, {r['anomalous']})"
        wins = f"{r['window']} / {r['context']}"
        for i, (model, m) in enumerate(r["models"].items()):
            ms = m if isinstance(m, list) else [m]
            cell = lambda k: f"{np.mean([v[k] for v in ms]):.3f}" + (  # noqa: E731
                f" ± {np.std([v[k] for v in ms], ddof=1):.3f}" if len(ms) > 1 else "")
            print(f"| {first if i == 0 else ''} | {wins if i == 0 else ''} | {model} | {cell('auroc')} | "
                  f"{cell('average_precision')} |")
        for v in r["models"]["series-vae (vaekit score)"]:
            print(f"  {name}: series-vae trained {v['train_s']:.0f} s ({v['epochs']} epochs, best {v['best_epoch']}),"
                  f" scored in {v['score_s']:.1f} s")
    from bench.common import write_result

    print(f"wrote {write_result('series_anomaly', {'settings': vars(args), 'sets': results})}")


if __name__ == "__main__":
    main()
