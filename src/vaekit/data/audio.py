"""Recordings → an ``audio`` :class:`Dataset` of log-mel patches.

A source is one audio file, a folder of them (files at its top: unlabelled; files in subfolders: the
subfolder's name is the label, e.g. the speaker, as for image folders) or a ``.txt`` list of audio paths (one
per line, relative to the list's folder). Each file is read with ``soundfile`` (the optional ``audio``
extra), mixed to mono, resampled to ``sample_rate`` (unset: every clip must already share one rate), turned
into a log-mel spectrogram and cut into ``patch_frames``-frame patches every ``patch_hop`` frames (default:
half a patch).
Examples are ``[1, n_mels, patch_frames]`` in normalised log-mel units (:func:`to_model_scale`); the
spectrogram settings are ``Dataset.audio``, saved in the run's ``config.json["data"]["audio"]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio import dsp
from ..errors import DataError
from ._common import check_memory, one_line
from .dataset import Dataset

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
LIST_SUFFIXES = (".txt",)
#: normalised log-mel = (ln(mel power + LOG_FLOOR) − OFFSET) / SCALE: silence ≈ −1.9, loud speech ≈ +1.5
OFFSET, SCALE = -4.0, 4.0


def settings(sample_rate: int | None, n_mels: int, n_fft: int, hop: int, patch_frames: int,
             split: str = "clips", patch_hop: int | None = None) -> dict[str, Any]:
    """The spectrogram settings of a run (``config.json["data"]["audio"]``). ``split``: "clips" (new runs:
    train/validation/test hold out whole recordings, :func:`clip_split`) or "patches" (runs saved before
    that, whose settings lack the key: patches of one recording in every split). ``patch_hop``: frames between
    training patches (None: half a patch, as runs saved without the key)."""
    return {"sample_rate": sample_rate, "n_mels": n_mels, "n_fft": n_fft, "hop": hop,
            "patch_frames": patch_frames, "mel_scale": "slaney", "power": 2.0, "log_floor": dsp.LOG_FLOOR,
            "offset": OFFSET, "scale": SCALE, "split": split,
            "patch_hop": patch_hop or max(1, patch_frames // 2)}


#: fewer recordings than this cannot fill three splits: their patches are split instead (documented fallback)
MIN_CLIPS_TO_SPLIT = 3


def clip_split(labels: list[int | None], val_fraction: float, test_fraction: float,
               seed: int) -> tuple[list[int], list[int], list[int]] | None:
    """(train, validation, test) recording indices: a seeded permutation of the ``len(labels)`` recordings,
    ``round(fraction × recordings)`` (at least one) held out for validation, then for test, skipping a
    recording whose class would be left without a training recording. None when there are fewer than
    :data:`MIN_CLIPS_TO_SPLIT` recordings or no recording can be held out for validation or for test (the
    caller then splits patches)."""
    n = len(labels)
    if n < MIN_CLIPS_TO_SPLIT:
        return None
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).tolist()
    n_val, n_test = max(1, round(val_fraction * n)), max(1, round(test_fraction * n))
    while n - n_val - n_test < 1:
        n_val, n_test = (n_val - 1, n_test) if n_val >= n_test and n_val > 1 else (n_val, n_test - 1)
    left = {k: labels.count(k) for k in set(labels)}  # recordings of each class still in training
    held: list[list[int]] = [[], []]
    for i in perm:
        part = 0 if len(held[0]) < n_val else 1 if len(held[1]) < n_test else None
        if part is None:
            break
        if labels[i] is not None and left[labels[i]] <= 1:
            continue  # the last training recording of its class stays in training
        held[part].append(i)
        left[labels[i]] -= 1
    if not held[0] or not held[1]:  # e.g. one recording per class: none can be held out
        return None
    out = set(held[0]) | set(held[1])
    return [i for i in range(n) if i not in out], sorted(held[0]), sorted(held[1])


def to_model_scale(lm: torch.Tensor, s: dict) -> torch.Tensor:
    """ln(mel power + floor) → the normalised units examples are in."""
    return (lm - s.get("offset", OFFSET)) / s.get("scale", SCALE)


def from_model_scale(x: torch.Tensor, s: dict) -> torch.Tensor:
    """The inverse of :func:`to_model_scale`."""
    return x * s.get("scale", SCALE) + s.get("offset", OFFSET)


def _soundfile():
    try:
        import soundfile
    except ImportError:  # pragma: no cover - depends on the installation
        raise DataError("audio data needs the soundfile package; install it with pip install 'vaekit[audio]'") \
            from None
    return soundfile


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """(mono float32 samples, sample rate) of one file; unreadable or empty files are one-line errors."""
    sf = _soundfile()
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError, OSError
        raise DataError(one_line(f"cannot read audio {path}: {exc}; remove or replace the file")) from None
    if data.shape[0] == 0:
        raise DataError(f"audio file {path} is empty (no samples); remove it or record something")
    y = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(y).all():
        raise DataError(f"audio file {path} has NaN or infinite samples; remove or replace the file")
    return np.ascontiguousarray(y, dtype=np.float32), int(rate)


def _audio_in(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=_walk_error):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames
                  if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_SUFFIXES]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _walk_error(exc: OSError) -> None:
    raise DataError(one_line(f"cannot read the folder {exc.filename}: {exc.strerror or exc}; make it readable"))


def has_audio(path: Path) -> bool:
    """Whether ``path`` is an audio file, a ``.txt`` list of them, or a folder holding audio files."""
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in AUDIO_SUFFIXES:
            return True
        if suffix in LIST_SUFFIXES:
            try:
                lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()[:1000] if ln.strip()]
            except OSError:
                return False
            return bool(lines) and all(Path(ln).suffix.lower() in AUDIO_SUFFIXES for ln in lines)
        return False
    if path.is_dir():
        try:
            for _, _, filenames in os.walk(path):
                if any(Path(f).suffix.lower() in AUDIO_SUFFIXES for f in filenames):
                    return True
        except OSError:
            return False
    return False


def list_audio(path: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """Audio files of a source with their class indices and class names (subfolders), or None, None."""
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        files = [(path.parent / ln) if not Path(ln).is_absolute() else Path(ln) for ln in lines]
        for f in files:
            if not f.is_file():
                raise DataError(f"{path} lists {f}, which does not exist; fix the list")
        return files, None, None
    if path.is_file():
        return [path], None, None
    files = _audio_in(path)
    if not files:
        raise DataError(f"no audio in {path} (looked for {', '.join(AUDIO_SUFFIXES)}); point at a folder of recordings")
    top = [f for f in files if f.parent == path]
    sub = [f for f in files if f.parent != path]
    if not sub:
        return files, None, None
    if top:
        raise DataError(f"{path} has recordings both at its top ({top[0].name}) and in class subfolders "
                        f"({sub[0].relative_to(path).parts[0]}/); put every file in a class subfolder, or all at "
                        "the top")
    names = sorted({f.relative_to(path).parts[0] for f in sub})
    return sub, [names.index(f.relative_to(path).parts[0]) for f in sub], names


def common_rate(rates: dict[Path, int], sample_rate: int | None) -> int:
    """The rate clips are brought to: ``sample_rate``, else the one rate every clip has (else an error)."""
    if sample_rate is not None:
        return int(sample_rate)
    distinct = sorted(set(rates.values()))
    if len(distinct) > 1:
        first = {r: next(p for p, q in rates.items() if q == r) for r in distinct}
        shown = ", ".join(f"{first[r].name} {r} Hz" for r in distinct[:4])
        raise DataError(f"the recordings have different sample rates ({shown}); pass --sample-rate HZ "
                        "to resample them all to one rate")
    return distinct[0]


def clip_log_mel(y: np.ndarray, rate: int, s: dict) -> torch.Tensor:
    """Normalised log-mel ``[n_mels, frames]`` of a mono clip at ``rate`` Hz, resampled to the settings' rate."""
    y = dsp.resample(y, rate, s["sample_rate"])
    lm = dsp.log_mel(torch.from_numpy(np.ascontiguousarray(y)), s["sample_rate"], s["n_fft"], s["hop"], s["n_mels"])
    return to_model_scale(lm, s)


