"""Tiny synthetic recordings for the audio tests: two "speakers" (subfolders) of tones and chirps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 8000
#: spectrogram settings small enough for 1-3 epoch tests (8-frame patches = 64 ms at hop 64)
TINY = ["--sample-rate", "8000", "--n-mels", "16", "--n-fft", "256", "--hop", "64", "--patch-frames", "8"]


def voice(kind: str, seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """A low harmonic tone ("low") or a rising high chirp ("high"), with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    if kind == "low":
        f0 = 180 + 40 * rng.random()
        y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3))
    else:
        f0 = 1200 + 300 * rng.random()
        y = np.sin(2 * np.pi * (f0 * t + 800 * t ** 2))
    y = 0.3 * y / np.abs(y).max() + 0.003 * rng.standard_normal(len(t))
    return y.astype(np.float32)


def write_speakers(root: Path, clips: int = 3, seconds: float = 0.6) -> Path:
    """``root/low/*.wav`` and ``root/high/*.wav`` (8 kHz mono)."""
    import soundfile as sf

    for kind in ("low", "high"):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(clips):
            sf.write(root / kind / f"{kind}{i}.wav", voice(kind, seconds, seed=i + (100 if kind == "high" else 0)), SR)
    return root
