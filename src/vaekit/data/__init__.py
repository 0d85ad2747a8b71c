"""Data layer: sources (built-ins, image folders, arrays, tables) -> in-memory Dataset -> splits.

Everything the rest of vaekit needs is importable from here::

    from vaekit.data import load_source, split_dataset, Standardizer
"""

from .builtin import BUILTIN_NAMES, FASHION_MNIST_CLASSES, default_cache_dir, read_idx
from .dataset import Dataset, Split, Standardizer, binarize, fill_missing, in_unit_interval, split_dataset
from .images import IMAGE_SUFFIXES
from .sources import dataset_from_array, load_source
from .tables import TABLE_SUFFIXES

__all__ = [
    "BUILTIN_NAMES",
    "FASHION_MNIST_CLASSES",
    "IMAGE_SUFFIXES",
    "TABLE_SUFFIXES",
    "Dataset",
    "Split",
    "Standardizer",
    "binarize",
    "dataset_from_array",
    "default_cache_dir",
    "fill_missing",
    "in_unit_interval",
    "load_source",
    "read_idx",
    "split_dataset",
]
