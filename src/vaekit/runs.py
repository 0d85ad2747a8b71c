"""The run directory, vaekit's unit of persistence, and atomic writes.

Layout of a run directory (stable: users' scripts rely on it)::

    config.json            full validated config, data description and fingerprint, versions
    model.safetensors      model weights (the best so far during training; the best at the end)
    metrics.jsonl          one JSON object per epoch
    trainer_state.json     resume state: epoch, early-stopping counters, optimizer/scheduler scalars
    trainer_state.safetensors  resume state: model/optimizer/best tensors and RNG states
    results.json           train/validation/test −ELBO, reconstruction and KL (nats per example)
    samples.png, reconstructions.png   figures (image data)

Every file is written to a temporary file in the same folder and renamed into place, so a crash
never leaves a half-written checkpoint or result. Nothing here unpickles: weights and tensors are
safetensors, everything else is JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (atomic on POSIX)."""
    path = Path(path)
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


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


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

    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise RunError(f"{path} is not a readable safetensors file ({str(err).splitlines()[0]}); "
                       "retrain or restore the file") from None
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

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as err:
        raise RunError(f"{path} is not a readable safetensors file ({str(err).splitlines()[0]}); "
                       "retrain or restore the file") from None


def read_run_info(run_dir: str | os.PathLike) -> dict:
    """The parsed ``config.json`` of a vaekit run, or a :class:`RunError` saying why it is not one."""
    run = Path(run_dir)
    if not run.exists():
        raise RunError(f"run directory not found: {run} (train one with `vaekit train --out {run}`)")
    if not run.is_dir():
        raise RunError(f"{run} is a file, not a run directory; pass the folder `vaekit train --out` wrote")
    cfg = run / CONFIG
    if not cfg.is_file():
        raise RunError(f"{run} is not a vaekit run (no {CONFIG}); pass the folder `vaekit train --out` wrote")
    try:
        info = read_json(cfg)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunError(f"{cfg} is not valid JSON; the run is damaged, retrain it") from None
    if not isinstance(info, dict) or info.get("format") != "vaekit-run" or "config" not in info:
        raise RunError(f"{run} is not a vaekit run ({CONFIG} was not written by vaekit)")
    return info


def is_run(run_dir: str | os.PathLike) -> bool:
    try:
        read_run_info(run_dir)
        return True
    except RunError:
        return False
