"""Reading a ``--mmap`` run's memory-mapped cache (:mod:`vaekit.data.outofcore`) after it is opened: sequential
passes in large reads, and the run's commands re-opening the cache instead of loading the data in memory.

The cache's map is advised ``MADV_RANDOM`` so that a training batch (scattered rows) faults only its own pages;
the price is that a pass over a split in row order (validation every epoch, the end-of-run ELBOs, the report,
``vaekit evaluate``) would also fault 4 KB at a time, one small synchronous read per page. :func:`row_chunks`,
the loop of those passes, asks the kernel (``MADV_WILLNEED``) to read the next rows ahead in large requests
while the current chunk is computed; for a tensor that is not a view of an open cache it is plain ``range``.
The values read are the same, so every number is unchanged.
"""

from __future__ import annotations

import mmap
import os
import weakref
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

READ_AHEAD_BYTES = 16 << 20  # rows asked for ahead of the chunk in use (two such windows at most)
PIECE_BYTES = 4 << 20  # one MADV_WILLNEED call: the kernel caps one call at the device's readahead (8 MB here)

_MAPS: list[weakref.ref] = []  # the open caches (np.memmap arrays; a dead reference is dropped on lookup)


def register(x: np.ndarray) -> None:
    """Remember ``x`` (an ``np.memmap`` of a cache) so that :func:`row_chunks` recognises views of it."""
    if getattr(x, "_mmap", None) is not None and hasattr(mmap, "MADV_WILLNEED"):
        _MAPS.append(weakref.ref(x))


def _mapping_of(t: torch.Tensor) -> tuple[Any, int] | None:
    """(the mmap object, the byte offset of ``t``'s first element in it) when ``t`` is a contiguous CPU view of
    a registered cache; else None."""
    if not _MAPS or t.device.type != "cpu" or not t.numel() or not t.is_contiguous():
        return None
    addr = t.data_ptr()
    for ref in list(_MAPS):
        x = ref()
        if x is None:
            _MAPS.remove(ref)
            continue
        mm = x._mmap
        base = x.ctypes.data - int(x.offset) % mmap.ALLOCATIONGRANULARITY  # np.memmap maps from a granule
        try:
            size = len(mm)
        except ValueError:  # closed
            continue
        if base <= addr < base + size:
            return mm, addr - base
    return None


def read_ahead(t: torch.Tensor) -> bool:
    """Ask the kernel to read ``t``'s bytes into the page cache now, in large requests, when ``t`` is a view of an
    open cache (``MADV_WILLNEED``; the call returns once the reads are queued). Whether it applied."""
    found = _mapping_of(t)
    if found is None:
        return False
    mm, start = found
    end = min(len(mm), start + t.numel() * t.element_size())
    start -= start % mmap.PAGESIZE
    try:
        for a in range(start, end, PIECE_BYTES):
            mm.madvise(mmap.MADV_WILLNEED, a, min(PIECE_BYTES, end - a))
    except (OSError, ValueError):  # advice only: the pass still reads its rows through page faults
        return False
    return True


def row_chunks(x: torch.Tensor, size: int) -> Iterator[int]:
    """``range(0, len(x), size)``, the start of each chunk of a sequential pass over ``x``; when ``x`` is a view of
    a memory-mapped cache, the rows ahead of the chunk in use (up to :data:`READ_AHEAD_BYTES` past it) are read
    ahead in large requests first, so the pass reads the file in big sequential pieces instead of 4 KB faults."""
    n = len(x)
    mapped = n > 0 and torch.is_tensor(x) and _mapping_of(x[:1]) is not None
    row = max(1, x[:1].numel() * x.element_size()) if mapped else 1
    window = max(size, READ_AHEAD_BYTES // row)
    asked = 0  # rows asked for so far
    for i in range(0, n, size):
        if mapped:
            while asked < min(n, i + size + window):
                read_ahead(x[asked: asked + window])
                asked += window
        yield i


def run_cache_dir(info: dict | None, cache_dir: Any = None) -> Any:
    """The cache folder a ``--mmap`` run reads: ``cache_dir`` when given, else the one its ``config.json`` records
    (``data.mmap_cache``: ``<dir>/outofcore/<key>.npy``), else None (the default, ``$VAEKIT_CACHE``)."""
    if cache_dir is not None:
        return cache_dir
    recorded = ((info or {}).get("data") or {}).get("mmap_cache")
    return str(Path(recorded).parent.parent) if isinstance(recorded, str) and recorded else None


def _same_source(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return False


def run_data_options(cfg: Any, info: dict | None, source: str, cache_dir: Any = None) -> dict:
    """``load_source`` options that re-open a ``--mmap`` run's own data (``source`` naming ``cfg.data``) through its
    split-ordered cache: the run's (seed, validation, test fractions) and cache folder, so the key, and therefore
    the file, are those training wrote (rebuilt from the source files when it was deleted). Empty for another
    run or other data (loaded in memory, as before). For callers that take the run's splits: the map holds the
    rows in split order, not in file order."""
    if not getattr(cfg, "mmap", False) or not isinstance(source, (str, os.PathLike)) \
            or not _same_source(os.fspath(source), cfg.data):
        return {}
    return {"mmap_plan": (cfg.seed, cfg.val_fraction, cfg.test_fraction),
            "cache_dir": run_cache_dir(info, cache_dir)}
