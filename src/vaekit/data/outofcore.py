"""Data larger than memory (issue 20): ``.npy`` files and folders of ``.npy``/``.npz`` shards streamed once, in
chunks, into a *split-ordered* memory-mapped cache, so each split is a contiguous view of one file on disk and
a batch ``x[idx]`` reads only its rows.

Streaming converts rows exactly as the in-memory loader does (:func:`~vaekit.data.sources.load_array_file`:
float32, uint8 images / 255, NHWC → NCHW, the same one-line refusals), hashes them into the same content
fingerprint as :meth:`Dataset.fingerprint`, and writes row ``perm[j]`` at position ``j`` (``perm`` the seeded
permutation of :func:`~vaekit.data.dataset.split_dataset`): the validation rows first, then test, then train
(through :class:`_Buckets`, an external shuffle with sequential I/O only). :class:`SplitOrder` tells ``split_dataset`` where each original row lies, so the splits it returns are views
(no copy) with the same rows in the same order as in memory: training is unchanged. Folders of images go through
the same writer (:func:`write_split_ordered`), decoded a chunk at a time (:mod:`vaekit.data.outofcore_images`).

The cache lives in ``<cache dir>/outofcore/<key>.npy`` (+ ``.json``), ``key`` hashing the source files'
names, sizes and modification times, ``--image-size``, the seed and the split fractions: a changed file makes
a new cache. It is written to a temporary name and renamed (atomic). The map is advised ``MADV_RANDOM``:
batches fault their rows without the kernel's readaround; sequential passes over a split read ahead in large
requests instead (:mod:`vaekit.data.mapped_reads`, which also re-opens a run's cache for its commands).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..errors import DataError
from ._common import format_bytes, one_line
from .dataset import Dataset

CHUNK_BYTES = 32 << 20  # rows converted, checked and hashed at a time (of float32 output)
CACHE_VERSION = 1


@dataclass
class SplitOrder:
    """Where each original row of a split-ordered ``Dataset.x`` lies: ``position[i]`` is the row of ``x``
    holding original example ``i`` (``y`` and attributes stay in the original order)."""

    position: torch.Tensor  # int64 [N]
    cache: str | None = None  # the cache file (recorded in config.json: the run's commands re-open it)

    def take(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``x``'s rows for original examples ``idx``: a view when they lie contiguously in order (the split the
        cache was written for), else a gathered copy (another seed or fractions)."""
        pos = self.position[idx]
        if len(pos) and bool((pos[1:] - pos[:-1] == 1).all()):
            start = int(pos[0])
            return x[start:start + len(pos)]
        return x[pos]


