"""The data-kind interface and what most kinds share (random splits, .npy/.csv outputs)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import UsageError
from ..dataset import Dataset, Split, Standardizer, split_dataset


class DataKind:
    """One kind of data. Subclasses set the capabilities below and override what differs.

    - ``pictures``: examples are images (PNG outputs, image grids in reports, inpainting);
    - ``cells``: examples are rows of named columns (standardized, columns checked on reuse, imputation);
    - ``bernoulli_ok``: ``likelihood: auto`` may pick a Bernoulli likelihood for data in [0, 1].
    """

    name: str = ""
    #: what results.json says about the units of its losses (None: the data's own units)
    loss_note: str | None = None
    pictures: bool = False
    cells: bool = False
    #: an in-memory [N, D] matrix can be this kind (``dataset_from_array(kind=...)``, the estimators)
    from_matrix: bool = False
    bernoulli_ok: bool = True
    #: the data stay a sparse matrix on the host (``Dataset.interactions``); only a batch is ever dense
    sparse: bool = False
    #: prepared by :func:`vaekit.series_prep.prepare_series` (a series: scaled on its training period, windowed)
    windowed: bool = False
    #: examples are spectrogram patches of recordings: sound in and out (vaekit.tasks.audio), players in reports
    sound: bool = False

    # -- sources ---------------------------------------------------------------------------------
    def claims(self, source: str, path: Path | None) -> bool:
        """Whether this kind loads ``source`` (``path`` is its existing path, or None for a name)."""
        return False

    def named(self, source: str) -> bool:
        """Whether ``source`` is a name this kind loads without a file of that name (a built-in source)."""
        return False

    def load(self, source: str, path: Path | None, **options: Any) -> Dataset:  # pragma: no cover - interface
        raise NotImplementedError

    def load_options(self, config: Any, info: dict) -> dict[str, Any]:
        """How a trained run re-reads data of this kind (the training run's loader settings)."""
        return {"image_size": config.image_size}

    # -- splits and preprocessing -----------------------------------------------------------------
    def split(self, ds: Dataset, config: Any) -> tuple[Split, Split, Split]:
        """(train, validation, test): a seeded random split (the official test set where there is one)."""
        return split_dataset(ds, val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                             seed=config.seed)

    def fit_preprocessing(self, train_x: torch.Tensor, columns: list[str] | None,
                          keep: torch.Tensor | None) -> Standardizer | None:
        """The preprocessing fitted on the training split (saved in ``config.json``), or None."""
        return None

    # -- likelihood ---------------------------------------------------------------------------------
    def default_likelihood(self, in_unit: bool, mixed: bool) -> str:
        """What ``likelihood: auto`` resolves to for this kind of data."""
        if mixed:
            return "mixed"
        return "bernoulli" if self.bernoulli_ok and in_unit else "gaussian"

    def likelihood_error(self, likelihood: str, in_unit: bool) -> str | None:
        """Why ``likelihood`` cannot model this data (None when it can)."""
        if likelihood == "bernoulli" and not (self.bernoulli_ok and in_unit):
            why = "the data has values outside [0, 1]" if self.bernoulli_ok else self.bernoulli_refusal
            return f"--likelihood bernoulli needs data in [0, 1] but {why}; use --likelihood gaussian"
        return None

    bernoulli_refusal = "the data has values outside [0, 1]"

    # -- outputs --------------------------------------------------------------------------------------
    def write(self, values: Any, out: Path, columns: list[str] | None = None,
              schema: list[dict] | None = None) -> None:
        """Write examples to ``out`` by its suffix (.npy, else CSV; .png for pictures), atomically."""
        arr = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
        suffix = out.suffix.lower()
        if suffix == ".png":
            self._write_png(arr, out)
        elif suffix == ".npy":
            from ...runs import atomic_write_bytes

            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            atomic_write_bytes(out, buf.getvalue())
        else:
            self._write_csv(arr, out, columns, schema)

    def write_pairs(self, inputs: Any, outputs: Any, out: Path, columns: list[str] | None = None,
                    schema: list[dict] | None = None) -> None:
        """Inputs and what the model made of them (reconstructions); .png stacks them for pictures,
        other formats hold the outputs only."""
        self.write(outputs, out, columns, schema)

    def check_png(self, out: Path) -> None:
        """Refuse a .png ``out`` for data that are not pictures (before any work is done)."""
        if out.suffix.lower() == ".png" and not self.pictures:
            raise UsageError(f"PNG output needs image data, this is {self.name} data; use .npy or .csv")

    def _write_png(self, arr: np.ndarray, out: Path) -> None:
        self.check_png(out)

    def _write_csv(self, arr: np.ndarray, out: Path, columns: list[str] | None,
                   schema: list[dict] | None) -> None:
        from ...runs import atomic_write_text

        flat = arr.reshape(len(arr), -1)
        header = columns if columns and len(columns) == flat.shape[1] else [f"x{i}" for i in range(flat.shape[1])]
        lines = [",".join(header)] + [",".join(f"{v:.7g}" for v in row) for row in flat]
        atomic_write_text(out, "\n".join(lines) + "\n")
