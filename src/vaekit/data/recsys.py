"""Built-in interaction sources for the recommendation families (read by the ``interactions`` kind only):

- ``ml-20m``: MovieLens 20M's ``ratings.csv`` (``userId,movieId,rating,timestamp``) inside ``ml-20m.zip`` from
  files.grouplens.org, downloaded once into the cache (``$VAEKIT_CACHE`` or ``~/.cache/vaekit``, folder
  ``ml-20m``; the same cache and the same atomic, verified download as MNIST: the bytes go to a temporary file
  beside the target, are checked against the pinned SHA-256 and only then renamed into place, so the cache
  never holds a half or wrong file). Read as ``user,item,rating,timestamp``.
- ``netflix:PATH``: files in the Netflix Prize format (``combined_data_*.txt``: a ``MovieID:`` line, then
  that movie's ``CustomerID,Rating,Date`` lines); PATH is one file or a folder (its ``combined_data_*.txt``,
  else its ``*.txt``). The data have no public download (Netflix withdrew them; copies need an account), so
  nothing is downloaded. Read as ``user,item,rating,date``.

Both then go through :func:`vaekit.data.interactions.interactions_from_table` (``--min-rating``,
``--min-user-items``, repeated pairs refused), so they behave like a ``user,item,rating`` file.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ._common import one_line

#: ml-20m.zip: SHA-256 pinned in code. GroupLens publishes only an MD5 (ml-20m.zip.md5:
#: cd245b17a1ae2cc31bb14903e1204af3, 198,702,078 bytes); the SHA-256 is the one recorded by third parties
#: whose copy passed that MD5 (not re-measured here: this machine has no network).
ML20M: dict[str, Any] = {
    "file": "ml-20m.zip",
    "urls": ["https://files.grouplens.org/datasets/movielens/ml-20m.zip"],
    "sha256": "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
    "md5": "cd245b17a1ae2cc31bb14903e1204af3",
    "size": 198_702_078,
    "member": "ml-20m/ratings.csv",
    "columns": {"userId": "user", "movieId": "item", "rating": "rating", "timestamp": "timestamp"},
}
NETFLIX_PREFIX = "netflix:"


def is_recsys_source(source: str) -> bool:
    """Whether ``source`` names one of this module's sources (``ml-20m``, ``netflix:PATH``)."""
    text = str(source).strip()
    return text.lower() == "ml-20m" or text.lower().startswith(NETFLIX_PREFIX)


def load_recsys_table(source: str, cache_dir: str | os.PathLike | None = None, download: bool = True):
    """The pyarrow table (``user,item,rating,…``) of a source :func:`is_recsys_source` accepts."""
    text = str(source).strip()
    if text.lower() == "ml-20m":
        return read_ml20m(fetch_ml20m(cache_dir, download))
    return read_netflix(netflix_files(text[len(NETFLIX_PREFIX):]))


# -- MovieLens 20M --------------------------------------------------------------------------------
def fetch_ml20m(cache_dir: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The verified ``ml-20m.zip`` in the cache, downloaded first if it is missing or does not match."""
    from .builtin import default_cache_dir, download_file, sha256_file

    folder = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / "ml-20m"
    dest = folder / ML20M["file"]
    if dest.is_file():
        got = sha256_file(dest)
        if got == ML20M["sha256"]:
            return dest
        if not download:
            raise DataError(f"cached {dest} does not match its checksum (expected sha256 {ML20M['sha256']}, got "
                            f"{got}); delete it or allow downloads")
    elif not download:
        raise DataError(f"ml-20m is not in the cache ({folder}) and downloads are off; allow downloads or put "
                        f"{ML20M['file']} there")
    return download_file(list(ML20M["urls"]), dest, ML20M["sha256"])


def read_ml20m(path: Path):
    """``ratings.csv`` of an ``ml-20m.zip`` as a table with columns ``user,item,rating,timestamp``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        with zipfile.ZipFile(path) as zf, zf.open(ML20M["member"]) as f:
            table = pacsv.read_csv(f)
    except KeyError:
        raise DataError(f"{path} has no {ML20M['member']}; delete it and load ml-20m again") from None
    except (zipfile.BadZipFile, OSError, pa.ArrowException) as exc:
        raise DataError(one_line(f"cannot read {ML20M['member']} in {path} ({exc}); delete it and load ml-20m "
                                 "again")) from None
    names = ML20M["columns"]
    missing = [c for c in names if c not in table.column_names]
    if missing:
        raise DataError(f"{ML20M['member']} in {path} has no column {missing[0]!r}; delete it and load ml-20m again")
    return table.select(list(names)).rename_columns(list(names.values()))


# -- Netflix Prize format ---------------------------------------------------------------------------
def netflix_files(spec: str) -> list[Path]:
    """The files ``netflix:PATH`` names: PATH itself, or a folder's ``combined_data_*.txt`` (else ``*.txt``)."""
    path = Path(spec.strip()).expanduser()
    if not spec.strip():
        raise DataError("netflix: needs a path, e.g. --data netflix:combined_data_1.txt or netflix:FOLDER")
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(path.glob("combined_data_*.txt")) or sorted(path.glob("*.txt"))
        if not files:
            raise DataError(f"{path} holds no combined_data_*.txt (or .txt) file in the Netflix Prize format")
        return files
    raise DataError(f"no such file or folder: {path} (netflix:PATH names Netflix Prize format files)")


def read_netflix(paths: list[Path]):
    """Netflix Prize files as one table ``user,item,rating,date`` (vectorized: pyarrow reads the lines, numpy
    carries each ``MovieID:`` down to its rating lines)."""
    import pyarrow as pa

    parts = [_netflix_table(p) for p in paths]
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def _netflix_table(path: Path):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    try:
        lines = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=["line"]),
                               parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False),
                               convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(one_line(f"cannot read {path} as a Netflix Prize file ({exc}); check the file")) from None
    line = pc.utf8_trim_whitespace(lines.column("line").combine_chunks())
    if len(line) == 0:
        raise DataError(f"{path} is empty; a Netflix Prize file starts with a MovieID: line")
    header = pc.ends_with(line, ":").to_numpy(zero_copy_only=False)
    if not header[0]:
        raise DataError(f"{path} line 1 is {line[0].as_py()!r}, not a 'MovieID:' line; is it a Netflix Prize "
                        "combined_data file?")
    movies = pc.utf8_slice_codeunits(line.filter(pa.array(header)), 0, -1)
    owner = np.cumsum(header)[~header] - 1  # each rating line's movie (the last header above it)
    rows = line.filter(pa.array(~header))
    fields = pc.split_pattern(rows, ",")
    count = pc.list_value_length(fields).to_numpy(zero_copy_only=False)
    if (count != 3).any():
        bad = int(np.flatnonzero(~header)[np.argmax(count != 3)])
        raise DataError(f"{path} line {bad + 1} is {line[bad].as_py()!r}, not 'CustomerID,Rating,Date'; fix or "
                        "drop it")
    try:
        rating = pc.cast(pc.list_element(fields, 1), pa.float64())
    except pa.ArrowInvalid:
        raise DataError(f"{path} has a rating that is not a number; check its CustomerID,Rating,Date lines") \
            from None
    return pa.table({"user": pc.list_element(fields, 0), "item": movies.take(pa.array(owner)),
                     "rating": rating, "date": pc.list_element(fields, 2)})
