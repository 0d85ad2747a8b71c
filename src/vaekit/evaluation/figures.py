"""Pictures of images: grids of samples and input/reconstruction pairs, written as PNG atomically."""

from __future__ import annotations

import io
import math
import os

import numpy as np
import torch

from ..runs import atomic_write_bytes


def image_grid(images: torch.Tensor | np.ndarray, ncol: int = 8, pad: int = 2, min_tile: int = 32) -> np.ndarray:
    """Tile ``[N, C, H, W]`` images in [0, 1] into one uint8 array ``[H', W', C]`` (C = 1 or 3).

    Small images are enlarged by an integer factor (nearest neighbour) so tiles are at least
    ``min_tile`` pixels high; tiles are separated by ``pad`` white pixels.
    """
    x = images.detach().cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"image_grid needs [N, C, H, W] images, got shape {x.shape}")
    n, c, h, w = x.shape
    if c not in (1, 3):
        x, c = x[:, :1], 1
    scale = max(1, math.ceil(min_tile / h))
    x = np.clip(x, 0.0, 1.0).repeat(scale, axis=2).repeat(scale, axis=3)
    h, w = h * scale, w * scale
    ncol = max(1, min(ncol, n))
    nrow = math.ceil(n / ncol)
    grid = np.ones((c, nrow * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top: top + h, left: left + w] = x[i]
    return (grid.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)


def grid_png(images: torch.Tensor | np.ndarray, ncol: int = 8) -> bytes:
    """PNG bytes of ``[N, C, H, W]`` images in [0, 1] tiled into one grid."""
    from PIL import Image

    arr = image_grid(images, ncol=ncol)
    img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_image_grid(images: torch.Tensor | np.ndarray, path: str | os.PathLike, ncol: int = 8) -> None:
    """Write ``[N, C, H, W]`` images in [0, 1] as one PNG grid."""
    atomic_write_bytes(path, grid_png(images, ncol))


def stacked_rows(groups: list[torch.Tensor], ncol: int = 8) -> tuple[torch.Tensor, int]:
    """Images arranged in blocks: a row of ``groups[0][i:i+ncol]``, then the same examples from each later
    group (e.g. input / reconstruction, or noisy / denoised / clean). Returns the images and the column count."""
    n = min(len(g) for g in groups)
    ncol = max(1, min(ncol, n))
    rows = []
    for i in range(0, n - n % ncol if n >= ncol else n, ncol):
        rows += [g[i: i + ncol].cpu() for g in groups]
    return torch.cat(rows), ncol


def pairs(originals: torch.Tensor, reconstructions: torch.Tensor, ncol: int = 8) -> tuple[torch.Tensor, int]:
    """Images arranged so each row of inputs is followed by the row of their reconstructions."""
    return stacked_rows([originals, reconstructions], ncol)


def save_pairs(originals: torch.Tensor, reconstructions: torch.Tensor, path: str | os.PathLike,
               ncol: int = 8) -> None:
    """PNG grid where each row of inputs is followed by the row of their reconstructions."""
    images, ncol = pairs(originals, reconstructions, ncol)
    save_image_grid(images, path, ncol=ncol)


def save_stacked(groups: list[torch.Tensor], path: str | os.PathLike, ncol: int = 8) -> None:
    """PNG grid of :func:`stacked_rows` (e.g. noisy / denoised / clean, one row each per block)."""
    images, ncol = stacked_rows(groups, ncol)
    save_image_grid(images, path, ncol=ncol)