def shard_files(folder: Path) -> list[Path]:
    """The ``.npy``/``.npz`` files directly in ``folder``, sorted by name (the same order every time)."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".npy", ".npz")),
                  key=lambda p: p.name)


def is_shard_folder(path: Path | None) -> bool:
    """A folder holding ``.npy``/``.npz`` files and neither images nor subfolders (an image folder's classes)."""
    if path is None or not path.is_dir():
        return False
    from .images import IMAGE_SUFFIXES

    try:
        entries = list(path.iterdir())
    except OSError:
        return False
    suffixes = {p.suffix.lower() for p in entries if p.is_file()}
    return bool(suffixes & {".npy", ".npz"}) and not suffixes & set(IMAGE_SUFFIXES) and \
        not any(p.is_dir() for p in entries)


def _open(path: Path, mapped: bool) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """(x as stored, y, y_names) of one ``.npy``/``.npz``: a ``.npy`` memory-mapped when ``mapped`` (its header
    checked first), an ``.npz`` read whole (a shard fits in memory)."""
    from .sources import _check_npy_header, _load_npy, _pickled

    if mapped and path.suffix.lower() == ".npy":
        try:
            with open(path, "rb") as f:
                if f.read(6) != b"\x93NUMPY":
                    raise DataError(f"cannot read {path}: not a NumPy .npy file; save it with np.save")
                f.seek(0)
                _check_npy_header(f, os.fstat(f.fileno()).st_size, str(path), memory=False)
            return np.load(path, mmap_mode="r", allow_pickle=False), None, None
        except DataError:
            raise
        except ValueError as exc:
            raise DataError(_pickled(str(path)) if "pickle" in str(exc).lower() else
                            one_line(f"cannot read {path} as a NumPy file: {exc}")) from None
        except OSError as exc:
            raise DataError(one_line(f"cannot read {path}: {exc}")) from None
    return _load_npy(path)


def _parts(paths: list[Path], mapped: bool, folder: Path | None
           ) -> tuple[list[np.ndarray], np.ndarray | None, list[str] | None]:
    """Every shard's x (checked against the first: dtype kind, per-example shape), and the y of all shards."""
    from .sources import _check_x

    xs, ys, names = [], [], None
    for p in paths:
        x, y, y_names = _open(p, mapped)
        _check_x(x, p, finite=False)
        if xs and (tuple(x.shape[1:]), x.dtype) != (tuple(xs[0].shape[1:]), xs[0].dtype):
            raise DataError(f"shards of {folder} disagree: {paths[0].name} has examples of shape "
                            f"{list(xs[0].shape[1:])} ({xs[0].dtype}) and {p.name} {list(x.shape[1:])} ({x.dtype}); "
                            "give every shard the same shape and dtype")
        if xs and (ys and ys[0] is not None) != (y is not None):
            raise DataError(f"shards of {folder} disagree: {paths[0].name} {'has' if ys[0] is not None else 'lacks'} "
                            f"labels y and {p.name} {'has' if y is not None else 'lacks'}; "
                            "give y in every shard or none")
        xs.append(x)
        ys.append(y)
        names = names if names is not None else y_names
    y_all = None if ys[0] is None else np.concatenate(ys)
    return xs, y_all, names


def _chunks(xs: list[np.ndarray]) -> Iterator[np.ndarray]:
    """The rows of every part in order, a few tens of MB at a time."""
    for x in xs:
        row = max(1, int(np.prod(x.shape[1:])) * 4)
        step = max(1, CHUNK_BYTES // row)
        for a in range(0, len(x), step):
            yield np.asarray(x[a:a + step])


def _converter(first: np.ndarray, where: Path, image_size: int | None):
    """The per-chunk conversion of :func:`~vaekit.data.sources.load_array_file` and the output's per-example
    shape and kind; the range check of float images is done over all chunks (:func:`_stream`)."""
    from ._common import resize_images
    from .sources import _to_nchw

    if first.ndim == 2:
        if image_size is not None:
            raise DataError(f"image_size applies to images only; x in {where} is a 2-D [N, D] array")

        def conv(c: np.ndarray) -> np.ndarray:
            return c.astype(np.float32)
        return conv, tuple(first.shape[1:]), "array"

    def conv_image(c: np.ndarray) -> np.ndarray:
        c = _to_nchw(c, where)
        img = c.astype(np.float32) / 255.0 if c.dtype == np.uint8 else c.astype(np.float32)
        if image_size is not None:
            img = resize_images(torch.from_numpy(np.ascontiguousarray(img)), image_size).numpy()
        return np.ascontiguousarray(img)
    return conv_image, tuple(conv_image(first[:1]).shape[1:]), "image"


def _stream(xs: list[np.ndarray], where: Path, image_size: int | None, keep: bool, sink=None
            ) -> tuple[hashlib._Hash, np.ndarray | None, bool]:
    """Convert, check and hash every row in order, a chunk at a time (kept in a new in-memory array when
    ``keep``, else handed to ``sink(first_row, rows)``); returns the hash (fed like :meth:`Dataset.fingerprint`
    feeds ``x``), that array, and whether every value lies in [0, 1]."""
    conv, shape, kind = _converter(xs[0], where, image_size)
    n = sum(len(x) for x in xs)
    h = hashlib.sha256()
    h.update(f"x:{np.dtype(np.float32).str}:{[n, *shape]};".encode())
    out = np.empty((n, *shape), dtype=np.float32) if keep else None
    at, lo, hi, float_images = 0, np.inf, -np.inf, kind == "image" and xs[0].dtype != np.uint8
    in_unit = True
    for raw in _chunks(xs):
        if raw.dtype.kind == "f" and not np.isfinite(raw).all():
            raise DataError(f"x in {where} has NaN or infinite value(s) (rows {at}-{at + len(raw) - 1} of the "
                            "data); fill or drop them")
        c = conv(raw)
        if kind == "array" and not np.isfinite(c).all():
            raise DataError(f"x in {where} has values too large for float32; rescale them")
        if float_images:
            lo, hi = min(lo, float(c.min())), max(hi, float(c.max()))
            if lo < 0.0 or hi > 1.0:
                raise DataError(f"image array x in {where} has values outside [0, 1] (at least [{lo:g}, {hi:g}]); "
                                "scale it to [0, 1] (or save uint8 pixels 0-255), or pass a 2-D [N, D] array")
        h.update(memoryview(np.ascontiguousarray(c)).cast("B"))
        if out is not None:
            out[at:at + len(c)] = c
        else:
            if in_unit and c.size:
                in_unit = bool(c.min() >= 0) and bool(c.max() <= 1)
            if sink is not None:
                sink(at, c)
        at += len(c)
    return h, out, in_unit


def _sync_and_drop(f) -> None:
    """Write ``f``'s dirty pages to disk and drop them from the page cache: a memory cgroup charges dirty page
    cache to the writer, so writing a file larger than the limit must not keep it."""
    f.flush()
    os.fdatasync(f.fileno())
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


class _Buckets:
    """An external shuffle with sequential I/O only: rows arriving in source order are appended to the bucket
    of their output position (``rows_per`` consecutive positions each, a few tens of MB); then each bucket is
    read back, its rows put in place in memory and written out in order. Random reads of a memory map would
    fault row by row (with the kernel's readaround, 8 MB per fault here, a 3 GB file read 60 GB)."""

    def __init__(self, folder: Path, position: np.ndarray, row_bytes: int):
        self.folder, self.position = folder, position
        self.rows_per = max(1, CHUNK_BYTES // row_bytes)
        count = (len(position) + self.rows_per - 1) // self.rows_per
        self.files = [open(folder / f"{k}.bin", "wb") for k in range(count)]

    def add(self, at: int, rows: np.ndarray) -> None:
        bucket = self.position[at:at + len(rows)] // self.rows_per
        for k in np.unique(bucket):
            self.files[k].write(memoryview(np.ascontiguousarray(rows[bucket == k])).cast("B"))
            _sync_and_drop(self.files[k])

    def write(self, out, shape: tuple[int, ...]) -> None:
        for f in self.files:
            f.close()
        bucket_of = self.position // self.rows_per
        for k in range(len(self.files)):
            path = self.folder / f"{k}.bin"
            rows = np.fromfile(path, dtype=np.float32).reshape(-1, *shape)  # in source order
            placed = np.empty_like(rows)
            placed[self.position[bucket_of == k] - k * self.rows_per] = rows
            out.write(memoryview(placed).cast("B"))
            _sync_and_drop(out)
            path.unlink()


def _finish_fingerprint(h: hashlib._Hash, ds: Dataset) -> str:
    """The rest of :meth:`Dataset.fingerprint` after ``x`` (y, test_x, test_y, attributes)."""
    for field in ("y", "test_x", "test_y", "attributes"):
        t = getattr(ds, field)
        if t is None and field == "attributes":
            continue
        if t is None:
            h.update(f"{field}:none;".encode())
            continue
        arr = np.ascontiguousarray(t.detach().cpu().numpy())
        h.update(f"{field}:{arr.dtype.str}:{list(arr.shape)};".encode())
        if arr.size:
            h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def _labels(ds_kwargs: dict, y_raw, y_names, n: int, where: Path) -> None:
    from .sources import _y_of

    y, classes, attributes, attribute_names = _y_of(y_raw, y_names, n, where)
    ds_kwargs.update(y=y, classes=classes, attributes=attributes, attribute_names=attribute_names)


def load_shards(folder: Path, *, image_size: int | None = None, name: str | None = None) -> Dataset:
    """A folder of ``.npy``/``.npz`` shards in memory: the shards concatenated in name order, each converted
    as :func:`~vaekit.data.sources.load_array_file` converts one file."""
    paths = shard_files(folder)
    xs, y_raw, y_names = _parts(paths, False, folder)
    _, x, _ = _stream(xs, folder, image_size, keep=True)
    kwargs: dict = {}
    _labels(kwargs, y_raw, y_names, len(x), folder)
    return Dataset(x=torch.from_numpy(x), kind="array" if x.ndim == 2 else "image", name=name or str(folder),
                   **kwargs)


def _cache_key(paths: list[Path], image_size: int | None, plan: tuple[int, float, float]) -> str:
    files = []
    for p in paths:
        st = p.stat()
        files.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    text = json.dumps({"v": CACHE_VERSION, "files": files, "image_size": image_size, "split": list(plan)})
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_mapped(path: Path, *, plan: tuple[int, float, float], cache_dir: str | os.PathLike | None = None,
                image_size: int | None = None, name: str | None = None) -> Dataset:
    """A ``.npy`` file, a folder of shards or a folder of images (:mod:`~vaekit.data.outofcore_images`) as a
    :class:`Dataset` whose ``x`` is a split-ordered memory map (see the module docstring); ``plan`` is (seed,
    val_fraction, test_fraction) of the run."""
    from .builtin import default_cache_dir
    from .dataset import split_indices

    if path.is_dir() and not is_shard_folder(path):  # decoded once into the cache: vaekit.data.outofcore_images
        from .outofcore_images import image_source

        paths, n, kwargs, write = image_source(path, image_size)
    else:
        paths, n, kwargs, write = _array_source(path, image_size)
    seed, val_fraction, test_fraction = plan
    perm = torch.cat(split_indices(n, val_fraction, test_fraction, seed)) if n >= 3 else torch.arange(n)
    position = torch.empty(n, dtype=torch.int64)
    position[perm] = torch.arange(n)
    root = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / "outofcore"
    key = _cache_key(paths, image_size, plan)
    data, meta_path = root / f"{key}.npy", root / f"{key}.json"
    meta = _read_meta(meta_path)
    if meta is None or not data.is_file():
        meta = write(position.numpy(), root, data, meta_path)
    x = np.load(data, mmap_mode="c", allow_pickle=False)
    mapping = getattr(x, "_mmap", None)
    if mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        # batches touch scattered rows: without this every page fault reads ahead read_ahead_kb (8 MB here)
        # around the row, and a training epoch under a memory limit read 20x the file
        mapping.madvise(mmap.MADV_RANDOM)
    from .._memory import fixed_mmap_threshold
    from .mapped_reads import register

    register(x)  # sequential passes over its splits read ahead in large requests (mapped_reads.row_chunks)
    fixed_mmap_threshold()  # big temporaries (batches, activations) go back to the OS when freed: a bounded heap
    return Dataset(x=torch.from_numpy(x), kind=meta["kind"], name=name or str(path),
                   split_order=SplitOrder(position, cache=str(data)),
                   known_fingerprint=meta["fingerprint"], known_in_unit=meta.get("in_unit_interval"), **kwargs)


def _array_source(path: Path, image_size: int | None) -> tuple[list[Path], int, dict, object]:
    """A ``.npy`` file or a folder of shards for :func:`load_mapped`: (the files the cache key covers, the number
    of rows, the Dataset's label fields, ``write(position, root, data, meta_path)`` writing the cache)."""
    folder = path if path.is_dir() else None
    paths = shard_files(path) if folder is not None else [path]
    if folder is None and path.suffix.lower() != ".npy":
        raise DataError(f"--mmap reads a .npy file, a folder of .npy/.npz shards or a folder of images, not {path}; "
                        "save x with np.save (or split it into shards), or drop --mmap")
    xs, y_raw, y_names = _parts(paths, True, folder)
    n = sum(len(x) for x in xs)
    kwargs: dict = {}
    _labels(kwargs, y_raw, y_names, n, path)

    def write(position: np.ndarray, root: Path, data: Path, meta_path: Path) -> dict:
        return _write_cache(xs, path, image_size, position, root, data, meta_path, kwargs)
    return paths, n, kwargs, write


def _read_meta(path: Path) -> dict | None:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and {"kind", "fingerprint"} <= set(meta) else None


def _write_cache(xs: list[np.ndarray], where: Path, image_size: int | None, position: np.ndarray, root: Path,
                 data: Path, meta_path: Path, kwargs: dict) -> dict:
    """Check and hash the source in order (:func:`_stream`) while bucketing its rows, then write ``data`` (a
    float32 ``.npy`` holding source row ``i`` at ``position[i]``) and its ``.json``, both atomically."""
    _, shape, kind = _converter(xs[0], where, image_size)

    def stream(sink) -> tuple[hashlib._Hash, bool]:
        h, _, in_unit = _stream(xs, where, image_size, keep=False, sink=sink)
        return h, in_unit
    return write_split_ordered(stream, sum(len(x) for x in xs), shape, kind, where, position, root, data, meta_path,
                               kwargs)


def write_split_ordered(stream, n: int, shape: tuple[int, ...], kind: str, where: Path, position: np.ndarray,
                        root: Path, data: Path, meta_path: Path, kwargs: dict) -> dict:
    """The cache writer of every source (arrays, shards, image folders): ``stream(sink)`` converts, checks and
    hashes the source's ``n`` rows (float32, per-example ``shape``) in source order, handing each chunk to
    ``sink(first_row, rows)``, and returns (the hash fed as :meth:`Dataset.fingerprint` feeds ``x``, whether every
    value lies in [0, 1]); the rows go through the external shuffle (:class:`_Buckets`) into ``data``, source row
    ``i`` at ``position[i]``, and the metadata into ``meta_path`` (both written atomically). An exception from
    ``stream`` leaves nothing behind."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".tmp-", suffix=".npy")
        os.close(fd)
    except OSError as exc:
        raise DataError(one_line(f"cannot write the memory-mapped cache in {root}: {exc}; pass --cache-dir")) from None
    try:
        with tempfile.TemporaryDirectory(dir=root, prefix=".tmp-") as scratch:
            buckets = _Buckets(Path(scratch), position, 4 * int(np.prod(shape)))
            try:
                h, in_unit = stream(buckets.add)
                with open(tmp, "wb") as f:
                    np.lib.format.write_array_header_1_0(f, {"descr": np.dtype(np.float32).str,
                                                             "fortran_order": False, "shape": (n, *shape)})
                    buckets.write(f, shape)
            finally:
                for f in buckets.files:
                    f.close()
        fingerprint = _finish_fingerprint(h, Dataset(x=torch.zeros(n, 1), kind=kind, **kwargs))
        os.replace(tmp, data)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        size = format_bytes(n * 4 * int(np.prod(shape)))
        raise DataError(one_line(f"cannot write the memory-mapped cache {data} ({size}): {exc}; free disk space "
                                 "or pass --cache-dir")) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    meta = {"kind": kind, "fingerprint": fingerprint, "in_unit_interval": in_unit, "source": str(where),
            "shape": [n, *shape]}
    fd, tmp_meta = tempfile.mkstemp(dir=root, prefix=".tmp-", suffix=".json")  # ranks may write it at once
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(meta))
    os.replace(tmp_meta, meta_path)
    return meta
