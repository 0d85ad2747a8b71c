"""Time series: a CSV/Parquet with a time column (or a ``.npy`` of shape [T] or [T, D]) as one regular series.

The loader parses the time column, checks it is sorted, without duplicates and on a regular grid (the step is
``--frequency``, or the smallest step when every step is a multiple of it); missing timestamps become rows of
NaN (missing, masked in the likelihood). Value columns (``--target-columns``; default: every numeric column
but the time, covariate and label columns) are the series; covariate columns (``--covariate-columns``) are
known in advance (temperature, workday), and calendar features (hour of day, day of week as sin/cos) are
derived from the timestamps. Splits are chronological (:func:`periods`), windows never cross a period's
boundary (:func:`window_starts`), and the scaler is fitted on the training period only (see
:mod:`vaekit.series_prep`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

#: names of a time column found without ``--time-column`` (case-insensitive)
TIME_NAMES = ("time", "date", "timestamp", "ds", "datetime")
_UNITS = {"s": 1, "sec": 1, "min": 60, "t": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400,
          "w": 604800, "week": 604800}
NS = 1_000_000_000
DAY_NS = 86400 * NS
WEEK_NS = 7 * DAY_NS


@dataclass
class SeriesData:
    """One regular series: ``times`` (int64 ns since 1970, or step numbers for arrays without a clock),
    ``values`` [T, D] float64 (NaN = missing), ``known`` [T, K] known covariates (float64), ``calendar`` [T, C]
    derived features, ``labels`` [T] (0/1, -1 unknown) or None, and their names."""

    times: np.ndarray
    values: np.ndarray
    known: np.ndarray
    calendar: np.ndarray
    targets: list[str]
    covariates: list[str]
    calendar_names: list[str]
    step: int  # ns between steps (1 for a step-numbered array)
    clock: bool  # whether times are timestamps (CSV/Parquet, or .npy with --frequency)
    time_column: str | None = None
    labels: np.ndarray | None = None

    @property
    def observed_end(self) -> int:
        """One past the last step with an observed target (rows after it only carry future covariates)."""
        seen = np.flatnonzero(~np.isnan(self.values).all(1))
        return int(seen[-1]) + 1 if len(seen) else 0

    def covariate_matrix(self) -> np.ndarray:
        """[T, K + C]: known covariates then calendar features."""
        return np.concatenate([self.known, self.calendar], axis=1)

    def time_text(self, i: np.ndarray | None = None) -> list[str]:
        """The timestamps (ISO 8601, to the second) or step numbers, as text."""
        t = self.times if i is None else self.times[i]
        if not self.clock:
            return [str(int(v)) for v in t]
        return [s.replace("T", " ") for s in np.datetime_as_string(t.astype("datetime64[ns]"), unit="s")]

    def fingerprint_bytes(self) -> bytes:
        h = hashlib.sha256()
        for a in (self.times, self.values, self.known):
            h.update(f"{a.dtype.str}{list(a.shape)};".encode())
            h.update(np.ascontiguousarray(a).tobytes())
        h.update("|".join(self.targets + ["|"] + self.covariates).encode())
        return h.digest()


def parse_frequency(text: str | None) -> int | None:
    """``--frequency`` (``30min``, ``1h``, ``15s``, ``D``, ``W``) in ns; None when not given."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)?\s*([a-zA-Z]+)\s*", str(text))
    unit = m.group(2).lower() if m else ""
    unit = unit[:-1] if unit.endswith("s") and unit[:-1] in _UNITS else unit
    if not m or unit not in _UNITS:
        raise DataError(f"--frequency {text!r} is not a frequency; give a number and a unit, e.g. 30min, 1h, 15s, "
                        "1D or 1W")
    step = int(round(float(m.group(1) or 1) * _UNITS[unit] * NS))
    if step <= 0:
        raise DataError(f"--frequency {text!r} must be a positive step")
    return step


def load_series(path: Path, *, time_column: str | None = None, target_columns: list[str] | None = None,
                covariate_columns: list[str] | None = None, frequency: str | None = None,
                label_column: str | None = None, calendar: bool = True) -> SeriesData:
    """Read ``path`` (CSV/Parquet with a time column, or .npy [T]/[T, D]) into a regular :class:`SeriesData`."""
    step = parse_frequency(frequency)
    if path.suffix.lower() == ".npy":
        return _from_array(path, step, target_columns, covariate_columns, label_column, time_column)
    from .table_io import read_table

    table = read_table(path)
    names = list(table.column_names)
    tcol = _time_column(names, time_column, path)
    times = _parse_times(table.column(tcol), tcol, path)
    covs = list(covariate_columns or [])
    used = {tcol, *covs, *([label_column] if label_column else [])}
    for c in covs + ([label_column] if label_column else []) + list(target_columns or []):
        if c not in names:
            raise DataError(f"{path} has no column {c!r} (columns: {', '.join(names)}); check the column names")
    targets = list(target_columns) if target_columns else [c for c in names if c not in used]
    overlap = [c for c in targets if c in used]
    if overlap:
        raise DataError(f"column {overlap[0]!r} cannot be both a target and a time/covariate/label column; "
                        "give each column one role")
    if not targets:
        raise DataError(f"{path} has no value column besides {', '.join(sorted(used))}; add one or name it with "
                        "--target-columns")
    values = np.stack([_numeric(table.column(c), c, path, "--target-columns") for c in targets], 1)
    known = np.stack([_numeric(table.column(c), c, path, "--covariate-columns") for c in covs], 1) if covs else \
        np.zeros((len(times), 0))
    labels = _numeric(table.column(label_column), label_column, path, "--label-column") if label_column else None
    times, values, known, labels, step = _regular(times, values, known, labels, step, tcol, path)
    return _with_calendar(SeriesData(times, values, _fill_known(known, covs), np.zeros((len(times), 0)), targets, covs, [],
                                     step, True, tcol, _labels(labels, label_column, path)), calendar)


