"""The database that keeps a ``vaekit tune`` study: opening Optuna's RDB storage (with the heartbeat that
finds dead workers), creating or re-opening the vaekit study in it, and counting its trials by state.

Optuna is imported inside functions (``vaekit --help`` stays fast).
"""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import UsageError

HEARTBEAT_S = 5  # a running trial's worker writes a heartbeat this often...
GRACE_S = 30  # ...and one silent for this long is taken as dead: FAIL, and queued again
STUDY_ATTR = "vaekit"  # study user attribute describing the objective (data, metric, space, fixed settings)


def mask_url(url: str) -> str:
    """``url`` as it may be shown: a password in it is replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        return url if u.password is None else u.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL is shown as given (it holds no parsed password)
        return url


def quiet_optuna() -> None:
    """Silence Optuna's info logging and its experimental/future warnings (vaekit prints its own lines)."""
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

    quiet_optuna()
    shown = mask_url(url)
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


def open_study(storage, name: str, desc: dict, where: str, direction: str = "minimize"):
    """Create the study ``name`` (``direction``: minimizing, or maximizing for a higher-is-better metric)
    described by ``desc``, or re-open it if it was started with the same description; a study made by
    something else, or with other settings, is refused in one line."""
    import optuna

    s = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True)
    saved = s.user_attrs.get(STUDY_ATTR)
    if saved is None:
        if s.trials:
            raise UsageError(f"study '{name}' in {where} was not made by vaekit tune; pass another --study")
        s.set_user_attr(STUDY_ATTR, desc)
        return s
    if saved != desc:
        diff = [k for k in desc if saved.get(k) != desc[k]]
        flags = {"data": "--data", "metric": "--metric", "iwae_k": "--iwae-k", "space": "--space",
                 "settings": "fixed settings (--config, --epochs, --seed, fixed space values)"}
        raise UsageError(f"study '{name}' in {where} was started with different "
                         f"{', '.join(flags[k] for k in diff)}; rerun with the same ones to continue it, "
                         "or pass another --study or --out")
    return s


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


def n_trials(storage, study_name: str) -> int:
    """How many trials the study holds, in any state."""
    sid = storage.get_study_id_from_name(study_name)
    return storage.get_n_trials(sid)
