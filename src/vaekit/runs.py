"""The run directory, vaekit's unit of persistence, and atomic writes.

Layout of a run directory (stable: users' scripts rely on it)::

    config.json            full validated config, data description and fingerprint, versions
    model.safetensors      model weights (the best so far during training; the best at the end)
    metrics.jsonl          one JSON object per epoch
    trainer_state.json     resume state: epoch, early-stopping counters, optimizer/scheduler scalars
    trainer_state.safetensors  resume state: model/optimizer/best tensors and RNG states
    results.json           train/validation/test −ELBO, reconstruction and KL (nats per example)
    samples.png, reconstructions.png   figures (image data)
    evaluation.json, report.html, classes.png, denoising.png, probe.json, trial.json   (see RUN_FILES)
    gmm_samplers.safetensors   `sample --sampler gmm:K`'s fitted mixtures (vaekit.samplers)
    README.md              the model card (first line CARD_MARK; MODEL_CARD.md when README.md is the user's)
    tensorboard/, mlruns/  train --log tensorboard / --log mlflow (vaekit.tracking; see RUN_DIRS)
    .vaekit.lock           the writer's lock (PID inside); see :func:`lock_run`

Every file is written to a temporary file in the same folder (``.NAME.XXXXXXXX.tmp``) and renamed into
place, so a crash never leaves a half-written checkpoint or result. A process writing a run holds an OS
lock on ``.vaekit.lock`` (:func:`lock_run`), so two writers never interleave. ``--overwrite`` removes only
the files named in :data:`RUN_FILES` (and their temporary files) and the folders in :data:`RUN_DIRS`;
anything else in the folder stays (:mod:`vaekit.runprep`: preparing a run directory for --overwrite and --resume).
Nothing here unpickles: weights and tensors are safetensors, everything else is JSON.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import RunError

RUN_FORMAT = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
METRICS = "metrics.jsonl"
STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
RESULTS = "results.json"
EVALUATION = "evaluation.json"
LOCK = ".vaekit.lock"
CARD = "README.md"  # the model card (vaekit.evaluation.model_card)
CARD_FALLBACK = "MODEL_CARD.md"  # where the card goes when the folder holds a README.md of the user's
#: the card's first line; a README.md is vaekit's (--overwrite may remove it, a new card replace it) only with it
CARD_MARK = "<!-- written by vaekit: model card -->"
CARD_FILES = (CARD, CARD_FALLBACK)  # in RUN_FILES, but removed or replaced only when they carry CARD_MARK
# Every file vaekit writes into a run directory (train, semi-supervised train, evaluate, report, probe,
# tune's trial.json, VAE.save). ``--overwrite`` removes exactly these (and their temporary files), the card
# files (CARD_FILES) only when they carry its mark (:func:`is_vaekit_card`).
RUN_FILES = (CONFIG, WEIGHTS, METRICS, STATE_JSON, STATE_TENSORS, RESULTS, EVALUATION, "report.html",
             "samples.png", "reconstructions.png", "classes.png", "denoising.png", "probe.json", "trial.json",
             CARD, CARD_FALLBACK, "gmm_samplers.safetensors")
# The folders vaekit writes into a run directory (--log: TensorBoard's event files, MLflow's default file
# store); ``--overwrite`` removes them with the files of RUN_FILES.
RUN_DIRS = ("tensorboard", "mlruns", "report_assets")  # report_assets: an audio run's .wav clips


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (atomic on POSIX). An OSError
    (read-only folder, full disk) names ``path``, not the temporary file (a full disk names no file at all)."""
    path = Path(path)
    try:
        _atomic_write(path, data)
    except OSError as err:
        if err.filename is None or os.path.basename(str(err.filename)).startswith(f".{path.name}."):
            err.filename, err.filename2 = str(path), None
        raise


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def is_vaekit_card(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a model card vaekit wrote: a regular file (not a symlink) whose first line is
    :data:`CARD_MARK`. Only its first bytes are read; anything else (missing, a folder, a FIFO) is False."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open(path, "rb") as f:
            head = f.read(len(CARD_MARK.encode()) + 2)
    except OSError:
        return False
    return head.decode("utf-8", "replace").splitlines()[:1] == [CARD_MARK]


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±inf) replaced by None (JSON ``null``).

    Standard JSON has no NaN or Infinity; Python's ``json`` would write them as bare ``NaN``/``Infinity``,
    which strict parsers (browsers, ``jq``, other languages) reject. vaekit writes ``null`` instead.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def json_text(obj: Any, indent: int | None = None) -> str:
    """Standard JSON text of ``obj`` (non-finite floats become ``null``, see :func:`finite_json`)."""
    return json.dumps(finite_json(obj), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as standard, indented JSON (NaN/±inf as ``null``), atomically."""
    atomic_write_text(path, json_text(obj, indent=2) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    regular_file(path)  # a FIFO would block the read
    return json.loads(Path(path).read_text())


_KINDS = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def regular_file(path: str | os.PathLike) -> bool:
    """True for a regular file (symlinks followed), False when nothing is there; a :class:`RunError` for
    anything else. Only ``stat`` is used: opening a FIFO for reading would block until a writer comes."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as err:
        raise RunError(f"cannot read {path} ({err.strerror})") from None
    if stat.S_ISREG(mode):
        return True
    kind = next((name for test, name in _KINDS if test(mode)), "special file")
    raise RunError(f"{path} is not a regular file (it is a {kind}); vaekit does not read it: "
                   "restore the file or retrain the run")


PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib")
NEVER_UNPICKLES = "vaekit never unpickles a file (unpickling runs whatever code the file holds)"


def pickle_kind(path: str | os.PathLike) -> str | None:
    """What ``path`` looks like when it is a pickle (``torch.save`` writes a zip archive of pickles; plain
    ``pickle`` protocol 2+ starts with byte 0x80), from its first bytes or its name; None otherwise. Only for
    explaining a refusal: call it after the file failed to read as safetensors (whose first byte may be 0x80)."""
    head = b""
    with contextlib.suppress(OSError, RunError):
        if regular_file(path):
            with open(path, "rb") as f:
                head = f.read(4)
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (the format torch.save writes: pickles inside)"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return f"a Python pickle (protocol {head[1]})"
    if Path(path).suffix.lower() in PICKLE_SUFFIXES:
        return f"a {Path(path).suffix} file (PyTorch/pickle checkpoints use that name)"
    return None


def _unreadable_tensors(path: str | os.PathLike, err: Exception) -> RunError:
    """The one-line refusal of a weights/state file safetensors could not read, naming a pickle as such."""
    what = pickle_kind(path)
    if what is not None:
        return RunError(f"{path} is {what}, not safetensors; {NEVER_UNPICKLES}: restore the run's safetensors file "
                        "or retrain the run")
    return RunError(f"{path} is not a readable safetensors file ({str(err).splitlines()[0]}); "
                    "retrain or restore the file")


def save_tensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Save a flat dict of tensors as safetensors, atomically."""
    from safetensors.torch import save

    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, save(flat, metadata=metadata))


def load_tensors(path: str | os.PathLike) -> dict:
    """Read a safetensors file into CPU tensors (no code runs, nothing is unpickled).

    A floating tensor holding NaN or infinite values is refused (training never saves one: its non-finite
    guard keeps the last good checkpoint), so damaged weights cannot silently give NaN samples and scores."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not regular_file(path):
        raise RunError(f"{path} is missing; retrain or restore the file")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise _unreadable_tensors(path, err) from None
    import torch

    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise RunError(f"{path} holds {bad} NaN or infinite value(s) in {name!r}; the weights are damaged, "
                           "retrain the run or restore the file")
    return tensors


def read_tensor_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a safetensors file (empty when it has none)."""
    from safetensors import SafetensorError, safe_open

    if not regular_file(path):
        raise RunError(f"{path} is missing; retrain or restore the file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as err:
        raise _unreadable_tensors(path, err) from None


def read_run_info(run_dir: str | os.PathLike) -> dict:
    """The parsed ``config.json`` of a vaekit run, or a :class:`RunError` saying why it is not one."""
    run = Path(run_dir)
    if not run.exists():
        raise RunError(f"run directory not found: {run} (train one with `vaekit train --out {run}`)")
    if not run.is_dir():
        what = pickle_kind(run)
        if what is not None:
            raise RunError(f"{run} is {what}; {NEVER_UNPICKLES}: pass a vaekit run directory "
                           f"({CONFIG} + {WEIGHTS}), the folder `vaekit train --out` wrote")
        raise RunError(f"{run} is a file, not a run directory; pass the folder `vaekit train --out` wrote")
    cfg = run / CONFIG
    if not regular_file(cfg):
        raise RunError(f"{run} is not a vaekit run (no {CONFIG}); pass the folder `vaekit train --out` wrote")
    try:
        info = read_json(cfg)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunError(f"{cfg} is not valid JSON; the run is damaged, retrain it") from None
    except RecursionError:
        raise RunError(f"{cfg} is damaged: it is nested too deeply to read; retrain the run") from None
    if not isinstance(info, dict) or info.get("format") != "vaekit-run" or "config" not in info:
        raise RunError(f"{run} is not a vaekit run ({CONFIG} was not written by vaekit)")
    return info


def is_run(run_dir: str | os.PathLike) -> bool:
    try:
        read_run_info(run_dir)
        return True
    except RunError:
        return False


# -- the writer's lock ------------------------------------------------------------------------------
# One OS lock (flock) per run directory, held by the process writing it. The kernel drops the lock
# when its process ends, however it ends, so a lock file left by a killed process is simply free. The
# file itself stays (unlinking a lock file races with a process about to lock it) and holds the
# holder's PID and command, for the error message of the next writer. Within a process the lock is
# re-entrant per thread (train → report → evaluation.json take it in turn).
_held: dict[tuple[str, int], list] = {}  # (real path, thread id) -> [fd, depth]
_held_guard = threading.Lock()


def _writable(folder: Path) -> bool:
    """Whether this process may create files in ``folder`` (read-only mounts and permissions)."""
    return os.access(folder, os.W_OK | os.X_OK)


def write_problem(run_dir: str | os.PathLike) -> str | None:
    """Why vaekit cannot write into ``run_dir`` right now (read-only, or another process holds its lock), or
    None. Commands call it before a long computation, so its results are not lost at the write."""
    run = Path(run_dir)
    if not _writable(run):
        return f"{run} is read-only"
    try:
        with lock_run(run, "check"):
            return None
    except RunError as err:
        return str(err).split(";")[0]


def lock_run(run_dir: str | os.PathLike, purpose: str = "write") -> contextlib.AbstractContextManager[None]:
    """Hold ``run_dir``'s writer lock for the ``with`` block; a :class:`RunError` naming the holder's PID when
    another process holds it, or when the folder is not writable. ``purpose`` (train, report...) is
    recorded for that message."""
    return _lock_run(Path(run_dir), purpose)


@contextlib.contextmanager
def _lock_run(run: Path, purpose: str) -> Iterator[None]:
    key = (os.path.realpath(run), threading.get_ident())
    with _held_guard:
        if key in _held:
            _held[key][1] += 1
            entered = True
        else:
            entered = False
    if entered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key][1] -= 1
        return
    fd = _acquire(run, purpose)
    with _held_guard:
        _held[key] = [fd, 1]
    try:
        yield
    finally:
        with _held_guard:
            del _held[key]
        os.close(fd)  # releases the flock


def _acquire(run: Path, purpose: str) -> int:
    if not run.is_dir():
        raise RunError(f"run directory not found: {run}")
    if not _writable(run):
        raise RunError(f"cannot write into {run}: the folder is read-only; copy the run to a writable folder "
                       "or make it writable")
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        return os.open(os.devnull, os.O_RDONLY)
    flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:  # never through a symlink (the file is truncated), never blocking (a FIFO in its place)
        fd = os.open(run / LOCK, flags, 0o666)
    except OSError as err:
        raise RunError(f"cannot write into {run} ({err.strerror} opening {LOCK}); make the folder writable, "
                       f"or remove {run / LOCK} if it is not a plain file") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunError(f"{run / LOCK} is not a regular file; remove it and try again")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
        os.close(fd)
        who = f"PID {holder[0]}" + (f", {' '.join(holder[1:4])}" if len(holder) > 1 else "") if holder else "PID unknown"
        raise RunError(f"{run} is in use by another vaekit process ({who}); wait for it to finish or stop "
                       "it, then try again") from None
    except OSError:  # a file system without flock (some network mounts): write unlocked, as before
        pass
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {purpose}\n".encode(), 0)
    return fd


# -- what --overwrite and --resume clean up: in runprep.py, re-exported here ---------------------------
#: names defined in :mod:`vaekit.runprep` that stay importable from here (``from vaekit.runs import X``)
MOVED_TO_RUNPREP = ("claim_run_dir", "has_checkpoint", "prepare_run_dir", "remove_temp_files")


def __getattr__(name: str) -> Any:
    """The names of :data:`MOVED_TO_RUNPREP`, imported on first use: runprep builds on this module, so it
    cannot be imported at the top of it."""
    if name in MOVED_TO_RUNPREP:
        from . import runprep

        return getattr(runprep, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def save_json_into_run(run_dir: str | os.PathLike, name: str, obj: Any) -> str | None:
    """Write ``run_dir/name`` under the run's lock; the reason it could not be saved, or None."""
    try:
        with lock_run(run_dir, name):
            write_json(Path(run_dir) / name, obj)
    except RunError as err:
        return str(err).split(";")[0]
    except OSError as err:
        return f"{err.strerror or err} writing {Path(run_dir) / name}"
    return None
