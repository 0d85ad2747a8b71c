"""Data-parallel training on PyTorch's own engine (``torch.distributed`` + DistributedDataParallel).

A run started by ``torchrun`` (or ``vaekit train --nproc N``) reads the torchrun environment (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR/PORT), starts the process group (gloo on CPU, NCCL on CUDA) and gives the Trainer a
:class:`DistContext`. The batch size stays the global one: every rank draws the same global permutation and the
same global batch from the seeded generator (so a family's own draws, M2's labelled batch or RecVAE's extra
passes, are the same everywhere) and keeps its slice (:func:`shard_batch`). The step runs through
:class:`StepModule`, a module whose ``forward`` is the objective's step, so DDP's gradient hooks see whatever
model methods the objective calls. A world size of 1 (or no torchrun) is the single-process path, unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UsageError

BACKENDS = ("auto", "gloo", "nccl")
_current: "DistContext | None" = None
joined = False  # whether this process has joined a process group (errors after that may be its own)


@dataclass
class DistContext:
    """This process's place in a distributed run: ``rank`` of ``world`` processes, ``local_rank`` on its
    machine; ``run_dir`` is where ranks other than 0 read a checkpoint from on --resume (they write nothing)."""

    rank: int
    world: int
    local_rank: int
    backend: str
    run_dir: Path | None = None
    owned: bool = False  # this module started the process group (and ends it)

    @property
    def writer(self) -> bool:
        """Whether this rank writes the run directory (rank 0 only)."""
        return self.rank == 0


def current() -> DistContext | None:
    """The distributed context of the running training (None: a single process)."""
    return _current


def env_world() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from the torchrun environment; None when not started by torchrun or
    when the world is one process. A malformed variable is a one-line UsageError."""
    if "WORLD_SIZE" not in os.environ:
        return None
    try:
        world = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise UsageError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (they are set by torchrun); "
                         "start the run with torchrun or `vaekit train --nproc N`") from None
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"RANK {rank} / WORLD_SIZE {world} is not a valid torchrun world; start the run with "
                         "torchrun or `vaekit train --nproc N`")
    return None if world == 1 else (rank, world, local)


