"""Calibration of a forecast-cvae's predictive quantiles on the validation period.

Why: the forecast's spread is mostly the decoder's per-step σ (z carries little on smooth demand series), and
how well σ is fitted depends on where early stopping ends training, so raw intervals come out a few points too
wide or too narrow. At the end of training the run forecasts origins of its *validation* period (never the
test period) and fits, per central interval level l, a spread factor k(l) such that the interval
median ± k(l)·(the l-interval's distances from the median) holds a fraction l of the observed truths (the
multiplicative score of conformalized quantile regression, Romano et al. 2019, one factor per level; cf.
quantile recalibration, Kuleshov et al. 2018). It is kept in the run (``calibration.json``). A forecast's
samples are then moved per step and target: the sample of rank r (level u = (r + ½)/S) becomes
median + k(|2u − 1|)·(sample − median). The median (the point forecast: MAE,
RMSE) does not move, sample paths keep their rank order, factors can widen past the samples' range, and a
calibrated forecast is left nearly as it was (k ≈ 1). Runs without ``calibration.json`` (earlier versions)
forecast as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .runs import read_json, write_json

CALIBRATION = "calibration.json"
#: central interval levels at which the spread factors are kept
GRID = (np.arange(200) + 0.5) / 200


def _sorted_entries(samples: np.ndarray) -> np.ndarray:
    s = np.asarray(samples, dtype=np.float64)
    return np.sort(s.reshape(s.shape[0], -1), axis=0)


def _at_levels(srt: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """[len(levels), M] quantiles of sorted samples [S, M], the sample of rank r standing at level (r + ½)/S."""
    S = srt.shape[0]
    pos = np.clip(levels * S - 0.5, 0.0, S - 1.0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, S - 1)
    frac = (pos - lo)[:, None]
    return srt[lo] * (1 - frac) + srt[hi] * frac


def fit_recalibration(samples: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Spread factors k(l) per central level l fitted on forecasts ``samples`` [S, ...] of truths ``y`` [...] (the
    validation period; NaN truths are left out): the central l-interval [q_lo, q_hi] becomes
    median ± k(l)·(its distances from the median), k(l) the l-quantile of the factor each truth needs to fall
    inside (conformalized quantile regression's multiplicative score per level). Returns ``{"method", "levels",
    "factors", "n"}`` and the before/after interval coverage of those forecasts."""
    from .evaluation.forecasting import coverage

    y = np.asarray(y, dtype=np.float64)
    ok = ~np.isnan(y).reshape(-1)
    if not ok.any():
        raise ValueError("no observed truth to calibrate the forecasts on")
    srt = _sorted_entries(samples)[:, ok]
    yy = y.reshape(-1)[ok]
    med = np.median(srt, 0)
    below = _at_levels(srt, (1 - GRID) / 2)  # [G, M]
    above = _at_levels(srt, (1 + GRID) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.maximum((med - yy)[None] / (med[None] - below), (yy - med)[None] / (above - med[None]))
    r = np.nan_to_num(r, nan=0.0, posinf=1e6)  # 0/0: the truth is the median; y beyond a zero distance: huge
    ks = [float(np.clip(np.quantile(r[g], lev), 0.0, 100.0)) for g, lev in enumerate(GRID)]
    cal = {"method": "spread factor per central level, fitted on the validation period", "levels": GRID.tolist(),
           "factors": ks, "n": int(ok.sum())}
    cal["coverage_before"] = {"80": coverage(samples, y, 0.8), "95": coverage(samples, y, 0.95)}
    after = recalibrate(samples, cal)
    cal["coverage_after"] = {"80": coverage(after, y, 0.8), "95": coverage(after, y, 0.95)}
    return cal


def recalibrate(samples: np.ndarray, cal: dict[str, Any] | None) -> np.ndarray:
    """``samples`` [S, ...] moved by the map ``cal`` (None: returned as they are): per entry, the sample of rank r
    (level u = (r + ½)/S, central level |2u − 1|) becomes median + k(|2u − 1|)·(sample − median); each entry's
    samples keep their rank order."""
    if not cal:
        return samples
    s = np.asarray(samples, dtype=np.float64)
    S = s.shape[0]
    flat = s.reshape(S, -1)
    order = np.argsort(flat, axis=0, kind="stable")
    srt = np.take_along_axis(flat, order, 0)
    med = np.median(srt, 0)
    k = np.interp(np.abs(2 * (np.arange(S) + 0.5) / S - 1), np.asarray(cal["levels"]), np.asarray(cal["factors"]))
    new = np.sort(med[None] + k[:, None] * (srt - med[None]), axis=0)
    out = np.empty_like(flat)
    np.put_along_axis(out, order, new, 0)
    return out.reshape(s.shape)


def run_calibration(trained: Any) -> dict[str, Any] | None:
    """The run's recalibration map: kept in ``info["series"]["calibration"]`` once read, else read from the
    run's ``calibration.json``; None for a run without one (forecasts are left raw)."""
    s = trained.info.get("series", {})
    if "calibration" in s:
        return s["calibration"]
    path = None if trained.run_dir is None else trained.run_dir / CALIBRATION
    cal = read_json(path) if path is not None and path.is_file() else None
    s["calibration"] = cal
    return cal


def calibrate_run(trained: Any, sd: Any, samples: int, seed: int) -> dict[str, Any] | None:
    """Fit the map on origins of the run's validation period (every quarter horizon, context and future
    inside it), keep it in the run (``calibration.json``, atomic) and return it; None when the period holds no
    origin (then forecasts stay raw)."""
    from .series_api import forecast_samples

    C, H = trained.config.context, int(trained.config.horizon)
    a, b = trained.info["series"]["periods"][1]
    origins = np.arange(a + C, b - H + 1, max(1, H // 4), dtype=np.int64)
    trained.info["series"]["calibration"] = None
    if len(origins) == 0:
        return None
    fc = forecast_samples(trained, sd, origins, samples, seed, calibrated=False)
    ys = sd.values[origins[:, None] + np.arange(H)[None]]
    if np.isnan(ys).all():
        return None
    cal = {**fit_recalibration(fc, ys), "period": [int(a), int(b)], "origins": int(len(origins)),
           "samples": samples}
    if trained.run_dir is not None:
        write_json(trained.run_dir / CALIBRATION, cal)
    trained.info["series"]["calibration"] = cal
    return cal
