"""``load_source``: one entry point from a source string to a :class:`Dataset`.

A source is a built-in dataset name, a folder of images, a ``.npy``/``.npz`` array file, or a
``.csv``/``.parquet`` table. Every bad input becomes a one-line :class:`DataError`.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ._common import check_memory, encode_labels, format_bytes, one_line, resize_images
from .builtin import BUILTIN_NAMES
from .dataset import Dataset
from .kinds.array import ARRAY_SUFFIXES
from .tables import TABLE_SUFFIXES, check_unique_columns, is_table_path

EXPECTED = f"expected a folder of images, .npy/.npz, .csv/.parquet, or one of: {', '.join(BUILTIN_NAMES)}"


def load_source(
    source: str,
    *,
    image_size: int | None = None,
    label_column: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    allow_missing: bool = False,
    categories: dict[str, list[str]] | None = None,
    kind: str | None = None,
    **kind_options: object,
) -> Dataset:
    """Load ``source`` (a built-in name or a path) into memory as a :class:`Dataset`.

    ``allow_missing`` (tables only) keeps missing cells as NaN instead of refusing the table; ``categories``
    (tables only: a trained run's categorical columns) fixes their one-hot blocks. ``kind`` names the data
    kind that loads the source instead of the first that claims it (``"interactions"``: a CSV/Parquet of
    user,item rows is also a table), with its own ``kind_options`` (e.g. ``user_column``)."""
    if not isinstance(source, (str, os.PathLike)) or not os.fspath(source).strip():
        raise DataError(f"data source must be a non-empty name or path; got {source!r} ({EXPECTED})")
    text = os.fspath(source)
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise DataError(f"image_size must be a positive integer; got {image_size!r}")

    key = text.strip().lower()
    if allow_missing and not is_table_path(Path(text)):
        raise DataError(f"--missing mask applies to tables (.csv/.parquet) only, not to {text}; drop it "
                        "(images and arrays must be complete)")
    options = dict(image_size=image_size, label_column=label_column, cache_dir=cache_dir, download=download,
                   allow_missing=allow_missing, categories=categories, **kind_options)
    if kind is not None:
        from .kinds import KINDS

        if kind not in KINDS:
            raise DataError(f"unknown data kind {kind!r}; expected one of {', '.join(KINDS)}")
        path = Path(text).expanduser()
        if KINDS[kind].named(text):  # a built-in source of that kind (e.g. ml-20m): the name wins
            return KINDS[kind].load(text, None, **options)
        if not path.exists():
            raise DataError(f"no such file or folder: {text} ({kind} data)")
        return KINDS[kind].load(text, path, **options)
    from .recsys import is_recsys_source

    if is_recsys_source(text):
        raise DataError(f"{text} is interactions data for the recommendation families; train it with --family "
                        "mult-vae (or mult-dae, recvae)")
    if isinstance(source, str) and key in BUILTIN_NAMES:
        if label_column is not None:
            raise DataError(f"label_column applies to tables (.csv/.parquet) only; {key} has its own labels")
        return _claimed(text, None, options)

    path = Path(text).expanduser()
    if not path.exists():
        looks_like_path = any(s in text for s in ("/", "\\", os.sep)) or text.startswith((".", "~")) or bool(path.suffix)
        if looks_like_path:
            raise DataError(f"no such file or folder: {text} ({EXPECTED})")
        raise DataError(f"unknown dataset {text!r}: not a built-in dataset nor an existing path ({EXPECTED})")

    if label_column is not None and not (path.is_file() and is_table_path(path)):
        raise DataError(f"label_column applies to tables (.csv/.parquet) only, not to {text}; drop it")
    if is_table_path(path) and image_size is not None:
        raise DataError(f"image_size applies to images only, not to the table {text}; drop it")
    return _claimed(text, path, options)


def _claimed(text: str, path: Path | None, options: dict) -> Dataset:
    """Load with the first data kind that claims the source (see :mod:`vaekit.data.kinds`)."""
    from .kinds import KINDS

    for kind in KINDS.values():
        if kind.claims(text, path):
            return kind.load(text, path, **options)
    accepted = ", ".join(ARRAY_SUFFIXES + TABLE_SUFFIXES)
    raise DataError(f"unsupported file type {path.suffix or '(no suffix)'!r} for {text}; accepted: {accepted}, "
                    "or a folder of images")


def _pickled(what: str) -> str:
    return f"{what} holds Python objects (an object array), which vaekit never unpickles; save a numeric array"


def _check_npy_header(f, size: int, what: str, memory: bool = True) -> None:
    """Read the ``.npy`` header at the start of ``f`` (a file of ``size`` bytes) and refuse, before anything
    is allocated, an object array, a header whose shape needs more bytes than the file holds (a header
    claiming terabytes escaped as a MemoryError) and an array beyond the memory available."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            return  # format 3.0 (structured arrays with non-ASCII names): np.load decides
    except (ValueError, EOFError, OSError) as exc:
        raise DataError(one_line(f"{what} is not a NumPy array ({exc}); save it with np.save/np.savez")) from None
    if dtype.hasobject:
        raise DataError(_pickled(what))
    count = 1
    for n in shape:
        count *= int(n)
    need, have = count * dtype.itemsize, size - f.tell()
    if need > have:
        raise DataError(f"{what} is truncated or damaged: its header says shape {list(shape)} of {dtype} "
                        f"({format_bytes(need)}) but the file holds {format_bytes(max(have, 0))}; save the array again")
    if memory:  # not for a memory-mapped read (vaekit.data.outofcore)
        check_memory(need + count * 4, f"{what} (shape {list(shape)}, {dtype}, loaded as float32)",
                     "load a smaller subset of it, or read it memory-mapped (--mmap, from a .npy or a folder of shards)")


def _check_npz_members(path: Path) -> None:
    """Check the headers of the arrays vaekit reads from an ``.npz`` (``x``, ``y``, ``y_names``)."""
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        for key in ("x", "y", "y_names"):
            member = f"{key}.npy" if f"{key}.npy" in names else key if key in names else None
            if member is not None:
                info = zf.getinfo(member)
                with zf.open(info) as m:
                    _check_npy_header(m, info.file_size, f"{key!r} in {path}")


def _load_npy(path: Path) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    pickled = _pickled(str(path))
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
            if magic == b"\x93NUMPY":
                f.seek(0)
                _check_npy_header(f, os.fstat(f.fileno()).st_size, str(path))
    except OSError as exc:
        raise DataError(one_line(f"cannot read {path}: {exc}")) from None
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise DataError(f"cannot read {path}: not a NumPy .npy/.npz file; save it with np.save or np.savez")
    try:
        if magic.startswith(b"PK"):
            _check_npz_members(path)
        obj = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        if "pickle" in str(exc).lower():
            raise DataError(pickled) from None
        raise DataError(one_line(f"cannot read {path} as a NumPy file: {exc}")) from None
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise DataError(one_line(f"cannot read {path} as a NumPy file: {exc}")) from None
    if isinstance(obj, np.ndarray):
        return obj, None, None
    try:
        with obj as npz:
            found = list(npz.files)
            if "x" not in found:
                raise DataError(
                    f"{path} has no array named 'x' (found: {', '.join(found) or 'none'}); "
                    "save it with np.savez(path, x=..., y=...)"
                )
            arrays = {k: npz[k] for k in ("x", "y", "y_names") if k in found}
            for k, v in arrays.items():
                if not isinstance(v, np.ndarray):  # a member that is not a .npy comes back as raw bytes
                    raise DataError(f"{k!r} in {path} is not a NumPy array; save it with np.savez(path, x=..., y=...)")
            names = arrays.get("y_names")
            if names is not None and names.dtype.kind not in "US":
                raise DataError(f"y_names in {path} must be an array of strings, one name per column of y")
            return arrays["x"], arrays.get("y"), (None if names is None else [str(v) for v in names.reshape(-1).tolist()])
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        if "pickle" in str(exc).lower():
            raise DataError(pickled) from None
        raise DataError(one_line(f"cannot read {path}: {exc}")) from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, NotImplementedError) as exc:
        raise DataError(one_line(f"cannot read {path}: {exc}")) from None


