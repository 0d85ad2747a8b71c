"""Audio: recordings (.wav/.flac/.ogg, a folder of them with subfolders as labels, or a .txt list) as
log-mel spectrogram patches ``[N, 1, n_mels, patch_frames]`` (:mod:`vaekit.data.audio`); Gaussian likelihood.
Sound comes back out through :mod:`vaekit.tasks.audio` (Griffin-Lim)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..dataset import Dataset, Split, split_dataset
from .base import DataKind

_KEYS = ("sample_rate", "n_mels", "n_fft", "hop", "patch_frames", "patch_hop")


def audio_options(config: Any) -> dict[str, Any]:
    """The spectrogram settings of a new run, as ``load_source``'s ``audio`` option (other kinds ignore it)."""
    return {"audio": {**{k: getattr(config, k) for k in _KEYS}, "split": "clips"}}


def clip_labels(ds: Dataset) -> list[int | None]:
    """The label of each recording of an audio Dataset (None each when unlabelled)."""
    assert ds.clips is not None
    n = int(ds.clips.max()) + 1 if len(ds.clips) else 0
    first = [int((ds.clips == i).nonzero()[0, 0]) for i in range(n)]
    return [None if ds.y is None else int(ds.y[j]) for j in first]


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

        opts = {k: v for k, v in (audio or {}).items() if k in _KEYS + ("split",)}
        return load_audio_source(path, name=source, **opts)

    def load_options(self, config: Any, info: dict) -> dict[str, Any]:
        saved = info.get("data", {}).get("audio")
        # runs saved before the split by recordings have no "split": theirs stays the split of patches
        return {"audio": {"split": "patches", **saved}} if saved else audio_options(config)

    def split(self, ds: Dataset, config: Any) -> tuple[Split, Split, Split]:
        """Whole recordings held out (seeded, :func:`vaekit.data.audio.clip_split`): no clip's patches are in
        two splits. Fewer than 3 recordings, or a run saved before this split: a seeded split of patches."""
        from ..audio import clip_split

        parts = None
        if ds.clips is not None and (ds.audio or {}).get("split", "patches") == "clips":
            parts = clip_split(clip_labels(ds), config.val_fraction, config.test_fraction, config.seed)
        if parts is None:
            return split_dataset(ds, val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                                 seed=config.seed)
        train, val, test = (self._take(ds, ids) for ids in parts)
        return train, val, test

    @staticmethod
    def _take(ds: Dataset, ids: list[int]) -> Split:
        rows = torch.isin(ds.clips, torch.tensor(ids, dtype=torch.int64)).nonzero()[:, 0]
        return Split(x=ds.x[rows], y=None if ds.y is None else ds.y[rows])
