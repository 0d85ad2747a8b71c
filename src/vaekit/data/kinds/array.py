"""Arrays: ``.npy``/``.npz`` files. A 2-D ``[N, D]`` array is plain feature vectors (kind ``array``, values
used as they are); 3-D/4-D arrays are images (kind ``image``), so loading may hand the data to that kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..dataset import Dataset
from .base import DataKind

ARRAY_SUFFIXES = (".npy", ".npz")


class ArrayKind(DataKind):
    name = "array"
    from_matrix = True

    def claims(self, source: str, path: Path | None) -> bool:
        return path is not None and path.is_file() and path.suffix.lower() in ARRAY_SUFFIXES

    def load(self, source: str, path: Path | None, *, image_size: int | None = None, **_: Any) -> Dataset:
        from ..sources import load_array_file

        return load_array_file(path, image_size=image_size, name=source)
