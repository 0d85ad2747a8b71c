"""How many CPU threads torch uses: ``threads`` (``--threads``, ``threads=``, YAML ``threads:``) or, for
``vaekit`` commands, vaekit's default, set before torch starts.

Why a default of vaekit's own: torch starts one OpenMP thread per core, and on a shared or busy machine
those threads wait on each other (spinning) whenever a neighbour holds one of the cores; bench/threads.py
measured it (numbers in the README, "## Performance").
"""

from __future__ import annotations

import os

_USER_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; os.cpu_count() where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """vaekit's default intra-op thread count: half the cores of the process's affinity mask, at least 1.

    Measured on a shared 2-core machine (bench/threads.py, README "## Performance"): a conv digits epoch
    took 0.3-0.5 s with one thread and 1-12 s with torch's default of one thread per core, whose OpenMP
    threads spin waiting for each other whenever a neighbour holds a core. Half the cores leaves room for
    neighbours on bigger machines; the passive wait policy (:func:`default_environment`) keeps the threads
    from spinning when they do share."""
    return max(1, available_cores() // 2)


def default_environment() -> dict[str, str]:
    """The variables a ``vaekit`` command sets when the user set none of OMP_NUM_THREADS/MKL_NUM_THREADS:
    the default thread count, and OpenMP's passive wait policy unless OMP_WAIT_POLICY is already set."""
    env = {"OMP_NUM_THREADS": str(default_threads())}
    if not os.environ.get("OMP_WAIT_POLICY"):
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def configure_threads(threads: int) -> int:
    """Set torch's intra-op threads (and inter-op threads, where torch still allows it) to ``threads``;
    returns the intra-op count in effect. ``threads`` comes from ``--threads``/``threads=``/YAML ``threads:``."""
    import torch

    n = int(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)  # allowed once, before any inter-op work has started
    except RuntimeError:
        pass
    return torch.get_num_threads()


def cli_environment() -> str | None:
    """Thread settings of a ``vaekit`` command, as environment variables OpenMP reads when it starts (so this
    runs before torch is imported): ``VAEKIT_THREADS`` if given, else the user's OMP_NUM_THREADS /
    MKL_NUM_THREADS, else :func:`default_environment`. Returns a one-line error for a bad ``VAEKIT_THREADS``."""
    given = os.environ.get("VAEKIT_THREADS", "").strip()
    if given:
        if not given.isdigit() or not 1 <= int(given) <= 1024:
            return f"VAEKIT_THREADS must be a whole number from 1 to 1024, got {given!r}"
        os.environ["OMP_NUM_THREADS"] = given
    elif not any(os.environ.get(k) for k in _USER_ENV):
        os.environ.update(default_environment())
    return None
