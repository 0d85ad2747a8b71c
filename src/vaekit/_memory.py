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


@lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def release_free_memory() -> None:
    """Return free heap pages to the OS where the C library can (a no-op elsewhere)."""
    fn = _malloc_trim()
    if fn is not None:
        fn(0)


M_MMAP_THRESHOLD = -3  # mallopt parameter (glibc malloc.h)


def fixed_mmap_threshold(nbytes: int = 1 << 20) -> bool:
    """Serve every allocation of at least ``nbytes`` with its own mmap, returned to the OS when freed, and turn
    glibc's dynamic threshold off (it moves big temporaries onto the heap after the first is freed, where freed
    chunks stay). For processes that must stay under a memory limit (``--mmap``): a 3 GB run under a 1 GB
    cgroup was OOM-killed once with 962 MB of anonymous memory, about twice the usual peak (likely that heap).
    Whether it applied (False off glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallopt
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return bool(fn(M_MMAP_THRESHOLD, int(nbytes)))

