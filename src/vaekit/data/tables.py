"""CSV and Parquet tables -> a table :class:`Dataset` with raw float32 features.

Numeric columns (int, float, bool, decimal) are one feature each. Text columns (string or dictionary) are
categorical: one one-hot block each, over the column's categories in sorted order (at most
:data:`MAX_CATEGORIES`; more looks like an ID column and is an error). A column's kind is decided by its
type alone: an integer column with few values (0/1/2, a code) stays numeric; write it as text to make it
categorical. The column schema (:func:`column_schema` entries: name, kind, categories, feature slice) is
kept on the Dataset and saved with a run, so a trained run reads new tables with the same categories
(``categories``); a value unseen in training is an error naming the column and the value.

Every feature column must be complete (no missing, NaN or infinite values), unless ``allow_missing``: then empty/NA/NaN cells become NaN (a missing categorical cell is NaN
across its block; the mask of missing entries is ``isnan(x)``; infinite values stay an error, and so do rows with no observed value). An optional label
column becomes class indices over its sorted unique values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import DataError
from ._common import encode_labels, one_line
from .dataset import Dataset
# reading the files lives in table_io; DELIMITERS, check_unique_columns, read_table and sniff_delimiter stay
# importable from here
from .table_io import (DELIMITERS, check_unique_columns, not_utf8_message, open_text, pa, pc,  # noqa: F401
                       read_table, refuse_decimal_commas, sniff_delimiter)

TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
#: more distinct text values than this in one column: most likely an ID or free text, not a category
MAX_CATEGORIES = 100


def is_table_path(path: Path) -> bool:
    """Whether ``path`` has a table suffix."""
    return path.name.lower().endswith(TABLE_SUFFIXES)


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def _bad_rows_text(bad: np.ndarray) -> str:
    rows = (np.flatnonzero(bad) + 1).tolist()
    shown = ", ".join(str(r) for r in rows[:3]) + (", ..." if len(rows) > 3 else "")
    return f"{len(rows)} row{'s' if len(rows) > 1 else ''}: data row{'s' if len(rows) > 1 else ''} {shown}"


def load_table(path: Path, *, label_column: str | None = None, name: str | None = None,
               allow_missing: bool = False, categories: dict[str, list[str]] | None = None) -> Dataset:
    """Load a CSV/Parquet table; ``label_column`` (if given) becomes ``y`` and ``classes``; with
    ``allow_missing`` missing cells are NaN in ``x``. ``categories`` (column name -> categories, from a
    trained run's schema) fixes those columns' one-hot blocks; a value outside them is an error."""
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
    x, feature_names, schema = _table_features(table, feature_idx, path, allow_missing, categories or {})
    y = classes = None
    if label_column is not None:
        y, classes = _table_labels(table.column(names.index(label_column)), label_column)
    return Dataset(x=x, y=y, kind="table", name=name or str(path), classes=classes, columns=feature_names,
                   schema=schema)


def _table_features(table: pa.Table, feature_idx: list[int], path: Path, allow_missing: bool,
                    known: dict[str, list[str]]) -> tuple[torch.Tensor, list[str], list[dict]]:
    """The features ``x`` ``[N, D]`` of the columns ``feature_idx``, their names and the column schema: one
    feature per numeric column, one one-hot block per text column (or column in ``known``). Bad cells of
    every column are reported together in one error."""
    names = list(table.column_names)
    columns: list[np.ndarray] = []
    schema: list[dict] = []
    feature_names: list[str] = []
    problems: list[str] = []
    start = 0
    for i in feature_idx:
        col, name_i = table.column(i), names[i]
        if name_i in known or _is_text(col.type):
            if name_i not in known:
                refuse_decimal_commas(col, name_i, path)
            values, cats = _categorical_block(col, name_i, known.get(name_i), path)
            feature_names += [f"{name_i}={c}" for c in cats]
            missing_rows = np.isnan(values[:, 0])
            if missing_rows.any() and not allow_missing:
                problems.append(f"{name_i!r} ({_bad_rows_text(missing_rows)})")
            schema.append({"name": name_i, "kind": "categorical", "categories": cats,
                           "start": start, "stop": start + len(cats)})
            columns.extend(values.T)
            start += len(cats)
            continue
        values = _numeric_column(col, name_i, path, table.num_rows)
        bad = np.isinf(values) if allow_missing else ~np.isfinite(values)
        if bad.any():
            problems.append(f"{name_i!r} ({_bad_rows_text(bad)})")
        columns.append(values)
        feature_names.append(name_i)
        schema.append({"name": name_i, "kind": "numeric", "categories": None, "start": start, "stop": start + 1})
        start += 1
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
    return x, feature_names, schema


def _numeric_column(col: pa.ChunkedArray, name: str, path: Path, n_rows: int) -> np.ndarray:
    """A numeric (or all-null) column as float32 ``[N]``, missing cells NaN; other types are refused."""
    if not _is_numeric(col.type) and not pa.types.is_null(col.type):
        raise DataError(f"{path}: column {name!r} has type {col.type}, neither numbers nor text; drop it, "
                        "encode it as numbers or text, or pass it as the label column (--label-column NAME)")
    if pa.types.is_null(col.type):
        return np.full(n_rows, np.nan, dtype=np.float32)
    with np.errstate(over="ignore"):
        return pc.fill_null(col.cast(pa.float64()), np.nan).to_numpy().astype(np.float32)


def _table_labels(col: pa.ChunkedArray, label_column: str) -> tuple[torch.Tensor, list[str]]:
    """Class indices and sorted class names of the label column; missing or continuous labels are refused."""
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
    _refuse_continuous_labels(values, len(classes), label_column)
    return y, classes


def _refuse_continuous_labels(values: np.ndarray, k: int, name: str) -> None:
    """Refuse a label column that holds a continuous quantity: more than half of the rows (and more than
    20) distinct values, or more than :data:`MAX_CATEGORIES` distinct fractional numbers. Such a column
    used to become one class per row."""
    n = len(values)
    fractional = values.dtype.kind == "f" and bool((values != np.round(values)).any())
    if k > 20 and (2 * k > n or (fractional and k > MAX_CATEGORIES)):
        raise DataError(f"label column {name!r} has {k} distinct values in {n} rows; a label column must be "
                        "categorical (a few classes, each on many rows); use --condition-columns for a "
                        "continuous attribute, or drop --label-column")


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t)


def _categorical_block(col: pa.ChunkedArray, name: str, fixed: list[str] | None,
                       path: Path) -> tuple[np.ndarray, list[str]]:
    """One-hot ``[N, K]`` float32 (NaN rows where the cell is missing) and the K categories of a column.

    ``fixed`` (a trained run's categories) is used as given; else the sorted distinct values."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not _is_text(col.type):  # numbers in a column that was text in training: compare as text
        col = col.cast(pa.string())
    raw = col.to_pylist()
    present = sorted({v for v in raw if v is not None and v != ""})
    if fixed is None:
        if len(present) > MAX_CATEGORIES:
            raise DataError(f"{path}: text column {name!r} has {len(present)} distinct values (more than "
                            f"{MAX_CATEGORIES}), which looks like an ID or free text, not a category; drop it")
        cats = present
    else:
        cats = list(fixed)
        unseen = [v for v in present if v not in set(cats)]
        if unseen:
            raise DataError(f"{path}: column {name!r} has the value {unseen[0]!r}"
                            f"{f' (and {len(unseen) - 1} more)' if len(unseen) > 1 else ''}, unseen in "
                            f"training (categories: {', '.join(cats)}); map it to one of those or leave the "
                            "cell empty (missing)")
    if not cats:
        raise DataError(f"{path}: text column {name!r} has no values; drop it")
    index = {c: k for k, c in enumerate(cats)}
    out = np.zeros((len(raw), len(cats)), dtype=np.float32)
    for r, v in enumerate(raw):
        if v is None or v == "":
            out[r] = np.nan
        else:
            out[r, index[v]] = 1.0
    return out, cats


def categorical_features(schema: list[dict] | None, width: int) -> torch.Tensor:
    """Bool ``[width]``: which features belong to one-hot blocks of ``schema`` (all False without one)."""
    flags = torch.zeros(width, dtype=torch.bool)
    for col in schema or []:
        if col["kind"] == "categorical":
            flags[col["start"]: col["stop"]] = True
    return flags


def has_categorical(schema: list[dict] | None) -> bool:
    """Whether ``schema`` has a categorical column (a mixed-type table)."""
    return any(c["kind"] == "categorical" for c in schema or [])


def schema_categories(schema: list[dict] | None) -> dict[str, list[str]]:
    """Column name -> categories of the categorical columns of ``schema``."""
    return {c["name"]: list(c["categories"]) for c in schema or [] if c["kind"] == "categorical"}


def table_cells(schema: list[dict], values: np.ndarray, fmt: Callable[[float], str] | None = None) -> np.ndarray:
    """Text cells ``[rows, columns of schema]`` of feature rows ``values`` ``[rows, features]`` (data units):
    numeric features through ``fmt`` (default: shortest float32 text), each categorical block as the name of
    its most probable category (argmax; a one-hot draw gives the drawn category). All-NaN blocks give ""."""
    fmt = fmt or _format_value
    values = np.asarray(values, dtype=np.float64)
    out = np.empty((len(values), len(schema)), dtype=object)
    for j, col in enumerate(schema):
        block = values[:, col["start"]: col["stop"]]
        if col["kind"] == "numeric":
            out[:, j] = ["" if np.isnan(v) else fmt(v) for v in block[:, 0]]
        else:
            cats = col["categories"]
            best = np.argmax(np.nan_to_num(block, nan=-np.inf), axis=1)
            empty = np.isnan(block).all(1)
            out[:, j] = ["" if e else cats[k] for k, e in zip(best, empty)]
    return out


def missing_cells(schema: list[dict], missing: np.ndarray) -> np.ndarray:
    """Bool ``[rows, columns of schema]``: a cell is missing when any of its features is."""
    return np.stack([missing[:, c["start"]: c["stop"]].any(1) for c in schema], axis=1)



def _format_value(v: float) -> str:
    """Shortest text that reads back as the same float32 (imputed values are float32)."""
    return str(np.float32(v))


def completed_table_text(path: Path, columns: list[str], filled: np.ndarray, missing: np.ndarray) -> str:
    """The table at ``path`` as CSV text with the ``missing`` cells of ``columns`` replaced by ``filled``.

    ``filled`` and ``missing`` are ``[rows, len(columns)]``; ``filled`` holds numbers or ready text
    (category names, see :func:`table_cells`). Every other cell keeps its original text
    (CSV input: the very characters of the file; Parquet input: the shortest text of the stored value), so
    observed values survive bit for bit.
    """
    import csv
    import io

    delimiter = ","
    if path.name.lower().endswith((".csv", ".csv.gz")):
        delimiter = sniff_delimiter(path)
        try:
            with open_text(path) as f:
                rows = [r for r in csv.reader(f, delimiter=delimiter) if r]
        except UnicodeDecodeError:
            raise DataError(not_utf8_message(path)) from None
        except (OSError, EOFError, csv.Error) as exc:
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
    check_unique_columns(header, path)
    where = [header.index(c) for c in columns]
    for i, j in zip(*np.nonzero(missing)):
        v = filled[i, j]
        body[i][where[j]] = v if isinstance(v, str) else _format_value(v)
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    w.writerow(header)
    w.writerows(body)
    return buf.getvalue()
