"""The in-memory dataset, its train/validation/test splits, and per-column standardization.

Data lives in memory as tensors: a :class:`Dataset` holds everything a source gave us, a
:class:`Split` is one slice of it, and batches are index slices of a split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .batch import Batch

KINDS = ("image", "table", "array", "interactions", "series", "audio", "sequences")


@dataclass
class Dataset:
    """Everything loaded from one source.

    ``x`` is float32 ``[N, *shape]``: images are ``[N, C, H, W]`` in ``[0, 1]``, tables ``[N, D]``
    with raw (unstandardized) values. ``y`` holds int64 class indices into ``classes``, or is None.
    ``test_x``/``test_y`` hold the official test split of datasets that have one.
    """

    x: torch.Tensor
    y: torch.Tensor | None = None
    kind: str = "array"
    name: str = ""
    classes: list[str] | None = None
    columns: list[str] | None = None
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    # numeric attributes per example ([N, k] float32, e.g. from a float ``y`` in .npz): conditions for a
    # conditional VAE, like a table's --condition-columns
    attributes: torch.Tensor | None = None
    attribute_names: list[str] | None = None
    # tables: one entry per original column, {name, kind: numeric|categorical, categories, start, stop}
    # (its features x[:, start:stop]; a categorical column is a one-hot block), see data.tables
    schema: list[dict] | None = None
    # interactions: the sparse user × item matrix and its id maps (data.interactions.Interactions); ``x`` is
    # then the same matrix as a torch sparse CSR tensor
    interactions: Any = None
    # series: the regular series (data.series.SeriesData: times, values, covariates); ``x`` is its values [T, D]
    series: Any = None
    # audio: the spectrogram settings its log-mel patches were made with (data.audio.settings)
    audio: dict | None = None
    # audio: the index of the recording each example (patch) was cut from, [N] int64 (splits hold out clips)
    clips: torch.Tensor | None = None
    # data larger than memory (data.outofcore): ``x`` is a memory map whose rows lie in the order of the run's
    # seeded split (a SplitOrder says where each example lies), and what streaming it found: the content
    # fingerprint (that of the same data in memory) and its range
    split_order: Any = None
    known_fingerprint: str | None = None
    known_in_unit: bool | None = None  # whether every value of x lies in [0, 1], when known without a scan

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"unknown dataset kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.x.ndim < 2:
            raise DataError(f"x must have shape [N, ...] with at least 2 dimensions; got {tuple(self.x.shape)}")
        _check_labels(self.x, self.y, "y")
        if self.test_x is not None:
            if tuple(self.test_x.shape[1:]) != tuple(self.x.shape[1:]):
                raise DataError(
                    f"test_x examples have shape {tuple(self.test_x.shape[1:])} but x examples have "
                    f"{tuple(self.x.shape[1:])}; give both the same per-example shape"
                )
            _check_labels(self.test_x, self.test_y, "test_y")
        elif self.test_y is not None:
            raise DataError("test_y is given without test_x; give both or neither")
        if self.attributes is not None:
            a = self.attributes
            if a.ndim != 2 or a.shape[0] != self.x.shape[0]:
                raise DataError(f"attributes must be [N, k] with one row per example; got shape {tuple(a.shape)} "
                                f"for {self.x.shape[0]} examples")
            if self.test_x is not None:
                raise DataError("attributes with an official test split are not supported; drop test_x")
            names = self.attribute_names or [f"y{i}" for i in range(a.shape[1])]
            if len(names) != a.shape[1] or len(set(names)) != len(names):
                raise DataError(f"give {a.shape[1]} distinct attribute names; got {names}")
            self.attribute_names = list(names)

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-example shape, ``x.shape[1:]``."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def fingerprint(self) -> str:
        """SHA-256 hex digest over the shapes, dtypes and bytes of x, y, test_x and test_y."""
        if self.known_fingerprint is not None:
            return self.known_fingerprint
        h = hashlib.sha256()
        if self.interactions is not None:  # sparse: the matrix's structure and its ids
            for arr in self.interactions.fingerprint_parts():
                h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))
            h.update("\n".join(self.interactions.users + ["|"] + self.interactions.items).encode())
            return h.hexdigest()
        if self.series is not None:  # a series: its times, values and covariates
            h.update(self.series.fingerprint_bytes())
            return h.hexdigest()
        for field in ("x", "y", "test_x", "test_y", "attributes"):
            t = getattr(self, field)
            if t is None and field == "attributes":  # absent: the digest of older runs is unchanged
                continue
            if t is None:
                h.update(f"{field}:none;".encode())
                continue
            arr = np.ascontiguousarray(t.detach().cpu().numpy())
            h.update(f"{field}:{arr.dtype.str}:{list(arr.shape)};".encode())
            if arr.size:  # memoryview cannot cast an empty array (an in-memory dataset's empty test split)
                h.update(memoryview(arr).cast("B"))
        return h.hexdigest()


def _check_labels(x: torch.Tensor, y: torch.Tensor | None, what: str) -> None:
    if y is None:
        return
    if y.ndim != 1:
        raise DataError(f"{what} must be 1-D class indices; got shape {tuple(y.shape)}")
    if y.shape[0] != x.shape[0]:
        raise DataError(
            f"{what} has {y.shape[0]} labels but its data has {x.shape[0]} examples; give one label per example"
        )


@dataclass
class Split:
    """One split (train, validation or test) of a dataset: examples, optional labels and attributes, and,
    once a run has prepared it, the model's condition rows ``c`` and missing-value ``mask`` (1 = observed)."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    a: torch.Tensor | None = None
    c: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batch(self, idx: torch.Tensor | slice | None = None):
        """The rows ``idx`` (all rows when None) as a :class:`~vaekit.data.batch.Batch`."""
        b = Batch(self.x, condition=self.c, mask=self.mask, labels=self.y)
        return b if idx is None else b.rows(idx)