def _from_array(path: Path, step: int | None, targets: list[str] | None, covs: list[str] | None,
                label_column: str | None, time_column: str | None) -> SeriesData:
    from .sources import _check_npy_header  # the header and size checks every .npy read goes through

    if covs or label_column or time_column:
        raise DataError(f"{path} is an array: --time-column, --covariate-columns and --label-column need a "
                        "CSV/Parquet with named columns; drop them")
    with open(path, "rb") as f:
        _check_npy_header(f, path.stat().st_size, str(path))
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise DataError(f"cannot read {path} as a numeric .npy array ({err})".splitlines()[0]) from None
    if arr.ndim not in (1, 2) or arr.dtype.kind not in "biuf":
        raise DataError(f"a series .npy must be numbers of shape [T] or [T, D]; {path} holds {arr.dtype} of shape "
                        f"{list(arr.shape)}")
    values = arr.reshape(len(arr), -1).astype(np.float64)
    names = list(targets) if targets else [f"x{i}" for i in range(values.shape[1])]
    if len(names) != values.shape[1]:
        raise DataError(f"--target-columns names {len(names)} columns but {path} has {values.shape[1]}")
    clock = step is not None
    times = np.arange(len(values), dtype=np.int64) * (step or 1)
    return _with_calendar(SeriesData(times, values, np.zeros((len(values), 0)), np.zeros((len(values), 0)), names,
                                     [], [], step or 1, clock), clock)


def _time_column(names: list[str], given: str | None, path: Path) -> str:
    if given is not None:
        if given not in names:
            raise DataError(f"{path} has no time column {given!r} (columns: {', '.join(names)}); check "
                            "--time-column")
        return given
    found = [n for n in names if n.strip().lower() in TIME_NAMES]
    if not found:
        raise DataError(f"{path} has no time column (one named {', '.join(TIME_NAMES)}); name it with "
                        "--time-column")
    return found[0]


def _parse_times(col, name: str, path: Path) -> np.ndarray:
    """int64 ns since 1970 of a timestamp/date/text column; one line naming the first value that is not a time."""
    import pyarrow as pa

    if col.null_count:
        raise DataError(f"time column {name!r} of {path} has {col.null_count} empty value(s); every row needs a "
                        "timestamp")
    typ = col.type
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        return col.cast(pa.timestamp("ns")).to_numpy().astype("datetime64[ns]").astype(np.int64)
    if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        raise DataError(f"time column {name!r} of {path} holds {typ}, not timestamps; give times like "
                        "2014-01-01 00:30 (or choose the right --time-column)")
    text = col.to_pylist()
    try:
        return np.array([s.strip().replace(" ", "T", 1) for s in text], dtype="datetime64[ns]").astype(np.int64)
    except ValueError:
        for i, s in enumerate(text):
            try:
                np.datetime64(s.strip().replace(" ", "T", 1), "ns")
            except ValueError:
                raise DataError(f"time column {name!r} of {path}: row {i + 1} holds {s!r}, which is not a time; "
                                "use ISO 8601 (2014-01-01 00:30)") from None
        raise


