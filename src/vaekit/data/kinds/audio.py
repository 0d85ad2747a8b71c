"""Audio: recordings (.wav/.flac/.ogg, a folder of them with subfolders as labels, or a .txt list) as
log-mel spectrogram patches ``[N, 1, n_mels, patch_frames]`` (:mod:`vaekit.data.audio`); Gaussian likelihood.
Sound comes back out through :mod:`vaekit.tasks.audio` (Griffin-Lim)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..dataset import Dataset
from .base import DataKind

_KEYS = ("sample_rate", "n_mels", "n_fft", "hop", "patch_frames")


def audio_options(config: Any) -> dict[str, Any]:
    """The spectrogram settings of a new run, as ``load_source``'s ``audio`` option (other kinds ignore it)."""
    return {"audio": {k: getattr(config, k) for k in _KEYS}}


class AudioKind(DataKind):
    name = "audio"
    bernoulli_ok = False
    sound = True
    bernoulli_refusal = "audio examples are log-mel spectrograms"
    loss_note = "losses are on normalised log-mel patches ((ln mel power + 4) / 4)"

    def claims(self, source: str, path: Path | None) -> bool:
        from ..audio import has_audio

        return path is not None and has_audio(path)

    def load(self, source: str, path: Path | None, *, audio: dict | None = None, **_: Any) -> Dataset:
        from ..audio import load_audio_source

        opts = {k: v for k, v in (audio or {}).items() if k in _KEYS}
        return load_audio_source(path, name=source, **opts)

    def load_options(self, config: Any, info: dict) -> dict[str, Any]:
        saved = info.get("data", {}).get("audio")
        return {"audio": dict(saved)} if saved else audio_options(config)
