"""Reading table files as text: CSV and Parquet through pyarrow, the delimiter of a CSV, UTF-8 checks and
numbers written with decimal commas. Split out of :mod:`vaekit.data.tables` (which re-exports its public
names), so that module keeps the features, the schema and the completion text.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import IO

from ..errors import DataError
from ._common import one_line


class OnFirstUse:
    """A module imported on first attribute access: pyarrow costs 25-50 ms of every command's start-up,
    and only commands that read a table need it (bench/startup.py)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


pa = OnFirstUse("pyarrow")
pc = OnFirstUse("pyarrow.compute")


def read_table(path: Path) -> pa.Table:
    """Read a CSV or Parquet file with pyarrow, turning its errors into DataError.

    A CSV's delimiter is detected (:func:`sniff_delimiter`: comma, semicolon, tab or bar); text that is not
    UTF-8 and repeated column names are refused in one line."""
    is_csv = path.name.lower().endswith((".csv", ".csv.gz"))
    try:
        if is_csv:
            import pyarrow.csv as pacsv

            # strings_can_be_null: an empty or "NA" cell in a text (label) column is missing too
            table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=sniff_delimiter(path)),
                                   convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
            if any(pa.types.is_binary(t) or pa.types.is_large_binary(t) for t in table.schema.types):
                raise DataError(not_utf8_message(path))  # pyarrow reads undecodable text as binary
        else:
            import pyarrow.parquet as pq

            check_unique_columns(pq.read_schema(path).names, path)  # read_table fails obscurely on repeats
            table = pq.read_table(path)
        check_unique_columns(table.column_names, path)  # (names are decoded here: a UnicodeDecodeError)
    except UnicodeDecodeError:
        raise DataError(not_utf8_message(path)) from None
    except (pa.ArrowException, OSError, ValueError, EOFError) as exc:
        if isinstance(exc, DataError):
            raise
        kind = "CSV" if is_csv else "Parquet"
        raise DataError(one_line(f"cannot read {path} as {kind}: {exc}; check the file")) from None
    return table


def check_unique_columns(names: list[str], path: Path | str) -> None:
    """A one-line DataError naming the first repeated column name (a repeated header silently mixed up
    columns: impute wrote into the wrong one, --condition-columns took one of two)."""
    seen: set[str] = set()
    for n in names:
        if n in seen:
            count = list(names).count(n)
            raise DataError(f"{path} has {count} columns named {n!r}; rename them so every column name is "
                            "unique")
        seen.add(n)


#: delimiters a CSV may use, in order of preference (the comma first: it keeps what older versions read)
DELIMITERS = (",", ";", "\t", "|")


def open_text(path: Path, errors: str = "strict") -> IO[str]:
    """``path`` (plain or .gz) opened as UTF-8 text (a byte-order mark dropped), newlines as in the file."""
    import gzip

    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", errors=errors, newline="")
    return open(path, encoding="utf-8-sig", errors=errors, newline="")


def sniff_delimiter(path: Path) -> str:
    """The delimiter of a CSV file: the comma when it splits the first records (up to 20) into the same
    number (> 1) of fields, else the one of ``; TAB |`` that does with the most fields, else the comma
    (a one-column table). Semicolon files (European spreadsheets) used to load as one text column."""
    import csv
    import io
    import zlib

    try:
        with open_text(path, errors="replace") as f:
            head = f.read(1 << 16)
            truncated = bool(f.read(1))
    except (OSError, EOFError, zlib.error):
        return ","  # pyarrow reports the problem
    best, best_fields = ",", 1
    for d in DELIMITERS:
        records = [r for r in csv.reader(io.StringIO(head), delimiter=d) if r]
        if truncated and len(records) > 1:
            records = records[:-1]  # the last record may be cut off
        counts = {len(r) for r in records[:20]}
        if len(counts) == 1 and (n := counts.pop()) > 1:
            if d == ",":
                return d
            if n > best_fields:
                best, best_fields = d, n
    return best


def not_utf8_message(path: Path) -> str:
    """Where the first byte that is not UTF-8 sits in ``path``, as an error message with the fix."""
    import codecs
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    where = "somewhere"
    try:
        with opener(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    bad = chunk[exc.start:exc.start + 1]
                    line += chunk[:exc.start].count(b"\n")
                    where = f"byte 0x{bad.hex()} on line {line}"
                    break
                line += chunk.count(b"\n")
    except OSError:
        pass
    return (f"{path} is not UTF-8 text ({where}; probably Latin-1 or Windows-1252); save it as UTF-8, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > utf8.csv`")


_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d*,\d+\s*$")


def refuse_decimal_commas(col: pa.ChunkedArray, name: str, path: Path) -> None:
    """In a CSV delimited by other than commas, refuse a text column whose every value is a number written
    with a decimal comma ("1,5"): it would silently become a categorical column."""
    if not path.name.lower().endswith((".csv", ".csv.gz")) or sniff_delimiter(path) == ",":
        return
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    values = [v for v in col.to_pylist() if v]
    if values and all(_DECIMAL_COMMA.match(v) for v in values):
        raise DataError(f"{path}: column {name!r} holds numbers written with a decimal comma ({values[0]!r}), "
                        "which would be read as text categories; write them with a decimal point (1.5), e.g. "
                        "by exporting the table with a comma delimiter")
