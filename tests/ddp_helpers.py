"""Workers of the distributed tests: ranks of a gloo world on loopback, started with torch.multiprocessing."""

from __future__ import annotations

import builtins
import os
import socket
from pathlib import Path

import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def zero_noise() -> None:
    """Make the reparameterisation noise zero, so a run is a deterministic function of its batches (a sharded
    run can then be compared with one process number by number)."""
    torch.randn_like = lambda t, *a, **k: torch.zeros_like(t)


def forbid_writes_under(folder: Path) -> None:
    """Fail on any attempt of this process to create, write or rename a file under ``folder``."""
    root = str(Path(folder).resolve())

    def inside(path) -> bool:
        try:
            return str(Path(os.fsdecode(path)).resolve()).startswith(root)
        except TypeError:
            return False

    real_open, real_os_open, real_replace = builtins.open, os.open, os.replace

    def guarded_open(file, mode="r", *a, **k):
        if any(c in mode for c in "wax+") and inside(file):
            raise AssertionError(f"rank {os.environ['RANK']} wrote {file}")
        return real_open(file, mode, *a, **k)

    def guarded_os_open(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            raise AssertionError(f"rank {os.environ['RANK']} wrote {path}")
        return real_os_open(path, flags, *a, **k)

    def guarded_replace(src, dst, *a, **k):
        if inside(dst) or inside(src):
            raise AssertionError(f"rank {os.environ['RANK']} renamed into {dst}")
        return real_replace(src, dst, *a, **k)

    builtins.open, os.open, os.replace = guarded_open, guarded_os_open, guarded_replace


class Interrupt(KeyboardInterrupt):
    pass


def train_rank(rank: int, world: int, port: int, out: str, settings: dict, stop_after: int | None,
               run_args: dict) -> None:
    """One rank: train ``settings`` into ``out`` (a new run stopped after epoch ``stop_after``, or with
    ``settings`` None: resume it), rank 0 alone allowed to write."""
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    zero_noise()
    if rank != 0:
        forbid_writes_under(Path(out))
    import vaekit

    def stop(row: dict) -> None:
        if stop_after is not None and row["epoch"] == stop_after:
            raise Interrupt

    try:
        if settings is None:
            vaekit.train(out=out, resume=True, **run_args)
        else:
            vaekit.train(out=out, on_epoch_end=stop, **run_args, **settings)
    except Interrupt:
        pass