def _take(x: torch.Tensor, y: torch.Tensor | None, idx: torch.Tensor, a: torch.Tensor | None = None,
          order: Any = None) -> Split:
    rows = x[idx] if order is None else order.take(x, idx)  # a split-ordered memory map: a view of it
    return Split(x=rows, y=None if y is None else y[idx], a=None if a is None else a[idx])


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The examples of (validation, test, train) of :func:`split_dataset` without an official test set
    (its fractions already checked; ``n`` >= 3): consecutive parts of one seeded permutation."""
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=gen)
    n_val = max(1, round(val_fraction * n))
    n_test = max(1, round(test_fraction * n))
    while n - n_val - n_test < 1:  # keep at least one training example
        if n_val >= n_test and n_val > 1:
            n_val -= 1
        else:
            n_test -= 1
    return perm[:n_val], perm[n_val:n_val + n_test], perm[n_val + n_test:]


def split_dataset(
    ds: Dataset, *, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> tuple[Split, Split, Split]:
    """Split ``ds`` into (train, validation, test) with a seeded random permutation.

    If ``ds.test_x`` is set, the test split is that official test set and the validation split is
    ``val_fraction`` of ``ds.x``; otherwise all three are carved from ``ds.x``. Each split gets at
    least one example; fewer than 3 examples is an error.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be between 0 and 1 (exclusive); got {val_fraction}")
    official = ds.test_x is not None
    if not official:
        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"test_fraction must be between 0 and 1 (exclusive); got {test_fraction}")
        if val_fraction + test_fraction >= 1.0:
            raise DataError(
                f"val_fraction + test_fraction must be below 1 to leave training data; "
                f"got {val_fraction} + {test_fraction}"
            )
    n = len(ds.x)
    if n < 3:
        raise DataError(f"dataset {ds.name or '(unnamed)'} has {n} example(s); at least 3 are needed to split it")

    if official:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
        n_val = min(max(1, round(val_fraction * n)), n - 1)
        val = _take(ds.x, ds.y, perm[:n_val], order=ds.split_order)
        train = _take(ds.x, ds.y, perm[n_val:], order=ds.split_order)
        assert ds.test_x is not None
        test = Split(x=ds.test_x, y=ds.test_y)
        return train, val, test

    val_idx, test_idx, train_idx = split_indices(n, val_fraction, test_fraction, seed)
    val = _take(ds.x, ds.y, val_idx, ds.attributes, ds.split_order)
    test = _take(ds.x, ds.y, test_idx, ds.attributes, ds.split_order)
    train = _take(ds.x, ds.y, train_idx, ds.attributes, ds.split_order)
    return train, val, test


def _as_float_tensor(x: Any) -> torch.Tensor:
    try:
        return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"cannot convert the data to a float tensor: {exc}".splitlines()[0]) from None


