"""Sound in and out of an audio run: a clip → patches → the model → one spectrogram → a ``.wav``.

A clip is read like the training data (mono, resampled to the run's rate, normalised log-mel) and cut into
``patch_frames``-frame patches every half patch (the last one ending at the last frame). Decoded patches are
joined by windowed overlap-add in the spectrogram domain (Hann weights, normalised by their sum, so every
frame is a weighted mean of the patches covering it and there is no seam), and the whole spectrogram becomes
one signal by mel → linear least squares and Griffin-Lim (``griffin_lim_iters`` of the run), cut to the
input's length at the run's rate. Conversion decodes a clip's codes under another label of a
label-conditional run; a clip's own label is its folder's name when that is a class of the run, else the
class under which its patches have the highest ELBO.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio import dsp
from ..data.audio import check_long_enough, clip_log_mel, from_model_scale, patch_starts, read_audio
from ..errors import UsageError


def is_audio_run(run: Path) -> bool:
    """Whether ``run`` is a run directory trained on audio (False for anything else: its command then says
    what is wrong in its own words)."""
    from ..runs import read_run_info

    try:
        return read_run_info(Path(run)).get("data", {}).get("kind") == "audio"
    except Exception:  # not a run, damaged config: the ordinary path reports it
        return False


def settings_of(trained) -> dict:
    return trained.info["data"]["audio"]


@dataclass
class Clip:
    """A clip in a run's terms: its normalised log-mel ``[n_mels, frames]``, patches and their start frames,
    and its length in samples at the run's rate."""

    path: Path
    lm: torch.Tensor
    patches: torch.Tensor  # [N, 1, n_mels, patch_frames]
    starts: list[int]
    samples: int


def read_clip(trained, path: str | Path, flag: str = "--data") -> Clip:
    """One recording as the run sees it; one-line errors for a missing, unreadable, empty or short file."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; audio commands take one clip (a .wav, .flac or .ogg file)")
    if not path.is_file():
        raise UsageError(f"{flag} {path}: no such audio file")
    s = settings_of(trained)
    y, rate = read_audio(path)
    lm = clip_log_mel(y, rate, s)
    check_long_enough(path, lm.shape[1], s)
    p = s["patch_frames"]
    starts = patch_starts(lm.shape[1], p, max(1, p // 2))
    patches = torch.stack([lm[:, t: t + p] for t in starts]).unsqueeze(1)
    return Clip(path, lm, patches, starts, math.ceil(len(y) * s["sample_rate"] / rate))


def overlap_add(patches: torch.Tensor, starts: list[int], frames: int) -> torch.Tensor:
    """Patches ``[N, 1, n_mels, P]`` at ``starts`` → ``[n_mels, frames]``, each frame the Hann-weighted mean
    of the patches covering it (a small floor keeps a frame covered by one patch edge defined)."""
    p = patches.shape[-1]
    w = torch.hann_window(p + 2, periodic=False, dtype=torch.float32)[1:-1]
    out = torch.zeros(patches.shape[2], frames)
    weight = torch.zeros(frames)
    for patch, t in zip(patches[:, 0], starts):
        out[:, t: t + p] += patch * w
        weight[t: t + p] += w
    return out / weight.clamp_min(1e-8)


def frames_for(seconds: float, s: dict) -> int:
    return int(round(seconds * s["sample_rate"])) // s["hop"] + 1


def to_sound(trained, lm: torch.Tensor, samples: int, seed: int = 0) -> np.ndarray:
    """A normalised log-mel ``[n_mels, frames]`` → float32 samples at the run's rate (``samples`` long)."""
    s = settings_of(trained)
    y = dsp.log_mel_to_audio(from_model_scale(lm, s), s["sample_rate"], s["n_fft"], s["hop"],
                             trained.config.griffin_lim_iters, length=samples, seed=seed)
    return y.numpy().astype(np.float32)


