"""Hyperparameter search over vaekit runs with Optuna (``vaekit tune``).

One *study* per tune folder, kept in a real database (SQLite ``study.db`` in the folder by default, or any
SQLAlchemy URL), so that a search survives interruptions and several processes or machines can work on it.
Each *trial* is an ordinary vaekit run in ``TUNE_DIR/trials/NNNN``; it reports its best validation −ELBO so
far (nats per example, β = 1) after every epoch, so the pruner can stop it early.

Counting: ``trials`` is the study's total of *finished* trials (complete, pruned, or failed because of their
own settings, e.g. a diverging loss). A trial interrupted by Ctrl-C/SIGTERM, or whose worker died (found by a
heartbeat after ``GRACE_S`` seconds), is marked FAIL and queued again with the same hyperparameters; its run
continues from its last epoch checkpoint. So re-running the same command finishes the remaining trials.

Layer: beside :mod:`vaekit.api` (it trains through ``api.train``); Optuna is imported inside functions.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import load_config_file, make_config
from ..errors import UsageError, VaekitError
from ..runs import STATE_JSON, STATE_TENSORS, read_json, read_tensor_metadata, write_json
from .space import SearchSpace, load_space, parse_space

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("median", "hyperband", "none")
METRICS = {"val_elbo": "validation −ELBO of the best weights (1-sample ELBO, β = 1), nats per example",
           "val_iwae": "validation −IWAE bound (k samples), nats per example",
           "val_recon": "validation reconstruction NLL, nats per example"}
TUNE_JSON = "tune.json"
HEARTBEAT_S = 5  # a running trial's worker writes a heartbeat this often...
GRACE_S = 30  # ...and one silent for this long is taken as dead: FAIL, and queued again
_ATTR = "vaekit"  # study user attribute describing the objective


@dataclass
class TuneResult:
    """What a ``tune`` call left behind (values in nats per example, lower is better)."""

    tune_dir: Path
    study: str
    storage: str
    metric: str
    counts: dict[str, int]
    target: int
    best_value: float | None = None
    best_trial: int | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_run: Path | None = None
    interrupted: bool = False
    timed_out: bool = False

    @property
    def finished(self) -> int:
        return self.counts.get("finished", 0)


# ---------------------------------------------------------------------------------------------------
# storage
def _masked(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        return url if u.password is None else u.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL is shown as given (it holds no parsed password)
        return url


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    warnings.filterwarnings("ignore", message=".*GridSampler.*")


def open_storage(url: str):
    """An Optuna ``RDBStorage`` for ``url`` with a heartbeat (dead workers' trials are retried).

    SQLite gets a 60 s busy timeout and write-ahead logging, so that several local worker processes can
    share one file (Optuna recommends a server database for heavy parallel use; PostgreSQL via the URL).
    """
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    _quiet_optuna()
    shown = _masked(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
        _sqlite_wal(url, shown)
    try:
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3), **kwargs)
    except ImportError as err:
        cause = err.__cause__ or err
        module = getattr(cause, "name", None) or ""
        pkg = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient",
               "pymysql": "pymysql"}.get(module.split(".")[0], "the driver named in the URL")
        raise UsageError(f"--storage {shown}: its database driver is not installed ({cause}); "
                         f"pip install {pkg}, or use sqlite:///FILE") from None
    except Exception as err:  # noqa: BLE001 - any failure to open the database is the user's URL or server
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UsageError(f"--storage {shown} cannot be opened ({first}); check the URL and that the "
                         "database is reachable") from None


def _sqlite_wal(url: str, shown: str) -> None:
    import sqlite3

    from sqlalchemy.engine import make_url

    try:
        db = make_url(url).database
    except Exception as err:  # noqa: BLE001
        raise UsageError(f"--storage {shown} is not a database URL ({err}); "
                         "write e.g. sqlite:///tune.db or postgresql://user@host/db") from None
    if not db or db == ":memory:":
        raise UsageError(f"--storage {shown} is an in-memory database, which cannot be shared or resumed; "
                         "give a file, e.g. sqlite:///tune.db")
    try:
        con = sqlite3.connect(db, timeout=60)
        try:
            con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
    except sqlite3.Error as err:
        raise UsageError(f"--storage {shown} cannot be opened ({err}); check that its folder exists "
                         "and is writable") from None


# ---------------------------------------------------------------------------------------------------
# samplers, pruners, counting
def make_sampler(name: str, space: SearchSpace, seed: int, trials: int):
    import optuna

    if name == "grid":  # the same seed in every worker: trial k runs grid point k of one shuffled order
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(4, min(10, trials // 3)),
                                      multivariate=True, constant_liar=True)


def make_pruner(name: str, epochs: int):
    """``median``: stop a trial whose best validation −ELBO so far is worse than the median of completed
    trials at the same epoch (after 4 completed trials and a warm-up of epochs/5); ``hyperband``:
    successive halving brackets from epochs/10 to ``epochs``; ``none``."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=max(1, epochs // 5))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, epochs // 10), max_resource=epochs,
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


def trial_counts(study) -> dict[str, int]:
    """Trials by state; ``finished`` = complete + pruned + failed because of their own settings."""
    from optuna.trial import TrialState

    c = {"complete": 0, "pruned": 0, "failed": 0, "interrupted": 0, "running": 0, "waiting": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            c["complete"] += 1
        elif t.state == TrialState.PRUNED:
            c["pruned"] += 1
        elif t.state == TrialState.FAIL:
            c["failed" if "error" in t.user_attrs else "interrupted"] += 1
        elif t.state == TrialState.RUNNING:
            c["running"] += 1
        elif t.state == TrialState.WAITING:
            c["waiting"] += 1
    c["finished"] = c["complete"] + c["pruned"] + c["failed"]
    return c


# ---------------------------------------------------------------------------------------------------
# one worker: trials until the study has enough
@dataclass
class _Job:
    """Everything a worker needs, as plain (picklable) values."""

    tune_dir: str
    url: str
    study: str
    sampler: str
    pruner: str
    target: int
    metric: str
    iwae_k: int
    seed: int
    space: dict
    base: dict
    epochs: int
    deadline: float | None
    worker: int = 0
    threads: int | None = None
    parent: int | None = None
    quiet: bool = False


def _space_from(job: _Job) -> SearchSpace:
    d = job.space
    return parse_space({**d["fixed"], **d["params"]}, "space")


class _Objective:
    def __init__(self, job: _Job, space: SearchSpace):
        self.job, self.space = job, space
        self.current: int | None = None  # number of the trial in progress
        self.started = lambda: None  # called once the trial exists in the study

    def _say(self, text: str) -> None:
        if not self.job.quiet:
            print(text, flush=True)

    def __call__(self, trial) -> float:
        import optuna

        from .. import api

        job = self.job
        self.current = trial.number
        self.started()  # the trial exists (RUNNING): other workers may count it now
        frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
        origin = frozen.system_attrs.get("failed_trial", trial.number)  # a retry continues its first run
        retry = "failed_trial" in frozen.system_attrs
        rel = f"trials/{origin:04d}"
        run_dir = Path(job.tune_dir) / rel
        trial.set_user_attr("run_dir", rel)
        t0 = time.perf_counter()
        params = self.space.suggest(trial)
        trial.set_user_attr("settings", params)
        record = {"format": "vaekit-trial", "study": job.study, "trial": trial.number, "metric": job.metric,
                  "settings": params}
        best = math.inf
        last = 0

        def on_epoch_end(row: dict) -> None:
            nonlocal best, last
            v = float(row["val_loss"])
            best = min(best, v) if math.isfinite(v) else best
            last = int(row["epoch"])
            trial.report(best if math.isfinite(best) else v, last)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {row['epoch']} (best validation -ELBO so far "
                                         f"{best:.3f} nats)")

        try:
            cfg = make_config({**job.base, **params})
            state_file = run_dir / STATE_JSON
            if retry and state_file.is_file() and (run_dir / STATE_TENSORS).is_file():
                meta = read_tensor_metadata(run_dir / STATE_TENSORS)  # the checkpoint resume will use
                state = json.loads(meta["state"]) if "state" in meta else read_json(state_file)
                for row in _metrics_rows(run_dir, state["epoch"]):  # what the interrupted try reported
                    v = float(row["val_loss"])
                    best = min(best, v) if math.isfinite(v) else best
                    trial.report(best, int(row["epoch"]))
                if state.get("finished"):
                    trained = api.load(run_dir)
                else:
                    trained = api.train(out=run_dir, resume=True, progress=False, report=False,
                                        on_epoch_end=on_epoch_end)
            else:
                trained = api.train(config=cfg, out=run_dir, overwrite=True, progress=False, report=False,
                                    on_epoch_end=on_epoch_end)
            results = read_json(run_dir / "results.json")
            val = results["validation"]
            extras = {"epochs": results["epochs_run"], "best_epoch": results["best_epoch"],
                      "val_elbo": val["elbo"], "val_recon": val["recon"], "val_kl": val["kl"]}
            if job.metric == "val_iwae":
                ev = api.evaluate(trained, split="validation", iwae_k=job.iwae_k, seed=cfg.seed)
                extras["val_iwae"] = ev["neg_iwae"]
            value = float(extras[job.metric])
        except optuna.TrialPruned as pruned:
            epoch = last
            trial.set_user_attr("pruned_at_epoch", epoch)
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
            write_json(run_dir / "trial.json", {**record, "state": "PRUNED", "pruned_at_epoch": epoch})
            self._say(f"trial {trial.number:3d} pruned at epoch {epoch}: {_fmt(params)}")
            raise pruned
        except VaekitError as err:
            trial.set_user_attr("error", str(err))
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
            if run_dir.is_dir():
                write_json(run_dir / "trial.json", {**record, "state": "FAIL", "error": str(err)})
            self._say(f"trial {trial.number:3d} failed: {err}")
            raise
        for k, v in extras.items():
            trial.set_user_attr(k, v)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        write_json(run_dir / "trial.json", {**record, "state": "COMPLETE", "value": value, **extras})
        self._say(f"trial {trial.number:3d} {job.metric} {value:.3f} ({extras['epochs']} epochs): {_fmt(params)}")
        return value

    def requeue(self, study) -> None:
        """Queue the interrupted trial again (same hyperparameters; its run continues from its checkpoint)."""
        from optuna.storages import RetryHeartbeatStaleTrialCallback
        from optuna.trial import TrialState

        number, self.current = self.current, None
        if number is None:
            return
        for t in study.get_trials(deepcopy=False):
            if t.number == number and t.state == TrialState.FAIL and "error" not in t.user_attrs:
                RetryHeartbeatStaleTrialCallback()(study, t)


def _metrics_rows(run_dir: Path, upto: int) -> list[dict]:
    p = run_dir / "metrics.jsonl"
    rows = [json.loads(s) for s in p.read_text().splitlines() if s.strip()] if p.is_file() else []
    return [r for r in rows if r["epoch"] <= upto]


def _fmt(params: dict) -> str:
    def one(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}"
        if isinstance(v, list):
            return ",".join(str(x) for x in v)
        return str(v)

    return " ".join(f"{k}={one(v)}" for k, v in params.items())


def run_worker(job: _Job) -> str:
    """Run trials of the study until it has ``job.target`` finished ones, the deadline passes or the
    parent process is gone; returns why it stopped ('done', 'timeout', 'orphaned')."""
    import optuna
    from optuna.storages import fail_stale_trials

    _quiet_optuna()
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    storage = open_storage(job.url)
    space = _space_from(job)
    study = optuna.load_study(study_name=job.study, storage=storage,
                              sampler=make_sampler(job.sampler, space, job.seed + (0 if job.sampler == "grid"
                                                   else 7919 * (job.worker + 1) + _n_trials(storage, job.study)),
                                                   job.target),
                              pruner=make_pruner(job.pruner, job.epochs))
    objective = _Objective(job, space)
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


def _n_trials(storage, study_name: str) -> int:
    sid = storage.get_study_id_from_name(study_name)
    return storage.get_n_trials(sid)


def _worker_process(job: _Job) -> None:
    """Entry point of a spawned worker: its own process group (the parent forwards Ctrl-C once)."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        run_worker(job)
    except KeyboardInterrupt:
        sys.exit(130)


def _raise_interrupt(signum, frame) -> None:  # noqa: ARG001
    raise KeyboardInterrupt


# ---------------------------------------------------------------------------------------------------
# the command
def tune(data: str | None = None, out: str | os.PathLike | None = None, *, space: Any = None, sampler: str = "tpe",
         trials: int = 20, storage: str | None = None, study: str | None = None, jobs: int = 1,
         timeout: float | None = None, metric: str = "val_elbo", pruner: str = "median",
         allow_partial_grid: bool = False, config: Any = None, epochs: int | None = None, seed: int = 0,
         iwae_k: int = 100, report: bool = True, quiet: bool = False) -> TuneResult:
    """Search hyperparameters of vaekit runs on ``data``; everything is written to the folder ``out``.

    ``space`` is a YAML path, a dict in the same format, or None (the default space); ``trials`` is the
    study's total of finished trials (a rerun continues the study in ``out``). ``metric`` (lower is better,
    nats per example) is what is minimized: ``val_elbo`` (validation −ELBO of the best weights),
    ``val_iwae`` (its IWAE bound with ``iwae_k`` samples, computed once at the end of each trial; pruning
    still watches the per-epoch −ELBO) or ``val_recon``. ``jobs`` > 1 runs that many worker processes.
    Returns a :class:`TuneResult`; writes ``trials.csv``, ``best_config.yaml`` and ``tune_report.html``.
    """
    if out is None:
        raise UsageError("--out TUNE_DIR is needed: the folder that keeps the study, its trials and results")
    if sampler not in SAMPLERS:
        raise UsageError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if pruner not in PRUNERS:
        raise UsageError(f"--pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    if metric not in METRICS:
        raise UsageError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if not 1 <= trials <= 100_000:
        raise UsageError(f"--trials must be between 1 and 100000, got {trials}")
    if not 1 <= jobs <= 256:
        raise UsageError(f"--jobs must be between 1 and 256, got {jobs}")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {timeout}")
    if not 1 <= iwae_k <= 100_000:
        raise UsageError(f"--iwae-k must be between 1 and 100000, got {iwae_k}")
    sp = space if isinstance(space, SearchSpace) else (
        parse_space(space, "space") if isinstance(space, dict) else load_space(space))
    base = dict(load_config_file(config)) if isinstance(config, (str, os.PathLike)) else dict(config or {})
    base.update(sp.fixed)
    for k, v in (("data", data), ("epochs", epochs)):
        if v is not None:
            base[k] = v
    base.setdefault("seed", seed)
    base_cfg = make_config(base)
    if space is None:  # the default space: no KL warm-up longer than the trials' --epochs
        sp = sp.capped_warmup(base_cfg.epochs)
        base.update(sp.fixed)
        base_cfg = make_config(base)
    if base_cfg.semi_supervised:
        raise UsageError("vaekit tune searches unsupervised and conditional runs; drop semi_supervised")
    searched = {p.name for p in sp.params}  # the space wins over --config for what it searches
    base = {k: v for k, v in base_cfg.model_dump().items() if (k in base or k == "data") and k not in searched}
    target = trials
    if sampler == "grid":
        size = sp.check_grid()  # counted, not listed: a space can describe 10^8 points
        if size > trials and not allow_partial_grid:
            raise UsageError(f"the grid has {size} points but --trials is {trials}; raise --trials to {size}, "
                             "shrink the space, or pass --allow-partial-grid to run a random subset")
        target = min(trials, size)
    from ..data import load_source

    load_source(base_cfg.data, image_size=base_cfg.image_size, label_column=base_cfg.label_column)  # fail early

    tune_dir = Path(out)
    name = study or tune_dir.resolve().name
    url = storage or f"sqlite:///{tune_dir / 'study.db'}"
    where = "default (study.db in the tune folder)" if storage is None else _masked(storage)
    _check_tune_dir(tune_dir, name, where)
    if storage is None:
        tune_dir.mkdir(parents=True, exist_ok=True)
    st = open_storage(url)
    tune_dir.mkdir(parents=True, exist_ok=True)
    desc = {"data": base_cfg.data, "metric": metric, "iwae_k": iwae_k if metric == "val_iwae" else None,
            "space": sp.to_dict(), "settings": base}
    desc = json.loads(json.dumps(desc))
    the_study = _study(st, name, desc, where)
    write_json(tune_dir / TUNE_JSON, {"format": "vaekit-tune", "study": name, "storage": where,
                                      "sampler": sampler, "pruner": pruner, "trials": trials, **desc})
    before = trial_counts(the_study)
    job = _Job(tune_dir=str(tune_dir), url=url, study=name, sampler=sampler, pruner=pruner, target=target,
               metric=metric, iwae_k=iwae_k, seed=seed, space=sp.to_dict(), base=base, epochs=base_cfg.epochs,
               deadline=time.time() + timeout if timeout else None, quiet=quiet)
    if not quiet:
        left = max(0, target - before["finished"])
        print(f"study '{name}' in {_masked(url)}: {before['finished']} of {target} trials finished"
              + (f"; running {left} more with {jobs} worker{'s' if jobs > 1 else ''}" if left else ""), flush=True)
    interrupted = False
    why = "done"
    try:
        why = _run_workers(job, jobs) if before["finished"] < target else "done"
    except KeyboardInterrupt:
        interrupted = True
    try:
        from .report import results

        result = results(the_study, tune_dir, name, where, metric, target, sp,
                         figures=report and not interrupted)
    except KeyboardInterrupt:  # while writing the results: the study itself is complete and safe
        interrupted = True
        result = TuneResult(tune_dir, name, where, metric, trial_counts(the_study), target)
    result.interrupted = interrupted
    result.timed_out = why == "timeout"
    return result


def _check_tune_dir(tune_dir: Path, name: str, where: str) -> None:
    if tune_dir.exists() and not tune_dir.is_dir():
        raise UsageError(f"--out {tune_dir} is a file; choose a folder for the search")
    info = tune_dir / TUNE_JSON
    if info.is_file():
        try:
            saved = read_json(info)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UsageError(f"{info} is damaged (not JSON); choose another --out") from None
        if saved.get("study") != name or saved.get("storage") != where:
            raise UsageError(f"{tune_dir} holds study '{saved.get('study')}' in {saved.get('storage')}; "
                             "rerun with the same --study and --storage to continue it, or choose another --out")
    elif tune_dir.is_dir() and any(tune_dir.iterdir()):
        raise UsageError(f"--out {tune_dir} is not empty and is not a vaekit tune folder; choose another --out")


def _study(storage, name: str, desc: dict, where: str):
    import optuna

    s = optuna.create_study(storage=storage, study_name=name, direction="minimize", load_if_exists=True)
    saved = s.user_attrs.get(_ATTR)
    if saved is None:
        if s.trials:
            raise UsageError(f"study '{name}' in {where} was not made by vaekit tune; pass another --study")
        s.set_user_attr(_ATTR, desc)
        return s
    if saved != desc:
        diff = [k for k in desc if saved.get(k) != desc[k]]
        flags = {"data": "--data", "metric": "--metric", "iwae_k": "--iwae-k", "space": "--space",
                 "settings": "fixed settings (--config, --epochs, --seed, fixed space values)"}
        raise UsageError(f"study '{name}' in {where} was started with different "
                         f"{', '.join(flags[k] for k in diff)}; rerun with the same ones to continue it, "
                         "or pass another --study or --out")
    return s


def _run_workers(job: _Job, jobs: int) -> str:
    """``jobs`` = 1: in this process. Otherwise that many spawned worker processes, each with
    cores/jobs torch threads; Ctrl-C or SIGTERM is forwarded once to each, which requeues its trial."""
    import threading

    main = threading.current_thread() is threading.main_thread()  # signal handlers only work there
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main else None
    previous_int = signal.getsignal(signal.SIGINT)
    try:
        if jobs == 1:
            return run_worker(job)
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        procs = []
        for w in range(jobs):
            wjob = _Job(**{**job.__dict__, "worker": w, "threads": max(1, cores // jobs), "parent": os.getpid()})
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
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)
