"""Time series (:mod:`vaekit.data.series`): one regular series with a time column, windows of ``--context``
(+ ``--horizon``) steps, chronological train/validation/test periods and a scaler fitted on the training period.

Claim rule: a CSV with a time column is also a table, and the file alone cannot say which it is, so this kind
never claims a source by itself; the families that need it (``series-vae``, ``forecast-cvae``) ask for it by
name (``Family.data_kind``), as the interactions kind is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import DataError
from ..dataset import Dataset, Split
from .base import DataKind

SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", ".npy")


class SeriesKind(DataKind):
    name = "series"
    bernoulli_ok = False
    bernoulli_refusal = "a series is modelled with a Gaussian likelihood"
    #: prepared by :func:`vaekit.series_prep.prepare_series` (scaled on the training period, then windowed)
    windowed = True
    loss_note = "losses are −ELBO of windows in standardized units (the training period's mean and std)"

    def claims(self, source: str, path: Path | None) -> bool:
        return False  # chosen by the family (see the module's docstring), never by the file alone

    def load(self, source: str, path: Path | None, *, time_column: str | None = None,
             target_columns: list[str] | None = None, covariate_columns: list[str] | None = None,
             frequency: str | None = None, calendar: bool = True, label_column: str | None = None,
             **_: Any) -> Dataset:
        from ..series import load_series

        if path is None or not path.is_file() or not path.name.lower().endswith(SUFFIXES):
            raise DataError(f"a series is read from a .csv/.parquet file with a time column or a .npy of shape [T] "
                            f"or [T, D], not {source}")
        sd = load_series(path, time_column=time_column, target_columns=target_columns,
                         covariate_columns=covariate_columns, frequency=frequency, label_column=label_column,
                         calendar=calendar)
        return Dataset(x=torch.from_numpy(sd.values.astype(np.float32)), kind=self.name, name=source,
                       columns=list(sd.targets), series=sd)

    def load_options(self, config: Any, info: dict) -> dict[str, Any]:
        saved = info.get("series") or {}
        return {"kind": self.name, "time_column": saved.get("time_column", config.time_column),
                "target_columns": saved.get("targets", config.target_columns),
                "covariate_columns": saved.get("covariates", config.covariate_columns),
                "frequency": config.frequency, "calendar": config.calendar_features}

    def split(self, ds: Dataset, config: Any) -> tuple[Split, Split, Split]:
        """Raw windows (data units, NaN = missing) of the chronological periods; training scales them first."""
        from ..series import periods, window_starts

        sd, length = ds.series, window_length(config)
        out = []
        x = torch.from_numpy(sd.values.astype(np.float32))
        for p, what in zip(periods(sd.observed_end, config.val_fraction, config.test_fraction), PERIODS):
            s = window_starts(p, length, config.stride, what, WINDOW_ADVICE)
            out.append(SeriesSplit(x=windows(x, p, length, config.stride), starts=torch.from_numpy(s)))
        return out[0], out[1], out[2]

    def default_likelihood(self, in_unit: bool, mixed: bool) -> str:
        return "gaussian"


PERIODS = ("training period", "validation period", "test period")
WINDOW_ADVICE = "use a longer series, a shorter --context/--horizon or other --val-fraction/--test-fraction"


def window_length(config: Any) -> int:
    """Steps per window: ``context`` (+ ``horizon`` for forecasting)."""
    return int(config.context) + int(config.horizon or 0)


def windows(x: torch.Tensor, period: tuple[int, int], length: int, stride: int) -> torch.Tensor:
    """[N, length, D] windows of ``x`` [T, D] inside ``period``, every ``stride`` steps: a view, no copy."""
    a, b = period
    return x[a:b].unfold(0, length, stride).transpose(1, 2)


@dataclass
class SeriesSplit(Split):
    """A period's windows: ``x`` [N, L, D], ``c`` [N, L, K] covariates, ``mask`` [N, L, D] (1 = observed), and
    ``starts``, each window's first step in the series."""

    starts: torch.Tensor | None = None
