"""CSV and Parquet tables -> a table :class:`Dataset` with raw float32 features.

Every feature column must be numeric (int, float, bool) and complete (no missing, NaN or infinite
values), unless ``allow_missing``: then empty/NA/NaN cells become NaN (the mask of missing entries is
``isnan(x)``; infinite values stay an error, and so do rows with no observed value). An optional label
column becomes class indices over its sorted unique values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ..errors import DataError
from ._common import encode_labels, one_line
from .dataset import Dataset

TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def is_table_path(path: Path) -> bool:
    """Whether ``path`` has a table suffix."""
    return path.name.lower().endswith(TABLE_SUFFIXES)


def read_table(path: Path) -> pa.Table:
    """Read a CSV or Parquet file with pyarrow, turning its errors into DataError."""
    is_csv = path.name.lower().endswith((".csv", ".csv.gz"))
    try:
        if is_csv:
            import pyarrow.csv as pacsv

            # strings_can_be_null: an empty or "NA" cell in a text (label) column is missing too
            return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
        import pyarrow.parquet as pq

        return pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError, EOFError) as exc:
        kind = "CSV" if is_csv else "Parquet"
        raise DataError(one_line(f"cannot read {path} as {kind}: {exc}; check the file")) from None


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def _bad_rows_text(bad: np.ndarray) -> str:
    rows = (np.flatnonzero(bad) + 1).tolist()
    shown = ", ".join(str(r) for r in rows[:3]) + (", ..." if len(rows) > 3 else "")
    return f"{len(rows)} row{'s' if len(rows) > 1 else ''}: data row{'s' if len(rows) > 1 else ''} {shown}"


def load_table(path: Path, *, label_column: str | None = None, name: str | None = None,
               allow_missing: bool = False) -> Dataset:
    """Load a CSV/Parquet table; ``label_column`` (if given) becomes ``y`` and ``classes``; with
    ``allow_missing`` missing cells are NaN in ``x``."""
    table = read_table(path)
    names = list(table.column_names)
    if label_column is not None:
        hits = [i for i, n in enumerate(names) if n == label_column]
        if not hits:
            raise DataError(
                f"label column {label_column!r} is not in {path}; available columns: {', '.join(names) or '(none)'}"
            )
        if len(hits) > 1:
            raise DataError(f"{path} has {len(hits)} columns named {label_column!r}; rename them so the label is unique")
    if table.num_rows == 0:
        raise DataError(f"{path} has no rows; give a table with at least one data row")
    feature_idx = [i for i, n in enumerate(names) if n != label_column]
    if not feature_idx:
        raise DataError(f"{path} has no feature columns besides the label; give at least one numeric column")

    non_numeric = [
        f"{names[i]!r} ({table.column(i).type})"
        for i in feature_idx
        if not _is_numeric(table.column(i).type) and not pa.types.is_null(table.column(i).type)
    ]
    if non_numeric:
        raise DataError(
            f"{path}: non-numeric column(s) {', '.join(non_numeric)}; drop them, encode them as numbers, "
            "or pass one as the label column (--label-column NAME)"
        )

    columns: list[np.ndarray] = []
    problems: list[str] = []
    for i in feature_idx:
        col = table.column(i)
        if pa.types.is_null(col.type):
            values = np.full(table.num_rows, np.nan, dtype=np.float32)
        else:
            with np.errstate(over="ignore"):
                values = pc.fill_null(col.cast(pa.float64()), np.nan).to_numpy().astype(np.float32)
        bad = np.isinf(values) if allow_missing else ~np.isfinite(values)
        if bad.any():
            problems.append(f"{names[i]!r} ({_bad_rows_text(bad)})")
        columns.append(values)
    if problems:
        if allow_missing:
            raise DataError(f"{path}: infinite (or beyond float32) values in column(s) {'; '.join(problems)}; "
                            "fix them or leave those cells empty (missing)")
        raise DataError(
            f"{path}: missing, NaN or infinite (or beyond float32) values in column(s) "
            f"{'; '.join(problems)}; fill or drop them, or train with --missing mask to learn from incomplete rows"
        )
    x = torch.from_numpy(np.stack(columns, axis=1))
    if allow_missing:
        empty = torch.isnan(x).all(1).numpy()
        if empty.any():
            raise DataError(f"{path}: {_bad_rows_text(empty)} with every feature missing; drop those rows "
                            "(a row needs at least one observed value)")

    y = classes = None
    if label_column is not None:
        col = table.column(names.index(label_column))
        if col.null_count:
            raise DataError(
                f"label column {label_column!r} has {col.null_count} missing value(s); fill or drop those rows"
            )
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        values = col.to_numpy(zero_copy_only=False)
        if values.dtype == object:
            values = values.astype(str)
        y, classes = encode_labels(values, f"label column {label_column!r}", keep_int=False)
    return Dataset(x=x, y=y, kind="table", name=name or str(path), classes=classes, columns=[names[i] for i in feature_idx])


def _format_value(v: float) -> str:
    """Shortest text that reads back as the same float32 (imputed values are float32)."""
    return str(np.float32(v))


def completed_table_text(path: Path, columns: list[str], filled: np.ndarray, missing: np.ndarray) -> str:
    """The table at ``path`` as CSV text with the ``missing`` cells of ``columns`` replaced by ``filled``.

    ``filled`` and ``missing`` are ``[rows, len(columns)]``. Every other cell keeps its original text
    (CSV input: the very characters of the file; Parquet input: the shortest text of the stored value), so
    observed values survive bit for bit.
    """
    import csv
    import gzip
    import io

    if path.name.lower().endswith((".csv", ".csv.gz")):
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        try:
            with opener(path, "rt", newline="") as f:
                rows = [r for r in csv.reader(f) if r]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DataError(one_line(f"cannot read {path} as CSV text: {exc}")) from None
        header, body = rows[0], rows[1:]
    else:
        table = read_table(path)
        header = list(table.column_names)
        cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
        body = [["" if v is None else repr(v) if isinstance(v, float) else str(v) for v in row] for row in zip(*cols)]
    if len(body) != len(filled) or any(len(r) != len(header) for r in body):
        raise DataError(f"{path}: cannot line up the file's rows with its parsed table (ragged or blank-looking "
                        "rows); clean the file (one header line, one line per row)")
    where = [header.index(c) for c in columns]
    for i, j in zip(*np.nonzero(missing)):
        body[i][where[j]] = _format_value(filled[i, j])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(body)
    return buf.getvalue()
