"""Conditions of a conditional VAE: class labels (one-hot) or numeric attribute columns (standardized).

A :class:`Conditioning` is fitted on the training split, saved in ``config.json`` and turns user-facing
values (label names, ``{"a": 0.5}``, the labels or columns of a dataset) into the vectors ``c`` that the
model takes. All user mistakes end in one-line :class:`~vaekit.errors.UsageError` messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .data import Dataset, Standardizer
from .data.kinds import kind_of
from .errors import UsageError


@dataclass
class Conditioning:
    kind: str  # "label" | "attributes"
    dim: int
    classes: list[str] | None = None  # label: class names, index = position
    columns: list[str] | None = None  # attributes: column names
    scaler: Standardizer | None = None  # attributes: fitted on the training split
    source: str = "table"  # attributes: "table" columns, or the dataset's "attributes" (float y in .npz)

    # -- building ------------------------------------------------------------------------------------
    @classmethod
    def for_labels(cls, ds: Dataset) -> "Conditioning":
        """Label conditioning over ``ds``'s classes; labels of −1 (unknown) are allowed (semi-supervised)."""
        if ds.y is None or not bool((ds.y >= 0).any()):
            raise UsageError(f"{ds.name} has no labels; semi-supervised training needs some")
        classes = list(ds.classes) if ds.classes else [str(i) for i in range(int(ds.y.max()) + 1)]
        return cls("label", len(classes), classes=classes)

    @classmethod
    def for_dataset(cls, ds: Dataset, columns: Sequence[str] | None) -> "Conditioning":
        """The conditioning a run on ``ds`` uses: attribute ``columns`` when given, else the labels."""
        if ds.attributes is not None and (columns or ds.y is None):
            names = ds.attribute_names or []
            chosen = list(dict.fromkeys(columns)) if columns else names
            missing = [c for c in chosen if c not in names]
            if missing:
                raise UsageError(f"attribute(s) {', '.join(map(repr, missing))} not in {ds.name}; "
                                 f"available: {', '.join(names)}")
            return cls("attributes", len(chosen), columns=chosen, source="attributes")
        if columns:
            if not kind_of(ds.kind).cells or not ds.columns:
                raise UsageError("--condition-columns needs a table (.csv/.parquet) whose columns it names, or "
                                 "an .npz whose float y holds attributes (named by y_names)")
            missing = [c for c in columns if c not in ds.columns]
            if missing:
                raise UsageError(f"condition column(s) {', '.join(map(repr, missing))} not in the table; "
                                 f"available: {', '.join(ds.columns)}")
            if len(set(columns)) == len(ds.columns):
                raise UsageError("--condition-columns leaves no feature columns to model; name fewer columns")
            return cls("attributes", len(columns), columns=list(dict.fromkeys(columns)))
        if ds.y is None:
            raise UsageError(f"--conditional needs labels, and {ds.name} has none: use labelled data (subfolders "
                             "of images, y in .npz, --label-column) or --condition-columns for attributes")
        if bool((ds.y < 0).any()):
            raise UsageError(f"{ds.name} has labels marked -1 (unknown); a conditional VAE needs every label "
                             "(use --semi-supervised for partly labelled data)")
        classes = list(ds.classes) if ds.classes else [str(i) for i in range(int(ds.y.max()) + 1)]
        return cls("label", len(classes), classes=classes)

    def fit(self, train_c: torch.Tensor) -> None:
        if self.kind == "attributes":
            self.scaler = Standardizer.fit(train_c)

    # -- data -> (features, c) ----------------------------------------------------------------------
    def split_columns(self, x: torch.Tensor, data_columns: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(feature columns, raw condition columns) of a table ``x`` whose columns are ``data_columns``."""
        missing = [c for c in self.columns or [] if c not in data_columns]
        if missing:
            raise UsageError(f"the data lacks the condition column(s) {', '.join(map(repr, missing))} "
                             "this run was trained with")
        idx = [list(data_columns).index(c) for c in self.columns or []]
        rest = [i for i in range(len(data_columns)) if i not in idx]
        return x[:, rest], x[:, idx]

    def take(self, x: torch.Tensor, data_columns: Sequence[str] | None, attributes: torch.Tensor | None,
             attribute_names: Sequence[str] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, raw attribute rows) of data: table columns taken out of ``x``, or the dataset's attributes."""
        if self.source == "table":
            return self.split_columns(x, data_columns or [])
        names = list(attribute_names or [])
        missing = [c for c in self.columns or [] if c not in names]
        if attributes is None or missing:
            raise UsageError(f"this run is conditioned on the attribute(s) {', '.join(self.columns or [])}; give "
                             "data with them (a float y in .npz, named by y_names)")
        return x, attributes[:, [names.index(c) for c in self.columns or []]]

    def feature_columns(self, data_columns: Sequence[str]) -> list[str]:
        if self.source != "table":
            return list(data_columns)
        return [c for c in data_columns if c not in (self.columns or [])]

    def encode_raw(self, raw: torch.Tensor) -> torch.Tensor:
        """Condition vectors from raw values: class indices (label) or attribute rows (attributes)."""
        if self.kind == "label":
            return torch.nn.functional.one_hot(raw.long(), self.dim).float()
        assert self.scaler is not None
        return self.scaler.transform(raw.float())

    def from_labels(self, y: torch.Tensor, data_classes: Sequence[str] | None) -> torch.Tensor:
        """One-hot conditions for a dataset's labels, matched to the trained classes by name."""
        assert self.classes is not None
        if bool((y < 0).any()):
            raise UsageError("the data has labels marked -1 (unknown); a conditional run needs every label")
        if data_classes:
            unknown = [c for c in data_classes if c not in self.classes]
            if unknown:
                raise UsageError(f"the data has label(s) {', '.join(map(repr, unknown[:5]))} this run was not "
                                 f"trained on; trained classes: {', '.join(self.classes)}")
            mapping = torch.tensor([self.classes.index(c) for c in data_classes])
            y = mapping[y.long()]
        elif int(y.max()) >= self.dim:
            raise UsageError(f"label {int(y.max())} is outside the trained classes 0..{self.dim - 1}")
        return self.encode_raw(y)

    # -- user-facing values ----------------------------------------------------------------------------
    def label_index(self, label: Any) -> int:
        """The class index of ``label`` (a class name, or an index as int or digit string)."""
        if self.kind != "label":
            raise UsageError("this run is conditioned on attributes; pass --attributes, not --label")
        assert self.classes is not None
        text = str(label)
        if text in self.classes:
            return self.classes.index(text)
        if text.lstrip("-").isdigit() and 0 <= int(text) < len(self.classes):
            return int(text)
        raise UsageError(f"label {text!r} is not one of the trained classes: {', '.join(self.classes)}")

    def labels(self, labels: Sequence[Any]) -> torch.Tensor:
        return self.encode_raw(torch.tensor([self.label_index(v) for v in labels]))

    def attributes(self, values: dict[str, float], n: int = 1) -> torch.Tensor:
        """``[n, dim]`` condition rows for one setting of every attribute."""
        if self.kind != "attributes":
            raise UsageError("this run is conditioned on class labels; pass --label, not --attributes")
        cols = self.columns or []
        missing = [c for c in cols if c not in values]
        extra = [c for c in values if c not in cols]
        if missing or extra:
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                    ([f"unknown {', '.join(extra)}"] if extra else [])
            raise UsageError(f"--attributes must set exactly {', '.join(cols)} ({'; '.join(parts)})")
        raw = torch.tensor([[float(values[c]) for c in cols]])
        return self.encode_raw(raw).repeat(n, 1)

    # -- persistence -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": self.kind, "dim": self.dim, "classes": self.classes, "columns": self.columns,
                "scaler": self.scaler.to_dict() if self.scaler is not None else None, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> "Conditioning":
        return cls(d["kind"], int(d["dim"]), d.get("classes"), d.get("columns"),
                   Standardizer.from_dict(d["scaler"]) if d.get("scaler") else None, d.get("source", "table"))


def parse_attributes(text: str) -> dict[str, float]:
    """``"a=0.5,b=1"`` → ``{"a": 0.5, "b": 1.0}``, with a clear error for anything else."""
    out: dict[str, float] = {}
    for part in [p for p in text.split(",") if p.strip()]:
        name, sep, value = part.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--attributes takes name=value pairs like a=0.5,b=1; got {part.strip()!r}") from None
    if not out:
        raise UsageError("--attributes is empty; give name=value pairs like a=0.5,b=1")
    return out