@dataclass
class Standardizer:
    """Per-column ``(x - mean) / std``; fit it on the training split only."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, columns: list[str] | None = None,
            keep: torch.Tensor | None = None) -> Standardizer:
        """Column means and standard deviations of ``x`` ``[N, D]``; constant columns get std 1.

        NaN entries (missing cells) are ignored; a column with no observed value is an error. Columns where
        ``keep`` (bool ``[D]``) is true are left as they are (mean 0, std 1): one-hot blocks stay 0/1."""
        x64 = _as_float_tensor(x).to(torch.float64)
        if x64.ndim != 2 or x64.shape[0] == 0:
            raise DataError(f"Standardizer.fit needs a non-empty [N, D] table; got shape {tuple(x64.shape)}")
        seen = ~torch.isnan(x64)
        if not bool(seen.any(0).all()):
            j = int((~seen.any(0)).nonzero()[0, 0])
            name = repr(columns[j]) if columns and j < len(columns) else f"number {j + 1}"
            raise DataError(f"column {name} has no observed value in the training split; drop that column")
        if bool(seen.all()):
            mean = x64.mean(dim=0)
            std = x64.std(dim=0, unbiased=False)
            hi, lo = x64.amax(dim=0), x64.amin(dim=0)
        else:
            mean = x64.nanmean(dim=0)
            dev = torch.where(seen, x64 - mean, torch.zeros_like(x64))
            std = (dev.pow(2).sum(0) / seen.sum(0)).sqrt()
            hi = torch.where(seen, x64, torch.full_like(x64, -torch.inf)).amax(dim=0)
            lo = torch.where(seen, x64, torch.full_like(x64, torch.inf)).amin(dim=0)
        constant = (hi == lo) | ~torch.isfinite(std) | (std <= 0)
        std = torch.where(constant, torch.ones_like(std), std)
        if keep is not None:
            mean = torch.where(keep, torch.zeros_like(mean), mean)
            std = torch.where(keep, torch.ones_like(std), std)
        return cls(mean=mean.to(torch.float32), std=std.to(torch.float32))

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 1 or x.shape[-1] != self.mean.shape[0]:
            raise DataError(
                f"data has {x.shape[-1] if x.ndim else 0} columns but the standardizer was fitted on "
                f"{self.mean.shape[0]}; use data with the same columns"
            )
        return x

    def transform(self, x: Any) -> torch.Tensor:
        """Standardize ``x`` column-wise."""
        x = self._check(_as_float_tensor(x))
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def inverse_transform(self, x: Any) -> torch.Tensor:
        """Map standardized values back to the original scale."""
        x = self._check(_as_float_tensor(x))
        return x * self.std.to(x.device) + self.mean.to(x.device)

    def to_dict(self) -> dict:
        """JSON-serialisable form: ``{"mean": [...], "std": [...]}``."""
        return {"mean": [float(v) for v in self.mean.tolist()], "std": [float(v) for v in self.std.tolist()]}

    @classmethod
    def from_dict(cls, d: dict) -> Standardizer:
        """Inverse of :meth:`to_dict`."""
        try:
            mean = torch.tensor([float(v) for v in d["mean"]], dtype=torch.float32)
            std = torch.tensor([float(v) for v in d["std"]], dtype=torch.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"invalid standardizer record (need lists 'mean' and 'std'): {exc}") from None
        if mean.shape != std.shape:
            raise DataError(f"invalid standardizer record: {len(mean)} means but {len(std)} stds")
        if not bool(torch.all(std > 0)):
            raise DataError("invalid standardizer record: every std must be positive")
        return cls(mean=mean, std=std)


def fill_missing(x: torch.Tensor, value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(x with NaN entries replaced by ``value``, mask of float 1 = observed / 0 = missing).

    On standardized tables 0 is the training mean: the encoder sees missing cells mean-filled, and the
    mask takes them out of the likelihood (MIWAE)."""
    observed = ~torch.isnan(x)
    return torch.where(observed, x, torch.full_like(x, value)), observed.to(x.dtype)


def in_unit_interval(x: torch.Tensor) -> bool:
    """Whether every value of ``x`` lies in [0, 1] (True for an empty tensor); one ``aminmax`` pass, without an
    [N, D] boolean temporary (Fashion-MNIST is 188 MB of float32)."""
    if not x.numel():
        return True
    lo, hi = torch.aminmax(x)
    return bool(lo >= 0) and bool(hi <= 1)


def binarize(x: torch.Tensor, seed: int | None = None) -> torch.Tensor:
    """One Bernoulli draw per value of ``x`` in [0, 1] (seeded when ``seed`` is given).

    Binarized images make a Bernoulli likelihood a true discrete log-likelihood, comparable with the
    literature (Burda et al. 2015 binarize MNIST this way).
    """
    if not bool(((x >= 0) & (x <= 1)).all()):
        raise DataError("binarization needs data in [0, 1] (images); drop --binarize for this data")
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.bernoulli(x.cpu(), generator=gen)