def patch_starts(frames: int, patch: int, stride: int) -> list[int]:
    """Start frames of ``patch``-frame windows every ``stride`` frames; the last window ends at the last frame."""
    starts = list(range(0, frames - patch + 1, stride))
    if starts and starts[-1] != frames - patch:
        starts.append(frames - patch)
    return starts


def check_long_enough(path: Path | str, frames: int, s: dict) -> None:
    """A clip must hold one patch: refuse a shorter one, saying how long a patch is."""
    if frames < s["patch_frames"]:
        need = (s["patch_frames"] - 1) * s["hop"] / s["sample_rate"]
        have = max(frames - 1, 0) * s["hop"] / s["sample_rate"]
        raise DataError(f"audio {path} lasts {have:.3f} s, shorter than one patch ({s['patch_frames']} frames = "
                        f"{need:.3f} s at hop {s['hop']}, {s['sample_rate']} Hz); use a longer clip or a smaller "
                        "--patch-frames")


def load_audio_source(path: Path, *, name: str, sample_rate: int | None = None, n_mels: int = 64,
                      n_fft: int = 1024, hop: int = 256, patch_frames: int = 32, split: str = "clips",
                      patch_hop: int | None = None) -> Dataset:
    """An ``audio`` Dataset of overlapping log-mel patches ``[N, 1, n_mels, patch_frames]`` from ``path``
    (``Dataset.clips``: the index, in :func:`list_audio`'s order, of the recording each patch is from)."""
    files, labels, classes = list_audio(path)
    clips = {f: read_audio(f) for f in files}
    rate = common_rate({f: r for f, (_, r) in clips.items()}, sample_rate)
    s = settings(rate, n_mels, n_fft, hop, patch_frames, split, patch_hop)
    if n_fft > 4 * rate:
        raise DataError(f"--n-fft {n_fft} is longer than 4 s at {rate} Hz; use a smaller --n-fft")
    stride = s["patch_hop"]
    total = sum(len(y) * rate // r // hop // stride + 1 for y, r in clips.values())
    check_memory(total * n_mels * patch_frames * 4 * 2, f"the log-mel patches of {path}", "use fewer recordings")
    xs, ys, ids = [], [], []
    for i, f in enumerate(files):
        y, r = clips.pop(f)
        lm = clip_log_mel(y, r, s)
        check_long_enough(f, lm.shape[1], s)
        starts = patch_starts(lm.shape[1], patch_frames, stride)
        xs += [lm[:, t: t + patch_frames] for t in starts]
        ids += [i] * len(starts)
        if labels is not None:
            ys += [labels[i]] * len(starts)
    x = torch.stack(xs).unsqueeze(1).contiguous()
    y_t = torch.tensor(ys, dtype=torch.int64) if labels is not None else None
    return Dataset(x=x, y=y_t, kind="audio", name=name, classes=classes, audio=s,
                   clips=torch.tensor(ids, dtype=torch.int64))
