"""From a loaded dataset to what training needs: splits in model units carrying their conditions and masks,
the fitted preprocessing (scaler, conditioning), the resolved likelihood and the run's data description.

Every model family trains on a :class:`Prepared`; the checks here are the ones that need the data (the
settings alone are checked by :mod:`vaekit.config` and each family's ``check``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .conditions import Conditioning
from .config import TrainConfig
from .core.vae import architecture_error
from .data import Dataset, Split, Standardizer, binarize, fill_missing, in_unit_interval
from .data.kinds import kind_of
from .data.tables import categorical_features, has_categorical
from .errors import UsageError


@dataclass
class Prepared:
    """A run's data, ready to train on: ``splits`` (train, validation, test) in model units, each carrying its
    condition rows ``c`` and missing-value ``mask``; ``cfg`` with its likelihood resolved."""

    cfg: TrainConfig
    ds: Dataset  # its x is dropped once the splits exist (they are copies)
    splits: tuple[Split, Split, Split]
    cond: Conditioning | None
    scaler: Standardizer | None
    feature_columns: list[str] | None
    shape: tuple[int, ...]
    fingerprint: str
    series_info: dict | None = None  # a series run: config.json's "series" record (vaekit.series_prep)

    def data_info(self) -> dict:
        """The ``data`` record of ``config.json``."""
        ds, splits = self.ds, self.splits
        return {"source": ds.name, "kind": ds.kind, "shape": list(self.shape), "fingerprint": self.fingerprint,
                "n_train": len(splits[0]), "n_val": len(splits[1]), "n_test": len(splits[2]),
                "classes": ds.classes, "columns": self.feature_columns,
                **({"schema": ds.schema} if has_categorical(ds.schema) else {}),
                **({"users": ds.interactions.users, "items": ds.interactions.items,
                    "interactions": int(ds.interactions.matrix.nnz)}
                   if ds.interactions is not None else {}),
                **({"audio": ds.audio} if ds.audio is not None else {}),
                **({"mmap_cache": ds.split_order.cache} if getattr(ds.split_order, "cache", None) else {})}


def prepare(cfg: TrainConfig, ds: Dataset, resolve_likelihood: bool = True) -> Prepared:
    """Split ``ds`` as its kind does, fit conditioning and preprocessing on the training split, fill and mask
    missing cells (``missing: mask``), binarize (``binarize: static``; validation and test always with a fixed
    draw), resolve ``likelihood: auto`` (not on resume: the saved config has it) and check the architecture."""
    kind = kind_of(ds.kind)
    if kind.windowed:  # a series: scaled on its training period, then windowed (vaekit.series_prep)
        from .series_prep import prepare_series

        return prepare_series(cfg, ds, resolve_likelihood)
    splits = kind.split(ds, cfg)
    if kind.sparse:
        return _prepare_sparse(cfg, ds, splits, resolve_likelihood)
    if cfg.semi_supervised and (cfg.conditional or cfg.condition_columns):
        raise UsageError("--semi-supervised cannot be combined with --conditional or --condition-columns")
    if has_categorical(ds.schema) and (cfg.conditional or cfg.condition_columns or cfg.semi_supervised):
        raise UsageError(text_columns_refusal(cfg, ds.schema))
    cond, conds, feature_columns = fit_conditions(cfg, ds, splits)
    one_hot = categorical_features(ds.schema, ds.x.shape[1]) if has_categorical(ds.schema) else None
    scaler = kind.fit_preprocessing(splits[0].x, feature_columns, one_hot)
    if scaler is not None:
        for s in splits:
            s.x = scaler.transform(s.x)
    masks: list = [None, None, None]
    if cfg.missing == "mask":  # MIWAE: missing cells are mean-filled (0) for the encoder, masked out of p(x|z)
        for i, s in enumerate(splits):
            s.x, masks[i] = fill_missing(s.x)
    if resolve_likelihood:
        cfg = resolve_auto_likelihood(cfg, ds)
    if cfg.corruption is not None:
        check_corruption(cfg, splits[0].x)
    if cfg.binarize != "none":
        for i, s in enumerate(splits):
            if cfg.binarize == "static" or i > 0:  # dynamic: train draws afresh each step
                s.x = binarize_split(s.x, cfg, i)
    shape = tuple(splits[0].x.shape[1:])
    err = architecture_error(cfg, shape)
    if err:
        raise UsageError(err)
    for s, c, m in zip(splits, conds, masks):
        s.c, s.mask = c, m
    fingerprint = ds.fingerprint()
    ds.x = ds.x[:0].clone()  # the splits are copies: training does not hold the data twice
    return Prepared(cfg, ds, tuple(splits), cond, scaler, feature_columns, shape, fingerprint)


def _prepare_sparse(cfg: TrainConfig, ds: Dataset, splits, resolve_likelihood: bool) -> Prepared:
    """Interactions: the splits stay sparse; no scaler, conditions or binarization; the likelihood is the
    kind's (multinomial)."""
    if cfg.conditional or cfg.condition_columns or cfg.semi_supervised or cfg.missing == "mask" \
            or cfg.binarize != "none" or cfg.corruption is not None:
        raise UsageError(f"{ds.kind} data take none of --conditional, --condition-columns, --semi-supervised, "
                         "--missing mask, --binarize, --corruption; drop them")
    kind = kind_of(ds.kind)
    if resolve_likelihood and cfg.likelihood == "auto":
        cfg = cfg.model_copy(update={"likelihood": kind.default_likelihood(True, False)})
    elif cfg.likelihood != kind.default_likelihood(True, False):
        raise UsageError(f"{ds.kind} data are modelled with --likelihood {kind.default_likelihood(True, False)}; "
                         f"drop --likelihood {cfg.likelihood}")
    if len(splits[0]) == 0:
        raise UsageError(f"{cfg.data} leaves no training users after the validation and test users; give more users")
    return Prepared(cfg, ds, tuple(splits), None, None, None, (int(ds.x.shape[1]),), ds.fingerprint())


