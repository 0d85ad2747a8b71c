"""A series run's data, ready to train on (:class:`~vaekit.preparation.Prepared`): chronological periods,
targets and known covariates standardized with the training period's statistics only, missing steps filled
with 0 (the training mean) and masked, and windows that never cross a period's boundary.

Nothing of the validation or test period reaches the scaler or a training window: the scaler sees steps
[0, train_end) and every training window ends at or before train_end (tests/test_series.py checks both).
"""

from __future__ import annotations

import numpy as np
import torch

from .config import TrainConfig
from .data import Dataset, Standardizer, fill_missing
from .data.kinds.series import PERIODS, WINDOW_ADVICE, SeriesSplit, window_length, windows
from .data.series import periods, window_starts
from .errors import DataError, UsageError
from .preparation import Prepared


def prepare_series(cfg: TrainConfig, ds: Dataset, resolve_likelihood: bool = True) -> Prepared:
    """Split ``ds`` (a series) by time, fit the scalers on the training period, window each period."""
    if cfg.conditional or cfg.condition_columns or cfg.semi_supervised or cfg.binarize != "none":
        raise UsageError("series data take none of --conditional, --condition-columns, --semi-supervised, "
                         "--binarize; drop them (covariates: --covariate-columns)")
    sd = ds.series
    n = sd.observed_end
    if n == 0:
        raise DataError(f"{cfg.data} has no observed value in its target columns {', '.join(sd.targets)}")
    length = window_length(cfg)
    pers = periods(n, cfg.val_fraction, cfg.test_fraction)
    starts = [window_starts(p, length, cfg.stride, what, WINDOW_ADVICE) for p, what in zip(pers, PERIODS)]
    train_end = pers[0][1]
    scaler = Standardizer.fit(torch.from_numpy(sd.values[:train_end]), sd.targets)
    cov_scaler = covariate_scaler(sd, train_end)
    if resolve_likelihood and cfg.likelihood == "auto":
        cfg = cfg.model_copy(update={"likelihood": "gaussian"})
    elif cfg.likelihood not in ("auto", "gaussian"):
        raise UsageError(f"series are modelled with --likelihood gaussian; drop --likelihood {cfg.likelihood}")
    x, mask = model_units(sd, scaler, n)
    c = covariates(sd, cov_scaler, n)
    splits = []
    for p, s in zip(pers, starts):
        splits.append(SeriesSplit(x=windows(x, p, length, cfg.stride), mask=windows(mask, p, length, cfg.stride),
                                  c=None if c is None else windows(c, p, length, cfg.stride),
                                  starts=torch.from_numpy(s)))
    fingerprint = ds.fingerprint()
    ds.x = ds.x[:0].clone()
    prep = Prepared(cfg, ds, tuple(splits), None, scaler, list(sd.targets), (length, len(sd.targets)), fingerprint)
    prep.series_info = series_info(cfg, sd, pers, cov_scaler)
    return prep


def covariate_scaler(sd, train_end: int) -> Standardizer | None:
    """The covariates' scaler, fitted on the training period (calendar sin/cos are kept as they are)."""
    cov = sd.covariate_matrix()
    if not cov.shape[1]:
        return None
    keep = torch.tensor([False] * len(sd.covariates) + [True] * len(sd.calendar_names))
    return Standardizer.fit(torch.from_numpy(cov[:train_end]), sd.covariates + sd.calendar_names, keep)


def model_units(sd, scaler: Standardizer, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets standardized, 0 where missing, [T, D] float32; the mask, 1 = observed) of steps [0, n)."""
    x = scaler.transform(torch.from_numpy(sd.values[:n]).to(torch.float32))
    return fill_missing(x)


def covariates(sd, cov_scaler: Standardizer | None, n: int | None = None) -> torch.Tensor | None:
    """The covariates of steps [0, n) in model units ([T, K] float32), or None when there are none."""
    if cov_scaler is None:
        return None
    return cov_scaler.transform(torch.from_numpy(sd.covariate_matrix()[:n]).to(torch.float32))


def series_info(cfg: TrainConfig, sd, pers, cov_scaler: Standardizer | None) -> dict:
    """The ``series`` record of a series run's ``config.json`` (how to read, window and scale new data)."""
    bounds = [[int(a), int(b)] for a, b in pers]
    text = sd.time_text(np.array([a for a, _ in pers] + [pers[-1][1] - 1]))
    return {"time_column": sd.time_column, "targets": list(sd.targets), "covariates": list(sd.covariates),
            "calendar": list(sd.calendar_names), "step_ns": int(sd.step), "clock": bool(sd.clock),
            "context": int(cfg.context), "horizon": cfg.horizon, "stride": int(cfg.stride),
            "periods": bounds, "period_starts": text[:3], "last_step": text[3],
            "covariate_scaler": cov_scaler.to_dict() if cov_scaler is not None else None}