def _numeric(col, name: str, path: Path, flag: str) -> np.ndarray:
    import pyarrow as pa

    typ = col.type
    if not (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ)
            or pa.types.is_null(typ)):
        raise DataError(f"column {name!r} of {path} is not numeric ({typ}); choose numeric columns with {flag}")
    return col.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def _regular(times: np.ndarray, values: np.ndarray, known: np.ndarray, labels: np.ndarray | None,
             step: int | None, tcol: str, path: Path):
    """Check the times are sorted, unique and on one grid; insert NaN rows where timestamps are missing."""
    if len(times) < 2:
        raise DataError(f"{path} has {len(times)} row(s); a series needs many more steps than its windows")
    diff = np.diff(times)
    txt = lambda i: np.datetime_as_string(times[i].astype("datetime64[ns]"), unit="s")  # noqa: E731
    if (diff == 0).any():
        i = int(np.flatnonzero(diff == 0)[0]) + 1
        raise DataError(f"time column {tcol!r} of {path} repeats {txt(i)} (rows {i} and {i + 1}); give each "
                        "timestamp once")
    if (diff < 0).any():
        i = int(np.flatnonzero(diff < 0)[0]) + 1
        raise DataError(f"time column {tcol!r} of {path} is not sorted: {txt(i)} (row {i + 1}) comes after "
                        f"{txt(i - 1)}; sort the file by time")
    given = step is not None
    step = int(step if given else diff.min())
    off = np.flatnonzero(diff % step != 0)
    if len(off):
        i = int(off[0]) + 1
        how = f"the --frequency step of {step / NS:g} s" if given else \
            f"the smallest step ({step / NS:g} s); pass --frequency to say the series' step"
        raise DataError(f"time column {tcol!r} of {path} is irregular: {txt(i - 1)} to {txt(i)} is not a whole "
                        f"number of {how}")
    idx = ((times - times[0]) // step).astype(np.int64)
    n = int(idx[-1]) + 1
    if n > 50_000_000:
        raise DataError(f"{path} spans {n} steps of {step / NS:g} s; check --frequency")
    grid = times[0] + np.arange(n, dtype=np.int64) * step

    def spread(a: np.ndarray) -> np.ndarray:
        out = np.full((n, *a.shape[1:]), np.nan)
        out[idx] = a
        return out

    return grid, spread(values), spread(known), None if labels is None else spread(labels), step


def _fill_known(known: np.ndarray, names: list[str]) -> np.ndarray:
    """Known covariates at inserted (or empty) steps: the last known value (the first known before it)."""
    out = known.copy()
    for j in range(out.shape[1]):
        col = out[:, j]
        ok = ~np.isnan(col)
        if not ok.any():
            raise DataError(f"covariate column {names[j]!r} has no value; covariates must be known")
        idx = np.where(ok, np.arange(len(col)), 0)
        np.maximum.accumulate(idx, out=idx)
        col[:] = col[idx]
        first = np.flatnonzero(ok)[0]
        col[:first] = col[first]
    return out


def _labels(labels: np.ndarray | None, name: str | None, path: Path) -> np.ndarray | None:
    if labels is None:
        return None
    seen = labels[~np.isnan(labels)]
    if not np.isin(seen, (0.0, 1.0)).all():
        raise DataError(f"label column {name!r} of {path} must hold 0 (normal) or 1 (anomaly)")
    return np.where(np.isnan(labels), -1, labels).astype(np.int64)


def calendar_features(times: np.ndarray, step: int) -> tuple[np.ndarray, list[str]]:
    """Hour of day (when steps are shorter than a day) and day of week (shorter than a week) as sin/cos."""
    cols, names = [], []
    day = (times % DAY_NS) / DAY_NS
    if step < DAY_NS:
        cols += [np.sin(2 * np.pi * day), np.cos(2 * np.pi * day)]
        names += ["hour_sin", "hour_cos"]
    if step < WEEK_NS:
        dow = ((times // DAY_NS + 3) % 7 + day) / 7.0  # 1970-01-01 was a Thursday: Monday = 0
        cols += [np.sin(2 * np.pi * dow), np.cos(2 * np.pi * dow)]
        names += ["week_sin", "week_cos"]
    return (np.stack(cols, 1) if cols else np.zeros((len(times), 0))), names


def _with_calendar(sd: SeriesData, calendar: bool) -> SeriesData:
    if calendar and sd.clock:
        sd.calendar, sd.calendar_names = calendar_features(sd.times, sd.step)
    return sd


def extend(sd: SeriesData, n: int) -> SeriesData:
    """``sd`` with ``n`` more steps (NaN targets; known covariates must already be there)."""
    if n <= 0:
        return sd
    times = np.concatenate([sd.times, sd.times[-1] + sd.step * np.arange(1, n + 1, dtype=np.int64)])
    pad = lambda a: np.concatenate([a, np.full((n, *a.shape[1:]), np.nan)])  # noqa: E731
    out = SeriesData(times, pad(sd.values), pad(sd.known), np.zeros((len(times), 0)), sd.targets, sd.covariates,
                     [], sd.step, sd.clock, sd.time_column, None)
    return _with_calendar(out, bool(sd.calendar_names))


# -- chronological splits and windows ----------------------------------------------------------------
def periods(n: int, val_fraction: float, test_fraction: float) -> tuple[tuple[int, int], ...]:
    """(train, validation, test) step ranges [start, stop) of a series of ``n`` steps, in time order."""
    n_test = int(round(test_fraction * n))
    n_val = int(round(val_fraction * n))
    a, b = n - n_val - n_test, n - n_test
    return (0, a), (a, b), (b, n)


def window_starts(period: tuple[int, int], length: int, stride: int, what: str, advice: str) -> np.ndarray:
    """Starts of the windows of ``length`` steps inside ``period`` (none crosses its end), every ``stride``."""
    a, b = period
    if b - a < length:
        raise DataError(f"the {what} has {b - a} steps, shorter than one window of {length} ({advice})")
    return np.arange(a, b - length + 1, stride, dtype=np.int64)