def check_world(batch_size: int, world: int) -> None:
    """The global batch must split evenly over the ranks (a config then optimises the same way whatever the
    number of processes)."""
    if batch_size % world:
        raise UsageError(f"--batch-size {batch_size} does not split over {world} processes (each rank takes "
                         f"batch / world size); pick a batch size divisible by {world}, e.g. "
                         f"{max(world, batch_size // world * world)}")


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """gloo for a CPU run, NCCL for CUDA (``auto``); NCCL asked for without CUDA is a one-line UsageError."""
    backend = backend or "auto"
    if backend not in BACKENDS:
        raise UsageError(f"--dist-backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "nccl" and (device.type != "cuda" or not torch.cuda.is_available()):
        raise UsageError("--dist-backend nccl needs CUDA GPUs and this run is on "
                         f"{'a machine without CUDA' if not torch.cuda.is_available() else device}; "
                         "use --dist-backend gloo (or auto)")
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    return backend


def rank_device(device: torch.device, local_rank: int) -> torch.device:
    """Each rank of a CUDA run on its own GPU (cuda:LOCAL_RANK); a GPU named with its index would put every
    rank of the machine on that one GPU (NCCL refuses two ranks on one device): a one-line UsageError."""
    if device.type == "cuda":
        if device.index is not None:
            raise UsageError(f"--device {device} would put every process of this distributed run on one GPU; use "
                             "--device cuda (each rank on cuda:LOCAL_RANK; choose the GPUs with "
                             "CUDA_VISIBLE_DEVICES)")
        return torch.device("cuda", local_rank)
    return device


def preflight(batch_size: int, device: torch.device, backend: str | None = None) -> None:
    """The one-line checks of :func:`start` without joining: every rank meets them alike, before the data is
    read, so rank 0 alone reports them."""
    world = env_world()
    if world is None:
        if backend not in (None, "auto"):
            resolve_backend(backend, device)
        return
    check_world(batch_size, world[1])
    resolve_backend(backend, rank_device(device, world[2]))


def start(batch_size: int, device: torch.device, backend: str | None = None,
          run_dir: Path | None = None) -> tuple[DistContext | None, torch.device]:
    """Join the process group of a torchrun world (None on a single process) and the device of this rank.
    Checks everything a user can get wrong before any process waits for another."""
    global _current, joined
    world = env_world()
    if world is None:
        if backend not in (None, "auto"):
            resolve_backend(backend, device)  # still a one-line error for nccl without CUDA
        return None, device
    rank, size, local = world
    check_world(batch_size, size)
    device = rank_device(device, local)
    name = resolve_backend(backend, device)
    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(name, **({"device_id": device} if name == "nccl" else {}))
    joined = True
    _current = DistContext(rank, size, local, name, run_dir, owned)
    return _current, device


def stop() -> None:
    """Leave the process group this module started (a no-op otherwise)."""
    global _current
    ctx, _current = _current, None
    if ctx is not None and ctx.owned:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """The torch RNG seed of ``rank`` (rank 0 keeps the run's seed): each rank draws its own noise."""
    return seed if rank == 0 else (seed + 1_000_003 * rank) % (2 ** 63)


@contextlib.contextmanager
def lost_ranks(ctx: DistContext | None, kept: Callable[[], str]) -> Iterator[None]:
    """A collective failing because another rank went away (killed, out of memory, its machine lost) becomes
    one TrainingError naming what is kept, instead of the backend's connection error."""
    try:
        yield
    except RuntimeError as err:
        text = str(err)
        if ctx is None or not any(w in text for w in ("gloo", "NCCL", "peer", "Connection")):
            raise
        from ..errors import TrainingError

        raise TrainingError(f"rank {ctx.rank} lost contact with the other ranks of the distributed run (one of "
                            f"them stopped){kept()}; continue with --resume once the cause is fixed") from None


# -- the step ----------------------------------------------------------------------------------------
class StepModule(nn.Module):
    """``forward(batch, beta, weight)`` = the objective's step on ``model``, loss scaled by ``weight``: the
    module DistributedDataParallel wraps, so its gradient hooks fire for any method the objective calls."""

    def __init__(self, model: nn.Module, objective: Any):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: Any, beta: float, weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.objective.step(self.model, batch, beta)
        return out.loss * weight, out.sums


def wrap(model: nn.Module, objective: Any, params: list[nn.Parameter] | None = None) -> nn.Module:
    """The DDP-wrapped step module. ``params``: a training phase's parameters (RecVAE's encoder or decoder);
    DDP then syncs only those and ignores the rest (they are not stepped in that phase, and a decoder step
    leaves the encoder without gradients, which DDP would otherwise wait for). One wrapper per phase."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    step = StepModule(model, objective)
    if params is not None:
        mine = {id(p) for p in params}
        DDP._set_params_and_buffers_to_ignore_for_model(
            step, [name for name, p in step.named_parameters() if id(p) not in mine])
    return DDP(step, device_ids=None)


def _rows(obj: Any) -> int | None:
    """The number of examples of a batch-like object (its ``x`` rows, or a tensor's), None if unknown."""
    if torch.is_tensor(obj):
        return int(obj.shape[0]) if obj.dim() else None
    x = getattr(obj, "x", None)
    return int(x.shape[0]) if torch.is_tensor(x) and x.dim() else None


def _slice(obj: Any, rank: int, world: int) -> Any:
    """``rank``'s contiguous share of every row-indexed tensor of ``obj`` (a tensor, a dataclass batch, or a
    tuple/list of those). A part with fewer rows than ranks is kept whole on every rank (its mean is then the
    same everywhere, so DDP's average is the global one)."""
    if isinstance(obj, (tuple, list)):
        return type(obj)(_slice(o, rank, world) for o in obj)
    n = _rows(obj)
    if n is None or n < world:
        return obj
    lo, hi = rank * n // world, (rank + 1) * n // world
    if torch.is_tensor(obj):
        return obj[lo:hi]
    if dataclasses.is_dataclass(obj):
        return dataclasses.replace(obj, **{f.name: getattr(obj, f.name)[lo:hi] for f in dataclasses.fields(obj)
                                           if torch.is_tensor(getattr(obj, f.name))
                                           and getattr(obj, f.name).dim() and getattr(obj, f.name).shape[0] == n})
    return obj


def shard_batch(batch: Any, rank: int, world: int) -> tuple[Any, float]:
    """(``rank``'s share of the global ``batch``, the weight of its loss). Objectives return a mean over their
    batch; weighting rank r's mean by world · n_r / n makes DDP's gradient average the mean over the global
    batch, also for a last batch that does not split evenly. A rank left without examples (a last batch
    smaller than the world) computes one example at weight 0, so every rank still joins the gradient sync."""
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    n = _rows(first)
    if n is None:
        raise TypeError(f"cannot shard a batch of type {type(batch).__name__} (it has no rows)")
    if n >= world:
        lo, hi = rank * n // world, (rank + 1) * n // world
        return _slice(batch, rank, world), world * (hi - lo) / n
    # fewer examples than ranks: ranks below n take one each, the others one at weight 0
    k = min(rank, n - 1)
    one = _slice_rows(batch, k, k + 1, n)
    return one, (world / n if rank < n else 0.0)


def _slice_rows(obj: Any, lo: int, hi: int, n: int) -> Any:
    if isinstance(obj, (tuple, list)):
        first = obj[0]
        return type(obj)([_slice_rows(first, lo, hi, n), *obj[1:]])
    if torch.is_tensor(obj):
        return obj[lo:hi]
    return dataclasses.replace(obj, **{f.name: getattr(obj, f.name)[lo:hi] for f in dataclasses.fields(obj)
                                       if torch.is_tensor(getattr(obj, f.name)) and getattr(obj, f.name).dim()
                                       and getattr(obj, f.name).shape[0] == n})


# -- collectives ---------------------------------------------------------------------------------------
def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the ranks (in place; returned)."""
    import torch.distributed as dist

    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _comm_device() -> torch.device:
    """Where collective tensors live: the current GPU under NCCL, the CPU under gloo."""
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast_json(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (JSON-able: a metrics row) on every rank, sent as JSON bytes (no pickle)."""
    import json

    import torch.distributed as dist

    dev = _comm_device()
    data = json.dumps(obj).encode() if dist.get_rank() == src else b""
    size = torch.tensor([len(data)], dtype=torch.int64, device=dev)
    dist.broadcast(size, src=src)
    buf = (torch.frombuffer(bytearray(data), dtype=torch.uint8).to(dev) if data else
           torch.empty(int(size), dtype=torch.uint8, device=dev))
    dist.broadcast(buf, src=src)
    return json.loads(buf.cpu().numpy().tobytes().decode()) if dist.get_rank() != src else obj


def gather_rng(device: torch.device) -> list[dict[str, torch.Tensor]]:
    """Every rank's torch RNG state (CPU, and CUDA on a CUDA run), for rank 0's checkpoint."""
    import torch.distributed as dist

    dev, world = _comm_device(), dist.get_world_size()
    mine = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        mine["cuda"] = torch.cuda.get_rng_state(device)
    out: list[dict[str, torch.Tensor]] = [{} for _ in range(world)]
    for key, state in mine.items():  # fixed-size byte tensors: the same length on every rank
        parts = [torch.empty_like(state, device=dev) for _ in range(world)]
        dist.all_gather(parts, state.to(dev))
        for r, part in enumerate(parts):
            out[r][key] = part.cpu()
    return out
