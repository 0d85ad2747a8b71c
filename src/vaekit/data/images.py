"""A folder of images -> an image :class:`Dataset`.

Either every image sits directly in the folder (no labels), or every image sits in a subfolder
whose name is its class label. Grayscale images give 1 channel; if any image is in colour, all are
converted to RGB. Alpha is dropped.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from ._common import check_memory, one_line
from .dataset import Dataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

_GRAY_8BIT = {"1", "L", "LA", "La"}
_GRAY_16BIT = {"I;16", "I;16B", "I;16L", "I;16N"}


def _scandir(folder: Path) -> list[os.DirEntry]:
    """The entries of ``folder``; an unreadable folder is an error naming it (``Path.rglob`` skipped it
    silently, and with it a whole class)."""
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as exc:
        raise DataError(one_line(f"cannot read the folder {folder}: {exc.strerror or exc}; make it readable "
                                 "(chmod) or move it out of the data folder")) from None


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    """Image files in ``folder`` (and its subfolders when ``recursive``), sorted by relative path. Hidden
    names are skipped; symbolic links to folders are not followed (a link back into the tree would load
    images twice)."""
    found: list[Path] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        for e in _scandir(current):
            if e.name.startswith("."):
                continue
            if recursive and e.is_dir(follow_symlinks=False):
                pending.append(Path(e.path))
            elif e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES:
                found.append(Path(e.path))
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _check_link(d: Path, root: Path) -> None:
    """Refuse a class folder that is a symbolic link into the image folder itself or above it: a loop
    (``cls -> ..``) became an extra class holding every image again."""
    target, top = d.resolve(), root.resolve()
    if target == top or top in target.parents or target in top.parents:
        raise DataError(f"{d} is a link to {target}, inside (or above) the image folder {root}: it would load "
                        "images twice as an extra class; remove the link")


def list_image_files(root: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """Image files under ``root`` (sorted), their class indices and class names (or None, None)."""
    top = _images_in(root, recursive=False)
    subdirs = sorted((Path(e.path) for e in _scandir(root) if e.is_dir() and not e.name.startswith(".")),
                     key=lambda d: d.name)
    for d in subdirs:
        if d.is_symlink():
            _check_link(d, root)
    per_class = [(d.name, _images_in(d, recursive=True)) for d in subdirs]
    per_class = [(name, files) for name, files in per_class if files]
    if not per_class:
        if not top:
            raise DataError(f"no images in {root} (looked for {', '.join(IMAGE_SUFFIXES)}); point at a folder of images")
        return top, None, None
    if top:
        raise DataError(
            f"{root} has images both at its top ({top[0].name}) and in class subfolders ({per_class[0][0]}/); "
            "put every image in a class subfolder, or all of them at the top for unlabelled data"
        )
    files: list[Path] = []
    labels: list[int] = []
    for index, (_, class_files) in enumerate(per_class):
        files.extend(class_files)
        labels.extend([index] * len(class_files))
    return files, labels, [name for name, _ in per_class]


def _read_image(path: Path, image_size: int | None) -> np.ndarray:
    """One image as float32 ``[H, W, C]`` in [0, 1], C = 1 (grayscale) or 3 (colour)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                im.load()
                return _to_array(im, image_size, path)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(one_line(f"cannot read image {path}: {exc}; remove or replace the file")) from None


def _to_array(im: Image.Image, image_size: int | None, path: Path | str = "image") -> np.ndarray:
    size = (image_size, image_size) if image_size else None
    mode = im.mode
    if mode in ("F", "I") or mode in _GRAY_16BIT:
        # Float images are intensities in [0, 1] (kept as they are); 32-bit integer ("I") and 16-bit images
        # are 0-65535 (divided by 65535). Anything outside is refused, not clipped: there is no principled
        # scale for it (a min-max per image would change every image's brightness differently).
        arr = np.asarray(im, dtype=np.float64)
        lo, hi, top = (float(arr.min()), float(arr.max()), 1.0 if mode == "F" else 65535.0) if arr.size else (0, 0, 1)
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > top:
            what = "float" if mode == "F" else "32-bit integer"
            raise DataError(f"{what} image {path} has values in [{lo:g}, {hi:g}]; vaekit reads {what} images "
                            f"as intensities in [0, {top:g}]; rescale it to that range, or save it as 8-bit")
        arr = (arr / top).astype(np.float32)
        if size:
            arr = np.asarray(Image.fromarray(arr, mode="F").resize(size, Image.BILINEAR))
        return np.clip(arr, 0.0, 1.0)[:, :, None]
    if mode in _GRAY_8BIT:
        im = im.convert("L")
    elif mode in ("P", "PA"):
        rgb = im.convert("RGB")
        a = np.asarray(rgb)
        im = rgb.convert("L") if (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all() else rgb
    else:
        im = im.convert("RGB")
    if size:
        im = im.resize(size, Image.BILINEAR)
    arr = np.asarray(im, dtype=np.float32) / 255.0
    return arr[:, :, None] if arr.ndim == 2 else arr


def size_error(first: Path, first_hw: tuple[int, ...], other: Path, other_hw: tuple[int, ...]) -> DataError:
    """The error for two images of different sizes (``*_hw``: height, width) read without ``--image-size``."""
    (h0, w0), (h1, w1) = first_hw, other_hw
    return DataError(f"images have different sizes: {first} is {w0}x{h0} and {other} is {w1}x{h1}; "
                     "pass --image-size N (image_size=N) to resize them all to N x N")


def load_image_folder(root: Path, *, image_size: int | None = None, name: str | None = None) -> Dataset:
    """Load every image under ``root`` (see the module docstring for the layout rules)."""
    files, labels, classes = list_image_files(root)
    arrays = [_read_image(files[0], image_size)]
    # the list of images and the stacked tensor both hold every pixel (float32)
    check_memory(2 * len(files) * arrays[0].nbytes, f"{len(files)} images of {arrays[0].shape[1]}x"
                 f"{arrays[0].shape[0]}", "pass a smaller --image-size or use fewer images")
    arrays += [_read_image(p, image_size) for p in files[1:]]
    if image_size is None:
        first = arrays[0].shape[:2]
        for p, a in zip(files, arrays):
            if a.shape[:2] != first:
                raise size_error(files[0], first, p, a.shape[:2])
    channels = 3 if any(a.shape[2] == 3 for a in arrays) else 1
    if channels == 3:
        arrays = [np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a for a in arrays]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor(labels, dtype=torch.int64) if labels is not None else None
    return Dataset(x=x, y=y, kind="image", name=name or str(root), classes=classes)
