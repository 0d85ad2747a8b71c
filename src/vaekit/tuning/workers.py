"""The workers of ``vaekit tune``: each runs trials of the shared study until it has enough finished ones.

One worker runs in the calling process; several are spawned processes, each with its own process group and
cores/jobs torch threads. Ctrl-C or SIGTERM is forwarded once to each worker, which re-queues its trial
(same hyperparameters; the run continues from its checkpoint) and exits. Workers of one tune folder take
an exclusive file lock while they count trials and create the next one. Optuna is imported inside functions.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from ..errors import VaekitError
from .job import Job, make_pruner, make_sampler
from .objective import Objective
from .storage import n_trials, open_storage, quiet_optuna, trial_counts


def run_worker(job: Job) -> str:
    """Run trials of the study until it has ``job.target`` finished ones, the deadline passes or the
    parent process is gone; returns why it stopped ('done', 'timeout', 'orphaned')."""
    from optuna.storages import fail_stale_trials

    study, space = _load_study(job)
    objective = Objective(job, space)
    claim = _ClaimLock(Path(job.tune_dir) / ".claim.lock")
    objective.started = claim.release
    while True:
        if job.deadline is not None and time.time() >= job.deadline:
            return "timeout"
        if job.parent is not None and os.getppid() != job.parent:
            return "orphaned"
        # Counting and creating the next trial happen under a lock shared by this folder's workers, so
        # two workers finishing at once cannot both start the study's last trial.
        claim.acquire()
        try:
            c = trial_counts(study)
            if c["finished"] >= job.target:
                return "done"
            if c["finished"] + c["running"] >= job.target:
                # the last trials are running elsewhere; wait in case one dies and must be run again
                claim.release()
                fail_stale_trials(study)
                time.sleep(1.0)
                continue
            try:
                study.optimize(objective, n_trials=1, catch=(VaekitError,), gc_after_trial=False)
            except KeyboardInterrupt:
                with _no_interrupts():
                    objective.requeue(study)
                raise
        finally:
            claim.release()
        objective.current = None


def _load_study(job: Job):
    """The job's study with this worker's sampler and pruner, and its search space (sets torch threads).

    Grid workers share one seed (trial k runs grid point k of one shuffled order); the other samplers get
    a seed per worker and per start, so workers and reruns do not repeat each other's draws."""
    import optuna

    quiet_optuna()
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    storage = open_storage(job.url)
    space = job.search_space()
    seed = job.seed + (0 if job.sampler == "grid" else 7919 * (job.worker + 1) + n_trials(storage, job.study))
    study = optuna.load_study(study_name=job.study, storage=storage,
                              sampler=make_sampler(job.sampler, space, seed, job.target),
                              pruner=make_pruner(job.pruner, job.epochs))
    return study, space


class _ClaimLock:
    """An exclusive ``flock`` on a file in the tune folder (a no-op where ``fcntl`` is missing)."""

    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o666)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock
            self.fd = None


class _no_interrupts:
    """Ignore Ctrl-C while a trial is being re-queued (in the main thread; elsewhere a no-op)."""

    def __enter__(self):
        import threading

        self.main = threading.current_thread() is threading.main_thread()
        if self.main:
            self.previous = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc) -> None:
        if self.main:
            signal.signal(signal.SIGINT, self.previous)


def _worker_process(job: Job) -> None:
    """Entry point of a spawned worker: its own process group (the parent forwards Ctrl-C once)."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        run_worker(job)
    except KeyboardInterrupt:
        sys.exit(130)


def _raise_interrupt(signum, frame) -> None:  # noqa: ARG001
    raise KeyboardInterrupt


def run_workers(job: Job, jobs: int) -> str:
    """Run the search's workers until they stop; returns why ('done', 'timeout', ...).

    ``jobs`` = 1: in this process. Otherwise that many spawned worker processes, each with cores/jobs
    torch threads; Ctrl-C or SIGTERM is forwarded once to each, which requeues its trial. SIGTERM raises
    KeyboardInterrupt here meanwhile (handlers can only be set in the main thread)."""
    import threading

    main = threading.current_thread() is threading.main_thread()  # signal handlers only work there
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main else None
    previous_int = signal.getsignal(signal.SIGINT)
    try:
        if jobs == 1:
            return run_worker(job)
        return _run_processes(job, jobs, main)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


def _run_processes(job: Job, jobs: int, main: bool) -> str:
    """Spawn ``jobs`` worker processes and wait for them; a Ctrl-C is forwarded once to each worker (this
    process then ignores further ones until they have all stopped)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    procs = []
    for w in range(jobs):
        wjob = Job(**{**job.__dict__, "worker": w, "threads": max(1, cores // jobs), "parent": os.getpid()})
        p = ctx.Process(target=_worker_process, args=(wjob,), name=f"vaekit-tune-{w}")
        p.start()
        procs.append(p)
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        if main:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGINT)
        for p in procs:
            p.join()
        raise
    bad = [p for p in procs if p.exitcode not in (0, None)]
    if bad:
        raise VaekitError(f"{len(bad)} of {jobs} tune workers stopped with an error (see above); "
                          "the study is kept: rerun the same command to continue it")
    return "timeout" if job.deadline is not None and time.time() >= job.deadline else "done"
