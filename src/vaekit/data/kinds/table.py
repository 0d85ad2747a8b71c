"""Tables: ``.csv``/``.parquet`` rows of named columns (numbers, and text columns as one-hot blocks), each
numeric column standardized on the training split; Gaussian (or mixed Gaussian + categorical) likelihood;
outputs as CSV with the table's own columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..dataset import Dataset, Standardizer
from .base import DataKind


class TableKind(DataKind):
    name = "table"
    from_matrix = True
    cells = True
    bernoulli_ok = False
    bernoulli_refusal = "tables are standardized"
    loss_note = "losses are on standardized columns"

    def claims(self, source: str, path: Path | None) -> bool:
        from ..tables import is_table_path

        return path is not None and path.is_file() and is_table_path(path)

    def load(self, source: str, path: Path | None, *, label_column: str | None = None,
             allow_missing: bool = False, categories: dict[str, list[str]] | None = None, **_: Any) -> Dataset:
        from ..tables import load_table

        return load_table(path, label_column=label_column, name=source, allow_missing=allow_missing,
                          categories=categories)

    def load_options(self, config: Any, info: dict) -> dict[str, Any]:
        from ..tables import schema_categories

        opts: dict[str, Any] = {"image_size": config.image_size, "label_column": config.label_column}
        if config.missing == "mask":
            opts["allow_missing"] = True
        schema = info.get("data", {}).get("schema")
        if schema is not None:
            opts["categories"] = schema_categories(schema)
        return opts

    def fit_preprocessing(self, train_x: torch.Tensor, columns: list[str] | None,
                          keep: torch.Tensor | None) -> Standardizer | None:
        return Standardizer.fit(train_x, columns, keep)

    def _write_csv(self, arr: np.ndarray, out: Path, columns: list[str] | None,
                   schema: list[dict] | None) -> None:
        if schema is None:
            return super()._write_csv(arr, out, columns, schema)
        import csv
        import io

        from ...runs import atomic_write_text
        from ..tables import table_cells

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([c["name"] for c in schema])
        w.writerows(table_cells(schema, arr, lambda v: f"{v:.7g}").tolist())
        atomic_write_text(out, buf.getvalue())