def _is_attributes(y: np.ndarray) -> bool:
    """A ``y`` of numeric attributes rather than class labels: 2-D with several columns, or floats that are
    not all whole numbers."""
    if y.dtype.kind not in "biuf":
        return False
    if y.ndim == 2 and y.shape[1] > 1:
        return True
    return y.dtype.kind == "f" and bool((np.isfinite(y) & (y != np.round(y))).any())


def _to_nchw(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None, :, :]
    nchw = x.shape[1] in (1, 3)
    nhwc = x.shape[3] in (1, 3)
    if nchw:
        return x
    if nhwc:
        return np.transpose(x, (0, 3, 1, 2))
    raise DataError(
        f"4-D x in {path} must be [N, C, H, W] or [N, H, W, C] with C = 1 or 3; got shape {list(x.shape)}"
    )


def _check_x(x: np.ndarray, path: Path, finite: bool = True) -> None:
    """Refuse an ``x`` that is not numeric, has the wrong number of axes, is empty or holds NaN/inf (unless
    ``finite`` is False: the streaming reader checks that chunk by chunk)."""
    if x.dtype.kind not in "biuf":
        raise DataError(f"x in {path} has dtype {x.dtype}; save a numeric (int, float or bool) array")
    if x.ndim not in (2, 3, 4):
        raise DataError(
            f"x in {path} has shape {list(x.shape)}; expected [N, D], [N, H, W], [N, C, H, W] or [N, H, W, C]"
        )
    if x.shape[0] == 0 or x.size == 0:
        raise DataError(f"x in {path} is empty (shape {list(x.shape)}); give at least one example")
    if finite and x.dtype.kind == "f":
        bad = int((~np.isfinite(x)).sum())
        if bad:
            raise DataError(f"x in {path} has {bad} NaN or infinite value(s); fill or drop them")


