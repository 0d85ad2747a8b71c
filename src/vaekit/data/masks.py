"""Masks over images for inpainting: which pixels are hidden (to be filled) and which are observed.

A mask spec is ``center`` (the central half-height × half-width block), ``left``/``right``/``top``/``bottom``
(that half of the image), ``random:P`` (each pixel hidden with probability P, independently per image), or
the path of a PNG the size of the images whose white pixels (≥ 128 in grey) mark the region to fill.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

NAMED = ("center", "left", "right", "top", "bottom")
SPEC_HELP = "center, left, right, top, bottom, random:P (0 < P < 1) or MASK.png (white = fill)"


def hidden_region(spec: str, h: int, w: int) -> np.ndarray:
    """Boolean ``[h, w]``, true where a named mask hides pixels."""
    hidden = np.zeros((h, w), dtype=bool)
    if spec == "center":
        hidden[h // 4: h // 4 + h // 2, w // 4: w // 4 + w // 2] = True
    elif spec == "left":
        hidden[:, : w // 2] = True
    elif spec == "right":
        hidden[:, w // 2:] = True
    elif spec == "top":
        hidden[: h // 2] = True
    elif spec == "bottom":
        hidden[h // 2:] = True
    else:
        raise DataError(f"unknown mask {spec!r}; give {SPEC_HELP}")
    return hidden


def observed_mask(spec: str, n: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Boolean ``[n, *shape]`` (shape = C, H, W), true where a pixel is observed, for mask ``spec``."""
    c, h, w = shape
    text = spec.strip()
    low = text.lower()
    if low.startswith("random:"):
        try:
            p = float(low.split(":", 1)[1])
        except ValueError:
            raise DataError(f"--mask {text}: P in random:P must be a number, e.g. random:0.5") from None
        if not 0.0 < p < 1.0:
            raise DataError(f"--mask {text}: P in random:P must be between 0 and 1 (exclusive)")
        rng = np.random.default_rng(seed)
        hidden = rng.random((n, h, w)) < p
    elif low.endswith(".png"):
        hidden = np.broadcast_to(_png_region(Path(text).expanduser(), h, w), (n, h, w))
    elif low in NAMED:
        hidden = np.broadcast_to(hidden_region(low, h, w), (n, h, w))
    else:
        raise DataError(f"unknown mask {text!r}; give {SPEC_HELP}")
    observed = torch.from_numpy(~np.ascontiguousarray(hidden))
    return observed.unsqueeze(1).expand(n, c, h, w).contiguous()


def _png_region(path: Path, h: int, w: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataError(f"mask file not found: {path}; give a PNG the size of the images (white = fill)")
    try:
        with Image.open(path) as img:
            grey = np.asarray(img.convert("L"))
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot read the mask {path} as an image: {str(exc).splitlines()[0]}") from None
    if grey.shape != (h, w):
        raise DataError(f"the mask {path} is {grey.shape[1]}×{grey.shape[0]} pixels but the images are {w}×{h}; "
                        "give a mask the same size as the images")
    hidden = grey >= 128
    if not hidden.any():
        raise DataError(f"the mask {path} hides no pixel (no white pixel); paint the region to fill white")
    return hidden
