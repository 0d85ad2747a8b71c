"""Forecast metrics (numpy, data units): MAE, RMSE, MASE, CRPS from samples (and the Gaussian closed form it
is tested against) and central interval coverage. Missing truths (NaN) are left out of every average.

- MAE, RMSE: of the point forecast (the median of the samples, which minimises the expected absolute error);
- MASE: MAE divided by the in-sample MAE of the seasonal naive forecast (period ``m``) on the training period
  (Hyndman & Koehler 2006); < 1 beats that naive forecast;
- CRPS: E|X − y| − ½ E|X − X'| over the forecast's samples X, X' (Gneiting & Raftery 2007), computed from
  the sorted samples in O(S log S); it equals the MAE for a point forecast and has the data's units;
- coverage(l): the fraction of truths inside the central l-interval of the samples (nominal: l).
"""

from __future__ import annotations

import math

import numpy as np


def crps_samples(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of each forecast: ``samples`` [S, ...] against truths ``y`` [...] (the same trailing shape)."""
    s = np.sort(np.asarray(samples, dtype=np.float64), axis=0)
    n = s.shape[0]
    y = np.asarray(y, dtype=np.float64)
    abs_err = np.abs(s - y[None]).mean(0)
    w = (2 * np.arange(1, n + 1) - n - 1).reshape((n,) + (1,) * (s.ndim - 1))
    spread = (w * s).sum(0) / (n * n)  # = ½ E|X − X'| (E over the n² ordered pairs, i = j included)
    return abs_err - spread


def crps_gaussian(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of N(mu, sigma²) at y, closed form: σ [z (2Φ(z) − 1) + 2φ(z) − 1/√π], z = (y − μ)/σ."""
    mu, sigma, y = (np.asarray(a, dtype=np.float64) for a in (mu, sigma, y))
    z = (y - mu) / sigma
    phi = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    return sigma * (z * (2 * cdf - 1) + 2 * phi - 1 / math.sqrt(math.pi))


def coverage(samples: np.ndarray, y: np.ndarray, level: float) -> float:
    """Fraction of observed ``y`` inside the central ``level`` interval of ``samples`` [S, ...]."""
    lo, hi = np.quantile(np.asarray(samples, dtype=np.float64), [(1 - level) / 2, (1 + level) / 2], axis=0)
    ok = ~np.isnan(y)
    return float(((y >= lo) & (y <= hi))[ok].mean())


def naive_scale(train: np.ndarray, m: int) -> float:
    """In-sample MAE of the seasonal naive forecast y_t = y_{t−m} over a training series [T, ...] (MASE's
    denominator); NaN pairs are skipped."""
    train = np.asarray(train, dtype=np.float64)
    if len(train) <= m:
        return float("nan")
    d = np.abs(train[m:] - train[:-m])
    return float(np.nanmean(d))


def forecast_metrics(samples: np.ndarray, y: np.ndarray, scale: float | None = None) -> dict[str, float]:
    """MAE, RMSE (of the median), MASE (with ``scale`` from :func:`naive_scale`), CRPS, 80% and 95% coverage
    of forecasts ``samples`` [S, ...] against truths ``y`` [...] (NaN = not observed, left out)."""
    y = np.asarray(y, dtype=np.float64)
    ok = ~np.isnan(y)
    if not ok.any():
        raise ValueError("no observed truth to score the forecasts against")
    med = np.median(samples, axis=0)
    err = (med - y)[ok]
    mae = float(np.abs(err).mean())
    out = {"mae": mae, "rmse": float(np.sqrt((err ** 2).mean())),
           "crps": float(crps_samples(samples, np.where(ok, y, 0.0))[ok].mean()),
           "coverage_80": coverage(samples, y, 0.8), "coverage_95": coverage(samples, y, 0.95), "n": int(ok.sum())}
    if scale is not None and math.isfinite(scale) and scale > 0:
        out["mase"] = mae / scale
    return out