def _attributes_of(y_raw: np.ndarray, y_names: list[str] | None, n: int,
                   path: Path) -> tuple[torch.Tensor, list[str] | None]:
    """A ``y`` of numeric attributes as a float32 ``[N, A]`` tensor, checked, and its column names."""
    if y_raw.shape[0] != n:
        raise DataError(f"y in {path} has {y_raw.shape[0]} rows but x has {n} examples; give one row "
                        "per example")
    a = y_raw.reshape(len(y_raw), -1).astype(np.float32)
    if not np.isfinite(a).all():
        raise DataError(f"y in {path} has {int((~np.isfinite(a)).sum())} NaN or infinite value(s); fill or "
                        "drop those rows")
    if y_names is not None and len(y_names) != a.shape[1]:
        raise DataError(f"y_names in {path} has {len(y_names)} names for {a.shape[1]} columns of y")
    if y_names is not None:
        check_unique_columns(y_names, f"y_names in {path}")
    if y_names is None and a.shape[1] == 1:
        y_names = ["y"]
    return torch.from_numpy(a), y_names


def _y_of(y_raw: np.ndarray | None, y_names: list[str] | None, n: int, path: Path
          ) -> tuple[torch.Tensor | None, list[str] | None, torch.Tensor | None, list[str] | None]:
    """The ``y`` of an array file as (class labels, class names, attributes, attribute names): numeric
    attributes when :func:`_is_attributes` says so, else one class label per example."""
    y = classes = attributes = None
    if y_raw is not None and _is_attributes(y_raw):
        attributes, y_names = _attributes_of(y_raw, y_names, n, path)
    elif y_raw is not None:
        y_flat = y_raw[:, 0] if y_raw.ndim == 2 and y_raw.shape[1] == 1 else y_raw
        if y_flat.ndim != 1 or len(y_flat) != n:
            raise DataError(
                f"y in {path} has shape {list(y_raw.shape)} but x has {n} examples; give one label per example"
            )
        y, classes = encode_labels(y_flat, f"y in {path}", keep_int=True)
    return y, classes, attributes, (y_names if attributes is not None else None)


