"""Give freed heap memory back to the operating system (glibc), so evaluation's peak RSS stays bounded.

With glibc's dynamic mmap threshold, the multi-megabyte temporaries of chunked evaluation (IWAE, batched
encoders) end up on the heap, and freed chunks scattered over several arenas are kept: peak RSS of a
Fashion-MNIST run varied between 0.8 and 2 GB from run to run (bench/memory). ``malloc_trim`` returns
them; calling it every 8 IWAE chunks kept the peak at 0.79-0.81 GB over 6 runs for a few % of IWAE time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=None)
def _libc(name: str, argtypes: tuple, restype: Any) -> Any:
    """glibc's function ``name`` with its C signature, or None off Linux or where the C library lacks it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = list(argtypes), restype
    return fn


def release_free_memory() -> None:
    """Return free heap pages to the OS where the C library can (a no-op elsewhere)."""
    fn = _libc("malloc_trim", (ctypes.c_size_t,), ctypes.c_int)
    if fn is not None:
        fn(0)


M_MMAP_THRESHOLD = -3  # mallopt parameter (glibc malloc.h)


def fixed_mmap_threshold(nbytes: int = 1 << 20) -> bool:
    """Serve every allocation of at least ``nbytes`` with its own mmap, returned to the OS when freed, and turn
    glibc's dynamic threshold off (it moves big temporaries onto the heap after the first is freed, where freed
    chunks stay). For processes that must stay under a memory limit (``--mmap``): a 3 GB run under a 1 GB
    cgroup was OOM-killed once with 962 MB of anonymous memory, about twice the usual peak (likely that heap).
    Whether it applied (False off glibc)."""
    fn = _libc("mallopt", (ctypes.c_int, ctypes.c_int), ctypes.c_int)
    return fn is not None and bool(fn(M_MMAP_THRESHOLD, int(nbytes)))
