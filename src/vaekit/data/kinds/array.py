"""Arrays: ``.npy``/``.npz`` files and folders of them (shards). A 2-D ``[N, D]`` array is plain feature vectors (kind ``array``, values
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
        from ..outofcore import is_shard_folder

        return path is not None and (path.is_file() and path.suffix.lower() in ARRAY_SUFFIXES
                                     or is_shard_folder(path))

    def load(self, source: str, path: Path | None, *, image_size: int | None = None,
             mmap_plan: tuple[int, float, float] | None = None, cache_dir: Any = None, **_: Any) -> Dataset:
        """One file, or a folder of shards (concatenated in name order); with ``mmap_plan`` (seed, validation
        and test fractions: ``--mmap``) a split-ordered memory map instead (vaekit.data.outofcore)."""
        from ..outofcore import is_shard_folder, load_mapped, load_shards
        from ..sources import load_array_file

        if mmap_plan is not None:
            return load_mapped(path, plan=mmap_plan, cache_dir=cache_dir, image_size=image_size, name=source)
        if is_shard_folder(path):
            return load_shards(path, image_size=image_size, name=source)
        return load_array_file(path, image_size=image_size, name=source)