def wav_bytes(y: np.ndarray, rate: int) -> bytes:
    """16-bit PCM WAV of ``y`` (peaks above 0.99 scaled down rather than clipped)."""
    import soundfile as sf

    peak = float(np.abs(y).max()) if len(y) else 0.0
    if peak > 0.99:
        y = y * (0.99 / peak)
    buf = io.BytesIO()
    sf.write(buf, y, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def write_wav(out: Path, y: np.ndarray, rate: int) -> None:
    """Write ``y`` to ``out`` as a WAV file, atomically."""
    from ..runs import atomic_write_bytes

    atomic_write_bytes(out, wav_bytes(y, rate))


# -- labels -------------------------------------------------------------------------------------------
def own_label(trained, clip: Clip) -> torch.Tensor | None:
    """The condition row of a clip for a label-conditional run (None for unconditional runs): its folder's name
    when that is a class of the run, else the class whose ELBO over the clip's patches is highest."""
    cond = trained.conditioning
    if cond is None:
        return None
    if cond.kind != "label":
        raise UsageError("audio commands take label-conditional runs (subfolder labels), not attribute conditions")
    classes = list(cond.classes or [])
    if clip.path.parent.name in classes:
        return cond.labels([clip.path.parent.name])
    with torch.random.fork_rng():  # one posterior draw per patch: seeded, so a clip always gets the same label
        torch.manual_seed(0)
        scores = [-trained.elbo(clip.patches, c=cond.labels([k]))["elbo"] for k in classes]
    return cond.labels([classes[int(np.argmax(scores))]])


def label_row(trained, label: str | None) -> torch.Tensor | None:
    """The condition row of ``--label`` (refusing a label the run does not know, in one line)."""
    cond = trained.conditioning
    if cond is None:
        if label is not None:
            raise UsageError("this run is not conditional; drop --label (train with --conditional to use labels)")
        return None
    if label is None:
        raise UsageError(f"this run is a conditional VAE: pass --label (one of {', '.join(cond.classes or [])})")
    if label not in (cond.classes or []):
        raise UsageError(f"unknown label {label!r}: the run knows {', '.join(cond.classes or [])}")
    return cond.labels([label])


# -- the commands' work -------------------------------------------------------------------------------
def reconstruct_clip(trained, clip: Clip, label: str | None = None, seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """(samples, normalised log-mel) of the clip through the model; with ``label``, decoded under that label."""
    c = own_label(trained, clip)
    c_out = label_row(trained, label) if label is not None else None
    rec = trained.reconstruct(clip.patches, c=c, c_out=c_out)
    lm = overlap_add(rec, clip.starts, clip.lm.shape[1])
    return to_sound(trained, lm, clip.samples, seed), lm


def sample_clip(trained, seconds: float, c: torch.Tensor | None, temperature: float = 1.0,
                seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """``seconds`` of new sound: one prior draw per patch, patches overlap-added, Griffin-Lim."""
    s = settings_of(trained)
    frames = frames_for(seconds, s)
    p = s["patch_frames"]
    if frames < p:
        patch = (p - 1) * s["hop"] / s["sample_rate"]
        raise UsageError(f"--seconds {seconds:g} is shorter than one patch ({patch:.3f} s); "
                         "ask for more")
    starts = patch_starts(frames, p, max(1, p // 2))
    x = trained.sample(len(starts), temperature=temperature, seed=seed, c=c)
    lm = overlap_add(x, starts, frames)
    return to_sound(trained, lm, int(round(seconds * s["sample_rate"])), seed), lm


def interpolate_clips(trained, a: Clip, b: Clip, seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """A clip morphing from ``a`` to ``b``: patch i decodes (1 − t_i)·z_a[i] + t_i·z_b[i] (t from 0 to 1 over
    the shorter clip's patches; labels of conditional runs blend the same way)."""
    n = min(len(a.starts), len(b.starts))
    ca, cb = own_label(trained, a), own_label(trained, b)
    za = trained.encode(a.patches[:n], c=None if ca is None else ca.repeat(n, 1))
    zb = trained.encode(b.patches[:n], c=None if cb is None else cb.repeat(n, 1))
    t = torch.linspace(0, 1, n)[:, None] if n > 1 else torch.zeros(1, 1)
    c = None if ca is None else (1 - t) * ca + t * cb
    x = trained.decode((1 - t) * za + t * zb, c=c)
    shorter = a if len(a.starts) <= len(b.starts) else b
    lm = overlap_add(x, shorter.starts[:n], shorter.lm.shape[1])
    return to_sound(trained, lm, shorter.samples, seed), lm


def clip_metrics(trained, clip: Clip, seed: int = 0) -> dict[str, Any]:
    """Spectral distance and MCD between a clip (at the run's rate) and its reconstruction, and the
    real-time factor (seconds of encode + decode + Griffin-Lim per second of audio; < 1 = faster than real time)."""
    s = settings_of(trained)
    y, rate = read_audio(clip.path)
    y = torch.from_numpy(dsp.resample(y, rate, s["sample_rate"]).copy())
    start = time.perf_counter()
    rec, lm = reconstruct_clip(trained, clip, seed=seed)
    seconds = time.perf_counter() - start
    ref_lm = from_model_scale(clip.lm, s)
    rec_lm = dsp.log_mel(torch.from_numpy(rec), s["sample_rate"], s["n_fft"], s["hop"], s["n_mels"])
    return {"spectral_distance": dsp.spectral_distance(y, torch.from_numpy(rec)),
            "mcd_db": dsp.mcd(ref_lm, rec_lm),
            "mcd_db_spectrogram": dsp.mcd(ref_lm, from_model_scale(lm, s)),
            "real_time_factor": seconds / (clip.samples / s["sample_rate"]),
            "seconds": clip.samples / s["sample_rate"]}