def _image_tensor(x: np.ndarray, path: Path, image_size: int | None) -> torch.Tensor:
    """A 3-D/4-D image array as float32 NCHW in [0, 1] (uint8 divided by 255), resized when asked."""
    x = _to_nchw(x, path)
    if x.dtype == np.uint8:
        img = x.astype(np.float32) / 255.0
    else:
        img = x.astype(np.float32)
        lo, hi = float(img.min()), float(img.max())
        if lo < 0.0 or hi > 1.0:
            raise DataError(
                f"image array x in {path} has values in [{lo:g}, {hi:g}]; scale it to [0, 1] (or save uint8 "
                "pixels 0-255), or pass a 2-D [N, D] array to model raw values"
            )
    xt = torch.from_numpy(np.ascontiguousarray(img))
    if image_size is not None:
        xt = resize_images(xt, image_size)
    return xt


def load_array_file(path: Path, *, image_size: int | None = None, name: str | None = None) -> Dataset:
    """Load ``.npy`` (x only) or ``.npz`` (``x`` and optional ``y``).

    2-D ``[N, D]`` gives kind "array" (values kept); 3-D ``[N, H, W]`` and 4-D NCHW/NHWC with
    1 or 3 channels give images in [0, 1] (uint8 is divided by 255).
    """
    x, y_raw, y_names = _load_npy(path)
    _check_x(x, path)
    y, classes, attributes, attribute_names = _y_of(y_raw, y_names, len(x), path)
    if x.ndim == 2:
        if image_size is not None:
            raise DataError(f"image_size applies to images only; x in {path} is a 2-D [N, D] array")
        xt = torch.from_numpy(x.astype(np.float32))
        if not bool(torch.isfinite(xt).all()):
            raise DataError(f"x in {path} has values too large for float32; rescale them")
        return Dataset(x=xt, y=y, kind="array", name=name or str(path), classes=classes, attributes=attributes,
                       attribute_names=attribute_names)
    return Dataset(x=_image_tensor(x, path, image_size), y=y, kind="image", name=name or str(path),
                   classes=classes, attributes=attributes, attribute_names=attribute_names)


def dataset_from_array(x: object, *, kind: str = "array", columns: list[str] | None = None,
                       name: str = "in-memory array", holdout_test: bool = True) -> Dataset:
    """An in-memory ``[N, D]`` numeric array as a :class:`Dataset` (for training without a file).

    ``kind`` is "array" (values used as they are) or "table" (training standardizes the columns).
    With ``holdout_test=False`` the dataset gets an empty official test split, so
    :func:`~vaekit.data.split_dataset` puts every row into training and validation.
    """
    from .kinds import KINDS

    accepted = [k.name for k in KINDS.values() if k.from_matrix]
    if kind not in accepted:
        raise DataError(f"kind must be one of {', '.join(map(repr, accepted))} for an in-memory array, got {kind!r}")
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise DataError(f"the data has dtype {arr.dtype}; give a numeric (int, float or bool) array")
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"the data must be a non-empty 2-D [N, D] array, got shape {list(arr.shape)}")
    xt = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if not bool(torch.isfinite(xt).all()):
        raise DataError("the data has NaN or infinite values (or values beyond float32); fill or drop them")
    if columns is not None and len(columns) != arr.shape[1]:
        raise DataError(f"{len(columns)} column names for {arr.shape[1]} columns; give one name per column")
    test = None if holdout_test else xt[:0].clone()
    return Dataset(x=xt, kind=kind, name=name, columns=list(columns) if columns is not None else None, test_x=test)
