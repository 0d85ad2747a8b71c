"""Images: built-in datasets (digits, Fashion-MNIST, MNIST) and folders of image files (subfolders = classes),
as ``[N, C, H, W]`` in [0, 1]; Bernoulli by default; outputs as PNG grids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..dataset import Dataset
from .base import DataKind


class ImageKind(DataKind):
    name = "image"
    pictures = True

    def claims(self, source: str, path: Path | None) -> bool:
        from ..builtin import BUILTIN_NAMES

        from ..outofcore import is_shard_folder

        return (path is None and source.strip().lower() in BUILTIN_NAMES) or (
            path is not None and path.is_dir() and not is_shard_folder(path))

    def load(self, source: str, path: Path | None, *, image_size: int | None = None, cache_dir: Any = None,
             download: bool = True, mmap_plan: tuple[int, float, float] | None = None, **_: Any) -> Dataset:
        """A built-in dataset or a folder of images; a folder with ``mmap_plan`` (seed, validation and test
        fractions: ``--mmap``) is decoded once into a split-ordered memory map (vaekit.data.outofcore_images)."""
        from .._common import resize_images
        from ..builtin import load_builtin
        from ..images import load_image_folder

        if path is not None and mmap_plan is not None:
            from ..outofcore import load_mapped

            return load_mapped(path, plan=mmap_plan, cache_dir=cache_dir, image_size=image_size, name=source)
        if path is not None:
            return load_image_folder(path, image_size=image_size, name=source)
        ds = load_builtin(source.strip().lower(), cache_dir=cache_dir, download=download)
        if image_size is not None:
            ds.x = resize_images(ds.x, image_size)
            if ds.test_x is not None:
                ds.test_x = resize_images(ds.test_x, image_size)
        return ds

    def _write_png(self, arr: np.ndarray, out: Path) -> None:
        from ...evaluation.figures import save_image_grid

        save_image_grid(arr, out)

    def write_pairs(self, inputs: Any, outputs: Any, out: Path, columns: list[str] | None = None,
                    schema: list[dict] | None = None) -> None:
        if out.suffix.lower() == ".png":
            from ...evaluation.figures import save_pairs

            save_pairs(inputs, outputs, out)
        else:
            self.write(outputs, out, columns, schema)

