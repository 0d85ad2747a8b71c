"""``vaekit train --nproc N``: start N local processes with PyTorch's elastic launcher (what ``torchrun
--standalone --nproc-per-node N`` does), each running ``vaekit train`` with the same arguments, and turn a
failed world into one line."""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid

from ..errors import TrainingError, UsageError


def launch_local(nproc: int, argv: list[str], out: str | None = None) -> None:
    """Run ``python -m vaekit train *argv`` in ``nproc`` processes on this machine (a gloo or NCCL world on
    localhost). Returns when every rank has finished; a rank that fails stops the others (the elastic
    agent's job) and ends here as one error: its own line was printed by the rank, a rank killed by a
    signal is named here."""
    if nproc < 1:
        raise UsageError(f"--nproc must be at least 1, got {nproc}")
    if "WORLD_SIZE" in os.environ:
        raise UsageError("--nproc starts torchrun itself and this process already runs under torchrun; drop --nproc")
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    _quiet_agent()
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1)
    try:
        elastic_launch(config, sys.executable)("-m", "vaekit", "train", *argv)
    except ChildFailedError as err:
        raise _world_error(err, nproc, out) from None


def _quiet_agent() -> None:
    """Silence the elastic agent's own log lines (each of its loggers has its own level): the ranks speak for
    themselves and a failure is said once, by :func:`launch_local`."""
    import torch.distributed.elastic.multiprocessing.api  # noqa: F401 (creates the loggers to quiet)

    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("torch.distributed.elastic", "torch.distributed.launcher")):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)


class RankFailed(TrainingError):
    """A rank of a ``--nproc`` run failed; ``code`` is its exit status (0 < code), ``said``: it printed why."""

    def __init__(self, message: str, code: int, said: bool):
        super().__init__(message)
        self.code, self.said = code, said


def _world_error(err, nproc: int, out: str | None) -> RankFailed:
    failures = err.failures  # global rank -> ProcessFailure(exitcode, ...)
    # the root cause: a rank killed from outside (SIGKILL: out of memory, SIGSEGV…), else the first rank that
    # failed by itself; SIGTERM is the agent stopping the others after a failure
    outside = {r: f for r, f in failures.items() if f.exitcode < 0 and -f.exitcode not in (signal.SIGTERM,
                                                                                          signal.SIGINT)}
    own = {r: f for r, f in failures.items() if f.exitcode > 0}
    pick = outside or own or failures
    rank, failure = min(pick.items(), key=lambda kv: (kv[1].timestamp, kv[0]))
    code = failure.exitcode
    resume = f"; {out} keeps its last complete checkpoint: continue with `vaekit train --out {out} --resume " \
             f"--nproc {nproc}`" if out else ""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return RankFailed(f"rank {rank} of {nproc} was killed by {name}; the other ranks were stopped{resume}",
                          1, False)
    return RankFailed(f"rank {rank} of {nproc} failed with exit code {code}{resume}", code, True)
