"""Image folders larger than memory (issue 20): ``--mmap`` on a folder of images decodes it once, a chunk of
images at a time, straight into the split-ordered memory-mapped cache of :mod:`vaekit.data.outofcore` (its
writer and external shuffle; the cache is keyed by the image files' paths, sizes and modification times,
``--image-size``, the seed and the split fractions).

The rows are the in-memory loader's (:func:`~vaekit.data.images.load_image_folder`): the same files in the same
order (class subfolders → labels, or flat), each decoded by the same function, so the fingerprint, splits,
batches and trained weights are the same. One rule needs the whole folder: if *any* image is in colour, every
image becomes RGB. The cache is written with the first image's channel count; when a colour image turns up
after grayscale ones, the unfinished cache is dropped and written again as RGB (at most twice the decoding, only
for a folder that mixes both with grayscale first), so nothing ever holds the whole folder.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from . import outofcore
from .images import _read_image, list_image_files, size_error


class _Colour(Exception):
    """A colour image after the cache was started as grayscale: start again with 3 channels."""


def image_source(folder: Path, image_size: int | None
                 ) -> tuple[list[Path], int, dict, Callable[[np.ndarray, Path, Path, Path], dict]]:
    """An image folder for :func:`~vaekit.data.outofcore.load_mapped`: (the image files, which the cache key
    covers; their number; the Dataset's ``y`` and ``classes``; ``write(position, root, data, meta_path)``, which
    decodes the folder into the cache)."""
    files, labels, classes = list_image_files(folder)
    kwargs = {"y": torch.tensor(labels, dtype=torch.int64) if labels is not None else None, "classes": classes}

    def write(position: np.ndarray, root: Path, data: Path, meta_path: Path) -> dict:
        first = _read_image(files[0], image_size)  # [H, W, C]
        channels = first.shape[2]
        while True:
            shape = (channels, first.shape[0], first.shape[1])
            try:
                return outofcore.write_split_ordered(
                    lambda sink: _stream(files, image_size, shape, sink), len(files), shape, "image", folder,
                    position, root, data, meta_path, kwargs)
            except _Colour:
                channels = 3
    return files, len(files), kwargs, write


def _workers() -> int:
    """Threads decoding images: torch's intra-op threads (``--threads``), at most 8."""
    return max(1, min(8, torch.get_num_threads()))


def _decoded(files: list[Path], image_size: int | None, rows: int) -> Iterator[list[np.ndarray]]:
    """The images of ``files`` in order, ``rows`` at a time, decoded on :func:`_workers` threads (PIL releases
    the GIL while it decodes and resizes); a file that cannot be read raises its one-line error in order."""
    workers = _workers()
    if workers == 1:
        for a in range(0, len(files), rows):
            yield [_read_image(p, image_size) for p in files[a:a + rows]]
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="vaekit-decode") as pool:
        for a in range(0, len(files), rows):
            yield list(pool.map(lambda p: _read_image(p, image_size), files[a:a + rows]))


def _stream(files: list[Path], image_size: int | None, shape: tuple[int, int, int],
            sink: Callable[[int, np.ndarray], None]) -> tuple[hashlib._Hash, bool]:
    """Decode every image in order into float32 ``[k, C, H, W]`` chunks of about ``CHUNK_BYTES``, checking
    sizes as the in-memory loader does, handing each chunk to ``sink(first_row, rows)`` and hashing it as
    :meth:`~vaekit.data.dataset.Dataset.fingerprint` hashes ``x``; returns (the hash, whether every value lies
    in [0, 1])."""
    channels, height, width = shape
    n = len(files)
    h = hashlib.sha256()
    h.update(f"x:{np.dtype(np.float32).str}:{[n, *shape]};".encode())
    rows = max(1, outofcore.CHUNK_BYTES // (4 * channels * height * width))
    at, in_unit = 0, True
    for arrays in _decoded(files, image_size, rows):
        for i, a in enumerate(arrays):
            if image_size is None and a.shape[:2] != (height, width):
                raise size_error(files[0], (height, width), files[at + i], a.shape[:2])
            if a.shape[2] == 3 and channels == 1:
                raise _Colour
        chunk = np.stack([np.repeat(a, 3, axis=2) if a.shape[2] != channels else a for a in arrays])
        chunk = np.ascontiguousarray(chunk.transpose(0, 3, 1, 2))  # NHWC → NCHW, as the in-memory loader
        h.update(memoryview(chunk).cast("B"))
        if in_unit and chunk.size:
            in_unit = bool(chunk.min() >= 0) and bool(chunk.max() <= 1)
        sink(at, chunk)
        at += len(chunk)
    return h, in_unit
