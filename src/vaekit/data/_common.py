"""Helpers shared by the data sources: one-line messages, label encoding, image resizing, memory checks."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError


def one_line(text: object) -> str:
    """Collapse whitespace (newlines included) so a message fits on one line."""
    return " ".join(str(text).split())


def encode_labels(values: np.ndarray, what: str, *, keep_int: bool) -> tuple[torch.Tensor, list[str]]:
    """Class indices (int64) and class names for a 1-D array of labels.

    With ``keep_int``, integer labels of 0 or more are used as indices as they are (classes
    ``"0".."max"``) and −1 marks an unknown label (kept as −1: semi-supervised data); every other
    label set is mapped to the position of its value among the sorted unique values, and the class
    names are ``str(value)``.
    """
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise DataError(f"{what} must be a 1-D array of labels; got shape {list(values.shape)}")
    if values.dtype.kind not in "biufUS":
        raise DataError(f"{what} has unsupported label type {values.dtype}; use integers or strings")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise DataError(f"{what} has {bad} NaN or infinite label(s); fill or drop those rows")
    if keep_int and values.dtype.kind in "iu" and (values.size == 0 or values.min() >= -1):
        top = int(values.max()) + 1 if values.size else 0
        return torch.from_numpy(values.astype(np.int64)), [str(i) for i in range(top)]
    uniques, index = np.unique(values, return_inverse=True)
    classes = [v.decode() if isinstance(v, bytes) else str(v) for v in uniques.tolist()]
    return torch.from_numpy(index.reshape(-1).astype(np.int64)), classes


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased) resize of ``[N, C, H, W]`` images in [0, 1] to ``size`` x ``size``."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    check_memory(x.shape[0] * x.shape[1] * size * size * 4, f"{x.shape[0]} images of {size}x{size}",
                 "pass a smaller --image-size")
    out = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)


def available_memory() -> int | None:
    """Bytes of memory this process can still allocate: MemAvailable of /proc/meminfo (capped by a cgroup
    v2 limit when one is set), else the free physical pages; None when the system does not say."""
    avail: int | None = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        used = int(open("/sys/fs/cgroup/memory.current").read().strip())
        if limit != "max":
            avail = min(avail, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return avail


def format_bytes(n: float) -> str:
    """``n`` bytes as text with a binary unit (1.5 GiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check_memory(nbytes: int, what: str, hint: str) -> None:
    """A one-line DataError when ``what`` would take ``nbytes`` bytes, more than the memory available
    (checked before allocating: a failed allocation escaped as a MemoryError, or the machine swapped)."""
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise DataError(f"{what} would take {format_bytes(nbytes)} of memory, more than the "
                        f"{format_bytes(avail)} available; {hint}")
