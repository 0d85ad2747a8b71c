"""The Python face of vaekit: ``train(...)`` a run, ``load(run_dir)`` it back, use it.

The CLI is a thin layer over these functions; anything the CLI does can be done from here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .conditions import Conditioning
from .config import TrainConfig, load_config_file, make_config
from .data import Dataset, Standardizer, binarize, fill_missing, load_source
from .data.kinds import kind_of
from .data.tables import categorical_features, has_categorical
from .errors import RunError, UsageError
from .families import FAMILIES, family_name
from .evaluation.figures import save_stacked
from .core.vae import architecture_error, build_model
from .runinfo import build_run_model, check_run_info
from .runs import (CONFIG, METRICS, RESULTS, STATE_JSON, WEIGHTS, has_checkpoint,
                   load_tensors, lock_run, prepare_run_dir, read_json, read_run_info, regular_file, write_json)
from .evaluation.metrics import evaluate_elbo
from .training.trainer import Trainer, resolve_device
from .trained import TrainedVAE

__all__ = ["TrainedVAE", "train", "load", "evaluate", "report"]


# ---------------------------------------------------------------------------------------------------
def _resolve_likelihood(cfg: TrainConfig, ds: Dataset) -> TrainConfig:
    lo, hi = torch.aminmax(ds.x)  # no [N, D] boolean temporaries: Fashion-MNIST is 188 MB of float32
    in_unit = bool(lo >= 0) and bool(hi <= 1)
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


def _data_info(ds: Dataset, splits, fingerprint: str, shape: tuple[int, ...], columns: list[str] | None) -> dict:
    return {"source": ds.name, "kind": ds.kind, "shape": list(shape), "fingerprint": fingerprint,
            "n_train": len(splits[0]), "n_val": len(splits[1]), "n_test": len(splits[2]),
            "classes": ds.classes, "columns": columns,
            **({"schema": ds.schema} if has_categorical(ds.schema) else {})}


def _conditions(cfg: TrainConfig, ds: Dataset, splits) -> tuple[Conditioning | None, list, list[str] | None]:
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


def train(data: str | Dataset | None = None, out: str | os.PathLike | None = None, *, config: Any = None,
          resume: bool = False, overwrite: bool = False, progress: bool = False, cache_dir: str | None = None,
          on_epoch_end=None, report: bool = True, report_iwae_k: int | None = None,
          report_examples: int | None = None, **settings: Any) -> TrainedVAE:
    """Train a VAE and return it; with ``out``, everything is saved in that run directory.

    ``data`` is a source string (see :func:`vaekit.data.load_source`) or an in-memory :class:`Dataset`
    (e.g. from :func:`vaekit.data.dataset_from_array`; the config's ``data`` then records its name).
    ``config`` is a YAML path, a dict or a :class:`TrainConfig`; keyword ``settings`` (the CLI's flags,
    e.g. ``latent_dim=8``) override it. ``resume=True`` continues an interrupted run in ``out`` with
    its saved settings (a run stopped before its first epoch ended starts again at epoch 0). With
    ``report``, the run ends with ``evaluation.json`` (IWAE with ``report_iwae_k`` samples on
    ``report_examples`` test examples; None = chosen so that its IWAE pass costs about 10% of the
    training time, see :mod:`vaekit.finish`) and ``report.html``. The run directory's lock
    (:func:`vaekit.runs.lock_run`) is held from its preparation to the end, so a second writer of the same
    ``out`` is refused.
    """
    if report_iwae_k is not None and not 0 <= report_iwae_k <= 1_000_000:
        raise UsageError(f"--report-iwae-k must be between 0 (skip) and 1000000, got {report_iwae_k}")
    if report_examples is not None and report_examples < 1:
        raise UsageError(f"--report-examples must be at least 1, got {report_examples}")
    end = dict(report=report, iwae_k=report_iwae_k, examples=report_examples, progress=progress)
    with contextlib.ExitStack() as held:
        return _train(held, data, out, config=config, resume=resume, overwrite=overwrite, progress=progress,
                      cache_dir=cache_dir, on_epoch_end=on_epoch_end, end=end, **settings)


def _train(held: contextlib.ExitStack, data: str | Dataset | None, out: str | os.PathLike | None, *, config: Any,
           resume: bool, overwrite: bool, progress: bool, cache_dir: str | None, on_epoch_end, end: dict,
           **settings: Any) -> TrainedVAE:
    out_path = Path(out) if out is not None else None
    restart = False
    in_memory: Dataset | None = None
    if isinstance(data, Dataset):
        if resume:
            raise UsageError("--resume re-reads the run's data source; it cannot continue from an in-memory dataset")
        in_memory, data = dataclasses.replace(data), data.name or "in-memory array"
    if resume:
        if out_path is None:
            raise UsageError("--resume needs --out RUN, the run directory to continue")
        info = read_run_info(out_path)
        held.enter_context(lock_run(out_path, "train --resume"))
        restart = not has_checkpoint(out_path)
        cfg = _saved_config(info, out_path)
        given = make_config(None, **({"data": data} if data else {}), **settings) if (data or settings) else None
        if given is not None:
            diff = [k for k in given.model_fields_set if k != "threads" and getattr(given, k) != getattr(cfg, k)]
            if diff:
                raise UsageError(f"--resume continues {out_path} with its saved settings; drop "
                                 + ", ".join("--" + k.replace("_", "-") for k in sorted(diff)))
            if "threads" in given.model_fields_set:  # the machine's business, not the run's: may change
                cfg = cfg.model_copy(update={"threads": given.threads})
    else:
        if isinstance(config, TrainConfig):
            base = config.model_dump()
        elif isinstance(config, dict):
            base = dict(config)
        elif config is not None:
            base = load_config_file(config)
        else:
            base = {}
        cfg = make_config(base, **({"data": data} if data else {}), **settings)

    if cfg.threads is not None:
        from ._threads import configure_threads

        configure_threads(cfg.threads)
    family = FAMILIES[family_name(cfg)]()
    family.check(cfg)
    ds = in_memory if in_memory is not None else \
        load_source(cfg.data, image_size=cfg.image_size, label_column=cfg.label_column, cache_dir=cache_dir,
                    allow_missing=cfg.missing == "mask")
    splits = kind_of(ds.kind).split(ds, cfg)
    if cfg.semi_supervised and (cfg.conditional or cfg.condition_columns):
        raise UsageError("--semi-supervised cannot be combined with --conditional or --condition-columns")
    if has_categorical(ds.schema) and (cfg.conditional or cfg.condition_columns or cfg.semi_supervised):
        raise UsageError(_text_columns_refusal(cfg, ds.schema))
    cond, conds, feature_columns = _conditions(cfg, ds, splits)
    one_hot = categorical_features(ds.schema, ds.x.shape[1]) if has_categorical(ds.schema) else None
    scaler = kind_of(ds.kind).fit_preprocessing(splits[0].x, feature_columns, one_hot)
    if scaler is not None:
        for s in splits:
            s.x = scaler.transform(s.x)
    masks: list = [None, None, None]
    if cfg.missing == "mask":  # MIWAE: missing cells are mean-filled (0) for the encoder, masked out of p(x|z)
        for i, s in enumerate(splits):
            s.x, masks[i] = fill_missing(s.x)
    if not resume:
        cfg = _resolve_likelihood(cfg, ds)
    if cfg.corruption is not None:
        _check_corruption(cfg, splits[0].x)
    if cfg.binarize != "none":
        for i, s in enumerate(splits):
            if cfg.binarize == "static" or i > 0:  # dynamic: train draws afresh each step
                s.x = binarize_split(s.x, cfg, i)
    shape = tuple(splits[0].x.shape[1:])
    err = architecture_error(cfg, shape)
    if err:
        raise UsageError(err)
    device = resolve_device(cfg.device, cfg.precision)

    fingerprint = ds.fingerprint()
    # The splits are copies: drop the full array so training does not hold the data twice.
    ds.x = ds.x[:0].clone()
    if resume:
        if info["data"]["fingerprint"] != fingerprint:
            raise RunError(f"the data {cfg.data} changed since {out_path} started; --resume needs the same data")
        if restart:  # stopped before its first checkpoint: epoch 0 again, without the unfinished epoch's row
            (out_path / METRICS).unlink(missing_ok=True)
    else:
        info = {"format": "vaekit-run", "run_format": 1, "vaekit_version": _version(),
                "torch_version": torch.__version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "config": cfg.model_dump(), "data": _data_info(ds, splits, fingerprint, shape, feature_columns),
                "scaler": scaler.to_dict() if scaler is not None else None,
                "condition": cond.to_dict() if cond is not None else None}
        if out_path is not None and not cfg.semi_supervised:
            prepare_run_dir(out_path, overwrite, info, held)

    if cfg.semi_supervised:
        from .semisupervised_api import train_semisupervised

        return train_semisupervised(cfg, ds, splits, shape, info, scaler, out_path, overwrite, device, progress,
                                    resume=resume, on_epoch_end=on_epoch_end, held=held, end=end)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, shape, cond.dim if cond is not None else 0, info["data"].get("schema"))
    trainer = Trainer(model, cfg, device, run_dir=out_path, progress=progress, on_epoch_end=on_epoch_end)
    if resume and not restart:
        trainer.load_checkpoint()
    for split, c, m in zip(splits, conds, masks):
        split.c, split.mask = c, m
    result = trainer.fit(splits[0], splits[1])
    trained = TrainedVAE(trainer.model, cfg, info, out_path, scaler, result, cond)
    if out_path is not None:
        _finish_run(trained, trainer, splits, conds, ds, masks, **end)
    return trained


def _text_columns_refusal(cfg: TrainConfig, schema: list[dict]) -> str:
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


def _check_corruption(cfg: TrainConfig, train_x: torch.Tensor) -> None:
    if cfg.semi_supervised:
        raise UsageError("--corruption cannot be combined with --semi-supervised; drop one")
    if cfg.corruption.startswith("salt-pepper"):
        lo, hi = torch.aminmax(train_x)
        if lo < 0 or hi > 1:
            raise UsageError("--corruption salt-pepper needs data in [0, 1] (images); use gaussian or masking "
                             "for tables")


def _denoising_results(trained: TrainedVAE, x: torch.Tensor, c: torch.Tensor | None,
                       run: Path) -> dict[str, Any]:
    """Test-split denoising: MSE per feature of the corrupted input and of its reconstruction, vs the clean data."""
    from .data.noise import corrupt

    cfg, model = trained.config, trained.model
    lo, hi = torch.aminmax(x) if len(x) else (torch.zeros(()), torch.zeros(()))
    bounded = bool(lo >= 0) and bool(hi <= 1)
    noisy = corrupt(x, cfg.corruption, bounded, generator=torch.Generator().manual_seed(cfg.seed + 2))
    with torch.no_grad():
        den = torch.cat([model.reconstruct(noisy[i: i + 1024].to(trained.device),
                                           None if c is None else c[i: i + 1024].to(trained.device)).cpu()
                         for i in range(0, len(noisy), 1024)]) if len(x) else x
    if kind_of(trained.info["data"]["kind"]).pictures:
        save_stacked([noisy[:32], den[:32], x[:32]], run / "denoising.png")
    return {"corruption": cfg.corruption, "split": "test",
            "mse_corrupted_input": float(((noisy - x) ** 2).mean()) if len(x) else None,
            "mse_denoised": float(((den - x) ** 2).mean()) if len(x) else None,
            "units": "per feature, model input units (standardized columns for tables)"}


def binarize_split(x: torch.Tensor, cfg: TrainConfig, split_index: int) -> torch.Tensor:
    """The fixed binarization of split ``split_index`` (0 train, 1 validation, 2 test) for a run's seed."""
    return binarize(x, seed=cfg.seed * 7919 + split_index + 1)


def _finish_run(trained: TrainedVAE, trainer: Trainer, splits, conds, ds: Dataset,
                masks=(None, None, None), **end: Any) -> None:
    """Best weights, results.json, figures, evaluation and report into the run directory; mark it finished.
    ``end``: :func:`vaekit.finish.end_of_run`'s report settings."""
    from .finish import end_of_run
    from .runs import save_tensors

    run = trained.run_dir
    model = trained.model.eval()
    save_tensors(run / WEIGHTS, model.state_dict())
    r = trained.result
    results: dict[str, Any] = {"units": "nats per example", "estimator": "ELBO (1 posterior sample), beta = 1",
                               "binarized": trained.config.binarize,
                               "epochs_run": r.epochs_run, "best_epoch": r.best_epoch,
                               "stopped_early": r.stopped_early}
    if kind_of(ds.kind).loss_note:
        results["note"] = kind_of(ds.kind).loss_note
    if masks[0] is not None:
        results["missing"] = "mask: likelihoods of the observed cells only (MIWAE)"
        results["observed_fraction"] = {n: float(m.mean()) if m.numel() else None
                                        for n, m in zip(("train", "validation", "test"), masks)}
    torch.manual_seed(trained.config.seed + 1)
    for name, split, c, m in zip(("train", "validation", "test"), splits, conds, masks):
        results[name] = evaluate_elbo(model, split.x, c=c, mask=m) if len(split) else None
    if trained.config.corruption is not None:
        results["denoising"] = _denoising_results(trained, splits[2].x, conds[2], run)
    write_json(run / RESULTS, results)
    end_of_run(trained, splits[2].x, splits[2].y, conds[2], masks[2], results["test"], r.history, **end)
    trainer.save_checkpoint(finished=True)


def _saved_config(info: dict, run: Path) -> TrainConfig:
    """The run's settings, after checking all of config.json against the schema training writes."""
    return check_run_info(info, run)


def load(run_dir: str | os.PathLike, device: str = "cpu") -> TrainedVAE:
    """Load a trained (or interrupted: best weights so far) run directory."""
    run = Path(run_dir)
    info = read_run_info(run)
    cfg = _saved_config(info, run)
    shape = tuple(int(s) for s in info["data"]["shape"])
    try:
        cond = Conditioning.from_dict(info["condition"]) if info.get("condition") else None
        if info.get("semi_supervised") and cond is None:
            raise ValueError("a semi-supervised run needs its label conditioning")
        with torch.device("meta"):  # shapes only: nothing is allocated for a model config.json may exaggerate
            expected = build_run_model(cfg, info, shape, cond)[1].state_dict()
    except (KeyError, TypeError, ValueError) as err:
        raise RunError(f"{run / CONFIG} does not describe a model vaekit can build ({err}); retrain the run") \
            from None
    wfile = run / WEIGHTS
    if not regular_file(wfile):
        state: Any = {}
        if regular_file(run / STATE_JSON):
            with contextlib.suppress(ValueError):
                state = read_json(run / STATE_JSON)
        if isinstance(state, dict) and state.get("finished"):
            raise RunError(f"{run} has no {WEIGHTS} although it finished training; restore the file or train "
                           f"it again with `vaekit train --out {run} --overwrite`")
        raise RunError(f"{run} has no {WEIGHTS} (training stopped before its first epoch ended); "
                       f"continue it with `vaekit train --out {run} --resume`")
    weights = load_tensors(wfile)
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise RunError(f"{wfile} does not match {CONFIG}: missing {missing[:3]}, unexpected {extra[:3]}; "
                       "the weights belong to another model")
    for k, v in expected.items():
        if tuple(weights[k].shape) != tuple(v.shape):
            raise RunError(f"{wfile} does not match {CONFIG}: {k} has shape {list(weights[k].shape)}, "
                           f"config needs {list(v.shape)}; the weights belong to another model")
    vae, model = build_run_model(cfg, info, shape, cond)  # now no bigger than the weights file
    model.load_state_dict(weights)
    scaler = Standardizer.from_dict(info["scaler"]) if info.get("scaler") else None
    trained = TrainedVAE(vae, cfg, info, run, scaler, conditioning=cond)
    trained.classifier = model.classifier if model is not vae else None
    if trained.classifier is not None:
        trained.classifier.eval().to(device)
    return trained.to(device)


SPLITS = ("train", "validation", "test")


def _eval_data(trained: "TrainedVAE", data: Any, split: str, seed: int, cache_dir: str | None = None,
               c: Any = None):
    """(x in model units, labels or None, conditions or None, description) for evaluating ``trained`` on
    ``data``/``split``."""
    if split not in SPLITS:
        raise UsageError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    cfg = trained.config
    if data is None or isinstance(data, (str, os.PathLike)):
        source = cfg.data if data is None else os.fspath(data)
        ds = trained.load_data(source, cache_dir=cache_dir)
        same = trained.run_dir is not None and (trained.run_dir / RESULTS).is_file() and \
            ds.fingerprint() == trained.info["data"].get("fingerprint")  # results.json's numbers apply
        parts = kind_of(ds.kind).split(ds, cfg)
        part = parts[SPLITS.index(split)]
        if len(part.x) == 0:
            raise UsageError(f"the {split} split of {source} is empty; choose another --split")
        ds.x, ds.y = part.x, part.y
        mask = fill_missing(ds.x)[1] if cfg.missing == "mask" else None
        xt, ct = trained.dataset_inputs(ds)
        where = {"data": source, "split": split, **({"same_data_as_training": True} if same else {})}
        if cfg.binarize != "none":
            xt = binarize_split(xt, cfg, SPLITS.index(split)).to(xt.device)
        if trained.classifier is not None:  # M2: p(x|y) needs the true label; use the labelled rows
            known = part.y >= 0
            if not bool(known.any()):
                raise UsageError(f"the {split} split of {source} has no labelled examples to evaluate p(x|y) on")
            xt, part.y, ct = xt[known.to(xt.device)], part.y[known], ct[known.to(ct.device)]
            mask = None if mask is None else mask[known]
        return xt, part.y, ct, where, mask
    x = torch.as_tensor(np.asarray(data) if not torch.is_tensor(data) else data, dtype=torch.float32)
    if cfg.binarize != "none":
        x = binarize(x, seed=seed)
    if len(x) == 0:
        raise UsageError("the data to evaluate is empty")
    mask = fill_missing(x)[1] if cfg.missing == "mask" else None
    return trained._input(x), None, trained._cond(c, len(x)), {"data": "array", "split": "all"}, mask


def _evaluate_model_units(trained: "TrainedVAE", x: torch.Tensor, iwae_k: int, seed: int,
                          c: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                          where: dict | None = None, progress: bool = False) -> dict:
    """The evaluation of ``x``; the one-sample ELBO of the run's own split is the one in results.json."""
    from .finish import evaluate_run

    return evaluate_run(trained, x, iwae_k, seed, c, mask, stored=_stored_elbo(trained, where), progress=progress)


def _stored_elbo(trained: "TrainedVAE", where: dict | None) -> dict | None:
    """results.json's −ELBO of the split ``where`` names when it is the run's own data (same fingerprint)."""
    if not where or not where.get("same_data_as_training") or trained.run_dir is None:
        return None
    path = trained.run_dir / RESULTS
    stored = read_json(path).get(where.get("split")) if path.is_file() else None
    return stored if isinstance(stored, dict) and {"elbo", "recon", "kl"} <= stored.keys() else None


def evaluate(model: "TrainedVAE | str | os.PathLike", data: Any = None, *, split: str = "test", iwae_k: int = 0,
             seed: int = 0, cache_dir: str | None = None, c: Any = None, progress: bool = False) -> dict:
    """Evaluate a trained model (or a run directory) on data; see :func:`vaekit.evaluation.evaluate`.

    ``data`` is a source string (split like the run's own data, with the run's seed, and ``split`` picked),
    a tensor/array of raw examples (used whole; conditional models then need ``c``), or None for the run's
    own training source.
    Returns a JSON-ready dict (nats per example, bits per dimension, active units, warnings).
    """
    trained = model if isinstance(model, TrainedVAE) else load(model)
    x, _, ct, where, mask = _eval_data(trained, data, split, seed, cache_dir, c)
    return {**where, **_evaluate_model_units(trained, x, iwae_k, seed, ct, mask, where, progress)}


def _write_report(trained: "TrainedVAE", x: torch.Tensor, y: torch.Tensor | None, evaluation: dict,
                  c: torch.Tensor | None = None) -> Path:
    """Write ``evaluation.json`` and ``report.html`` into the run directory; return the report's path."""
    from .finish import write_report

    return write_report(trained, x, y, evaluation, c)


def report(run_dir: str | os.PathLike, *, data: Any = None, split: str = "test", iwae_k: int = 100,
           seed: int = 0, cache_dir: str | None = None, progress: bool = False) -> Path:
    """Evaluate a run and write its self-contained ``report.html``; returns the report's path.
    ``progress`` shows a progress bar of the IWAE pass on stderr."""
    trained = load(run_dir)
    with lock_run(run_dir, "report"):  # taken before computing: a read-only or busy run fails now, not at the write
        x, y, c, where, mask = _eval_data(trained, data, split, seed, cache_dir)
        ev = {**where, **_evaluate_model_units(trained, x, iwae_k, seed, c, mask, where, progress)}
        return _write_report(trained, x, y, ev, c)


def _version() -> str:
    from . import __version__

    return __version__
