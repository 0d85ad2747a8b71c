"""Preparing a run directory for writing: what ``--overwrite`` may replace and removes, and what
``--resume`` finds (temporary files of killed writes, a damaged or finished checkpoint).

Split out of :mod:`vaekit.runs` (the layout, atomic writes and the writer's lock), which it builds on;
``vaekit.runs`` re-exports :func:`claim_run_dir`, :func:`prepare_run_dir`, :func:`has_checkpoint` and
:func:`remove_temp_files`, so ``from vaekit.runs import ...`` keeps working.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

from .errors import RunError
from .runs import (CARD_FILES, CONFIG, LOCK, RUN_DIRS, RUN_FILES, STATE_JSON, STATE_TENSORS, is_vaekit_card,
                   lock_run, read_json, read_run_info, read_tensor_metadata, regular_file, write_json)


def _is_temp_of(name: str, known: tuple[str, ...]) -> bool:
    """``.NAME.XXXXXXXX.tmp``, the temporary file :func:`atomic_write_bytes` makes for NAME."""
    return name.endswith(".tmp") and any(name.startswith(f".{k}.") for k in known)


def remove_temp_files(run_dir: str | os.PathLike) -> list[str]:
    """Remove temporary files of interrupted atomic writes (a kill -9 mid-write leaves one); call it with
    the run's lock held. Returns the names removed."""
    removed = []
    for p in Path(run_dir).iterdir():
        if _is_temp_of(p.name, RUN_FILES) and not p.is_dir():
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


def _users_card(path: Path) -> bool:
    """A README.md / MODEL_CARD.md that vaekit did not write (no :data:`~vaekit.runs.CARD_MARK`): the user's."""
    return path.name in CARD_FILES and os.path.lexists(path) and not is_vaekit_card(path)


def _foreign(run: Path) -> list[str]:
    """Names in ``run`` that vaekit did not write (sorted)."""
    return sorted(p.name for p in run.iterdir()
                  if p.name != LOCK and (p.name not in RUN_FILES or _users_card(p))
                  and not (p.name in RUN_DIRS and p.is_dir() and not p.is_symlink())
                  and not _is_temp_of(p.name, RUN_FILES))


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` training may not write into (read-only: nothing is changed here)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise RunError(f"--out {out} is a file; choose a folder path for the run")
    if not any(p.name != LOCK for p in out.iterdir()):
        return
    if not overwrite:
        raise RunError(f"run directory {out} already exists; pass --overwrite to replace it, "
                       "--resume to continue it, or choose another --out")
    try:
        read_run_info(out)
    except RunError:
        raise RunError(f"--overwrite refused: {out} is not empty and is not a vaekit run; "
                       "choose another --out") from None
    for name in RUN_FILES:
        if name not in CARD_FILES and (out / name).is_dir():
            raise RunError(f"--overwrite refused: {out / name} is a folder where vaekit writes a file; "
                           "move it away or choose another --out")


def claim_run_dir(out: str | os.PathLike, overwrite: bool, held: contextlib.ExitStack,
                  purpose: str = "train") -> None:
    """Make ``out`` ready for a new run and hold its lock in ``held``.

    A missing or empty folder is used as it is; an existing run only with ``overwrite``, which removes the
    files vaekit wrote (:data:`RUN_FILES` and their temporary files; a README.md only when it is vaekit's
    model card) and keeps everything else, saying so
    on stderr (a data file or notes beside the run stay valid). A folder that is not a run is refused.
    """
    out = Path(out)
    _check_out(out, overwrite)  # before anything is created in a folder that is not ours
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create the run directory {out} ({err.strerror}); choose another --out") from None
    held.enter_context(lock_run(out, purpose))
    _check_out(out, overwrite)  # again under the lock: another process may have written it meanwhile
    if not overwrite:
        return
    kept = _foreign(out)
    remove_temp_files(out)
    for name in RUN_FILES:
        if not _users_card(out / name):  # a README.md without vaekit's mark is the user's: kept
            (out / name).unlink(missing_ok=True)
    for name in RUN_DIRS:  # --log's folders; a file or symlink of that name is not vaekit's: kept
        if (out / name).is_dir() and not (out / name).is_symlink():
            shutil.rmtree(out / name)
    if kept:
        shown = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
        print(f"note: --overwrite replaced the run in {out} and kept what vaekit did not write: {shown}",
              file=sys.stderr, flush=True)


def prepare_run_dir(out: str | os.PathLike, overwrite: bool, info: dict,
                    held: contextlib.ExitStack | None = None) -> None:
    """Create (or, with ``overwrite``, replace) the run directory and write its ``config.json``. The lock
    stays held in ``held`` when given (the caller goes on writing), else it is released on return."""
    with contextlib.ExitStack() as own:
        claim_run_dir(out, overwrite, held if held is not None else own)
        write_json(Path(out) / CONFIG, info)


def has_checkpoint(run: Path) -> bool:
    """Whether ``run`` holds a checkpoint to resume from (False: it stopped before its first epoch ended);
    a :class:`RunError` for a finished run or a damaged checkpoint. Call it with the run's lock held: it
    removes temporary files left by a write that was killed."""
    remove_temp_files(run)
    tensors, state_json = regular_file(run / STATE_TENSORS), regular_file(run / STATE_JSON)
    if not tensors and not state_json:
        return False
    damaged = f"{run}'s checkpoint is damaged ({STATE_TENSORS} %s); start it again with --overwrite"
    if not tensors:
        raise RunError(damaged % "is missing")
    meta = read_tensor_metadata(run / STATE_TENSORS)
    if not state_json and "state" not in meta:
        raise RunError(damaged % f"holds no state and {STATE_JSON} is missing")
    states = []  # the metadata is the checkpoint resume uses; semi-supervised runs mark "finished" in the JSON only
    with contextlib.suppress(ValueError):
        states.append(json.loads(meta.get("state", "null")))
    if state_json:
        with contextlib.suppress(ValueError):
            states.append(read_json(run / STATE_JSON))
    states = [s for s in states if isinstance(s, dict)]
    if not states:
        raise RunError(damaged % f"holds no state and {STATE_JSON} is unreadable")
    if any(s.get("finished") for s in states):
        raise RunError(f"{run} has already finished training; nothing to resume "
                       "(use --overwrite to train it again, or another --out)")
    return True