def resolve_auto_likelihood(cfg: TrainConfig, ds: Dataset) -> TrainConfig:
    """``cfg`` with ``likelihood: auto`` resolved by the data kind, after checking an explicit choice fits."""
    in_unit = in_unit_interval(ds.x) if ds.known_in_unit is None else ds.known_in_unit  # --mmap: no scan
    lik = cfg.likelihood
    mixed = has_categorical(ds.schema)
    kind = kind_of(ds.kind)
    if lik == "auto":
        lik = kind.default_likelihood(in_unit, mixed)
    elif lik == "mixed" and not mixed:
        raise UsageError("--likelihood mixed needs a table with text (categorical) columns; use --likelihood auto")
    elif mixed and lik != "mixed":
        raise UsageError(f"{cfg.data} has text (categorical) columns, which --likelihood {lik} cannot model; "
                         "use --likelihood auto (or mixed)")
    elif kind.likelihood_error(lik, in_unit):
        raise UsageError(kind.likelihood_error(lik, in_unit))
    return cfg.model_copy(update={"likelihood": lik})


def fit_conditions(cfg: TrainConfig, ds: Dataset, splits) -> tuple[Conditioning | None, list, list[str] | None]:
    """For conditional runs: the fitted conditioning, each split's condition rows (attribute columns are
    taken out of the splits' features), and the remaining feature columns."""
    if not (cfg.conditional or cfg.condition_columns):
        return None, [None, None, None], ds.columns
    cond = Conditioning.for_dataset(ds, cfg.condition_columns)
    if cond.kind == "label":
        return cond, [cond.encode_raw(s.y) for s in splits], ds.columns
    raws = []
    for s in splits:
        s.x, raw = cond.take(s.x, ds.columns, s.a, ds.attribute_names)
        raws.append(raw)
    cond.fit(raws[0])
    return cond, [cond.encode_raw(r) for r in raws], cond.feature_columns(ds.columns) if ds.columns else ds.columns


def text_columns_refusal(cfg: TrainConfig, schema: list[dict]) -> str:
    """Why a conditional/M2 run refuses a mixed-type table, naming the text columns (their condition
    handling is numeric: attribute columns are standardized, one-hot blocks would be split apart)."""
    text = [c["name"] for c in schema if c["kind"] == "categorical"]
    flag = "--semi-supervised" if cfg.semi_supervised else \
        "--condition-columns" if cfg.condition_columns else "--conditional"
    asked = [c for c in cfg.condition_columns or [] if c in text]
    if asked:
        return (f"--condition-columns takes numeric columns, and {', '.join(map(repr, asked))} "
                f"{'is a text column' if len(asked) == 1 else 'are text columns'} of {cfg.data}; condition on "
                "numeric columns, or make the text column the labels (--label-column NAME --conditional)")
    shown = ", ".join(map(repr, text[:8])) + (f" and {len(text) - 8} more" if len(text) > 8 else "")
    return (f"{flag} needs a numeric table, and {cfg.data} has text (categorical) column"
            f"{'s' if len(text) > 1 else ''} {shown}; drop {'them' if len(text) > 1 else 'it'} from the table "
            f"(or drop {flag}: an unconditional run models text columns)")


def check_corruption(cfg: TrainConfig, train_x: torch.Tensor) -> None:
    """Refuse corruptions the data cannot take (salt-pepper outside [0, 1])."""
    if cfg.semi_supervised:
        raise UsageError("--corruption cannot be combined with --semi-supervised; drop one")
    if cfg.corruption.startswith("salt-pepper"):
        if not in_unit_interval(train_x):
            raise UsageError("--corruption salt-pepper needs data in [0, 1] (images); use gaussian or masking "
                             "for tables")


def binarize_split(x: torch.Tensor, cfg: TrainConfig, split_index: int) -> torch.Tensor:
    """The fixed binarization of split ``split_index`` (0 train, 1 validation, 2 test) for a run's seed."""
    return binarize(x, seed=cfg.seed * 7919 + split_index + 1)
