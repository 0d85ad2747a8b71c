"""The Python face of vaekit: ``train(...)`` a run, ``load(run_dir)`` it back, use it.

The CLI is a thin layer over these functions; anything the CLI does can be done from here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .conditions import Conditioning
from .config import TrainConfig, load_config_file, make_config
from .core.vae import build_model
from .data import Dataset, Standardizer, binarize, fill_missing, load_source
from .data.kinds import kind_of
from .data.kinds.audio import audio_options
from .errors import RunError, UsageError
from .families import FAMILIES, family_name
from .finish import finish_vae_run
from .preparation import Prepared, binarize_split, prepare  # noqa: F401 (binarize_split: vaekit.api's name)
from .runinfo import build_run_model, check_run_info
from .runs import (CONFIG, METRICS, RESULTS, STATE_JSON, STATE_TENSORS, WEIGHTS, has_checkpoint,
                   load_tensors, lock_run, prepare_run_dir, read_json, read_run_info, regular_file)
from .training import Trainer, resolve_device
from .trained import TrainedVAE

__all__ = ["TrainedVAE", "train", "load", "evaluate", "report"]


# ---------------------------------------------------------------------------------------------------
def train(data: str | Dataset | None = None, out: str | os.PathLike | None = None, *, config: Any = None,
          resume: bool = False, overwrite: bool = False, progress: bool = False, cache_dir: str | None = None,
          on_epoch_end=None, report: bool = True, report_iwae_k: int | None = None,
          report_examples: int | None = None, log: str | None = None, log_uri: str | None = None,
          dist_backend: str | None = None, **settings: Any) -> TrainedVAE:
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
    ``out`` is refused. ``log`` (``"tensorboard"`` or ``"mlflow"``) sends the finished run to that tracker
    (:mod:`vaekit.tracking`; ``log_uri``: MLflow's tracking URI, default the file store ``out/mlruns``).
    Started by torchrun (``vaekit train --nproc N``), each process trains its share of every global batch
    with DistributedDataParallel (``dist_backend``: auto = gloo on CPU, nccl on CUDA) and rank 0 alone writes
    ``out`` (:mod:`vaekit.training.distributed`).
    """
    from .tracking import check_tracker

    check_tracker(log, log_uri, out)
    if report_iwae_k is not None and not 0 <= report_iwae_k <= 1_000_000:
        raise UsageError(f"--report-iwae-k must be between 0 (skip) and 1000000, got {report_iwae_k}")
    if report_examples is not None and report_examples < 1:
        raise UsageError(f"--report-examples must be at least 1, got {report_examples}")
    end = dict(report=report, iwae_k=report_iwae_k, examples=report_examples, progress=progress, log=log,
               log_uri=log_uri)
    from .training import distributed

    with contextlib.ExitStack() as held:
        held.callback(distributed.stop)  # leave the process group this call joined (after the lock is let go)
        return _train(held, data, out, config=config, resume=resume, overwrite=overwrite, progress=progress,
                      cache_dir=cache_dir, on_epoch_end=on_epoch_end, end=end, dist_backend=dist_backend,
                      **settings)


@dataclass
class RunContext:
    """How a family's runner writes its run: the run directory (None: in memory only) and the settings of
    the train call that are not the model's."""

    out: Path | None
    overwrite: bool
    resume: bool
    restart: bool  # resume of a run stopped before its first checkpoint: start at epoch 0
    device: torch.device
    progress: bool
    on_epoch_end: Any
    held: contextlib.ExitStack  # keeps the run directory's lock
    end: dict  # the end-of-run report settings (vaekit.finish.end_of_run)


def _train(held: contextlib.ExitStack, data: str | Dataset | None, out: str | os.PathLike | None, *, config: Any,
           resume: bool, overwrite: bool, progress: bool, cache_dir: str | None, on_epoch_end, end: dict,
           dist_backend: str | None = None, **settings: Any) -> TrainedVAE:
    """The training pipeline: settings → data → :func:`~vaekit.preparation.prepare` → the family's runner."""
    out_path = Path(out) if out is not None else None
    end = dict(end)
    log, log_uri = end.pop("log", None), end.pop("log_uri", None)  # tracking: after the run, not finish's
    in_memory: Dataset | None = None
    if isinstance(data, Dataset):
        if resume:
            raise UsageError("--resume re-reads the run's data source; it cannot continue from an in-memory dataset")
        in_memory, data = dataclasses.replace(data), data.name or "in-memory array"
    if resume:
        cfg, info, restart = _resumed_config(held, out_path, data, settings)
    else:
        cfg, info, restart = _new_config(config, data, settings), None, False
    if cfg.threads is not None:
        from ._threads import configure_threads

        configure_threads(cfg.threads)
    family = FAMILIES[family_name(cfg)]()
    if not resume:
        cfg = family.defaults(cfg)
    family.check(cfg)  # before the data is read and anything is written
    from .training import distributed

    distributed.preflight(cfg.batch_size, resolve_device(cfg.device, cfg.precision), dist_backend)
    kind_options = kind_of(family.data_kind).load_options(cfg, {}) if family.data_kind else {}
    kind_options.setdefault("audio", audio_options(cfg)["audio"])  # spectrogram settings, if the data is audio
    if cfg.mmap and in_memory is None:  # data larger than memory: vaekit.data.outofcore
        kind_options["mmap_plan"] = (cfg.seed, cfg.val_fraction, cfg.test_fraction)
        if resume and cache_dir is None:  # the cache folder training used (config.json's data.mmap_cache)
            from .data.mapped_reads import run_cache_dir

            cache_dir = run_cache_dir(info)
    ds = in_memory if in_memory is not None else \
        load_source(cfg.data, image_size=cfg.image_size, label_column=cfg.label_column, cache_dir=cache_dir,
                    allow_missing=cfg.missing == "mask", **kind_options)
    if cfg.mmap and ds.split_order is None:
        raise UsageError(f"--mmap reads a .npy file, a folder of .npy/.npz shards or a folder of images, not "
                         f"{cfg.data}; drop --mmap")
    prep = prepare(cfg, ds, resolve_likelihood=not resume)
    # a torchrun world is joined once every rank has its data (errors before this are said by rank 0 alone)
    dist, dist_device = distributed.start(cfg.batch_size, resolve_device(cfg.device, cfg.precision), dist_backend,
                                          out_path)
    writer = dist is None or dist.writer  # only rank 0 of a distributed run writes the run directory
    device = resolve_device(prep.cfg.device, prep.cfg.precision) if dist is None else dist_device
    ctx = RunContext(out_path if writer else None, overwrite, resume, restart, device,
                     progress and writer, on_epoch_end, held, end)
    if resume:
        if info["data"]["fingerprint"] != prep.fingerprint:
            raise RunError(f"the data {cfg.data} changed since {out_path} started; --resume needs the same data")
        if restart and writer:  # stopped before its first checkpoint: epoch 0 again, without the unfinished row
            (out_path / METRICS).unlink(missing_ok=True)
    else:
        info = _new_run_info(prep)
    trained = RUNNERS[family_name(prep.cfg)](prep, info, ctx)
    if log is not None and out_path is not None and writer:  # the run has ended; its lock is still held
        from .tracking import latent_sample, log_run

        codes = latent_sample(trained, prep.splits[2]) if family_name(prep.cfg) == "vae" else None
        log_run(out_path, log, log_uri, codes)
    return trained


def _resumed_config(held: contextlib.ExitStack, out: Path | None, data: Any,
                    settings: dict) -> tuple[TrainConfig, dict, bool]:
    """(saved config, config.json, whether to restart at epoch 0) of a run to continue; its lock is taken."""
    if out is None:
        raise UsageError("--resume needs --out RUN, the run directory to continue")
    info = read_run_info(out)
    from .training.distributed import env_world

    if (env_world() or (0,))[0] == 0:  # a distributed run's rank 0 holds the lock for all its ranks
        held.enter_context(lock_run(out, "train --resume"))
        restart = not has_checkpoint(out)
    else:  # the other ranks only read (has_checkpoint would clear rank 0's temporary files)
        restart = not (out / STATE_TENSORS).is_file()
    cfg = _saved_config(info, out)
    given = make_config(None, **({"data": data} if data else {}), **settings) if (data or settings) else None
    if given is not None:
        diff = [k for k in given.model_fields_set if k != "threads" and getattr(given, k) != getattr(cfg, k)]
        if diff:
            raise UsageError(f"--resume continues {out} with its saved settings; drop "
                             + ", ".join("--" + k.replace("_", "-") for k in sorted(diff)))
        if "threads" in given.model_fields_set:  # the machine's business, not the run's: may change
            cfg = cfg.model_copy(update={"threads": given.threads})
    return cfg, info, restart


def _new_config(config: Any, data: Any, settings: dict) -> TrainConfig:
    """The settings of a new run: ``config`` (a TrainConfig, a dict or a YAML path) overridden by ``settings``."""
    if isinstance(config, TrainConfig):  # what was set, so a family's own defaults fill the rest
        base = config.model_dump(include=config.model_fields_set)
    elif isinstance(config, dict):
        base = dict(config)
    elif config is not None:
        base = load_config_file(config)
    else:
        base = {}
    return make_config(base, **({"data": data} if data else {}), **settings)


def _new_run_info(prep: Prepared) -> dict:
    """The ``config.json`` of a new run (its family's runner may add to it before writing it)."""
    return {"format": "vaekit-run", "run_format": 1, "vaekit_version": _version(),
            "torch_version": torch.__version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": prep.cfg.model_dump(), "data": prep.data_info(),
            "scaler": prep.scaler.to_dict() if prep.scaler is not None else None,
            "condition": prep.cond.to_dict() if prep.cond is not None else None}


def _run_vae(prep: Prepared, info: dict, ctx: RunContext) -> TrainedVAE:
    """The ``vae`` family's run: build, train through :class:`Trainer`, then results, figures and report."""
    cfg, out = prep.cfg, ctx.out
    if out is not None and not ctx.resume:
        prepare_run_dir(out, ctx.overwrite, info, ctx.held)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, prep.shape, prep.cond.dim if prep.cond is not None else 0, info["data"].get("schema"))
    trainer = Trainer(model, cfg, ctx.device, run_dir=out, progress=ctx.progress, on_epoch_end=ctx.on_epoch_end,
                      family=FAMILIES[family_name(cfg)]())  # vae, sparse-vae, vae-gan (its two optimizers)
    if ctx.resume and not ctx.restart:
        trainer.load_checkpoint()
    result = trainer.fit(prep.splits[0], prep.splits[1])
    trained = TrainedVAE(trainer.model, cfg, info, out, prep.scaler, result, prep.cond)
    if out is not None:
        finish_vae_run(trained, trainer, prep, **ctx.end)
    return trained


def _run_m2(prep: Prepared, info: dict, ctx: RunContext) -> TrainedVAE:
    from .semisupervised_api import train_semisupervised

    return train_semisupervised(prep, info, ctx)


def _run_recommender(prep: Prepared, info: dict, ctx: RunContext) -> TrainedVAE:
    from .recommend_api import train_recommender

    return train_recommender(prep, info, ctx)


def _run_series(prep: Prepared, info: dict, ctx: RunContext) -> TrainedVAE:
    from .series_api import train_series

    return train_series(prep, info, ctx)


def _run_sequences(prep: Prepared, info: dict, ctx: RunContext) -> TrainedVAE:
    from .sequence_api import train_sequences

    return train_sequences(prep, info, ctx)


#: how each model family's run is carried out (build, train through the one Trainer, finish the run directory)
RUNNERS = {"vae": _run_vae, "m2": _run_m2, "mult-vae": _run_recommender, "mult-dae": _run_recommender,
           "recvae": _run_recommender, "series-vae": _run_series, "forecast-cvae": _run_series,
           "sparse-vae": _run_vae, "vae-gan": _run_vae, "seq-vae": _run_sequences}


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


def load_vae(run_dir: str | os.PathLike, device: str = "cpu") -> TrainedVAE:
    """:func:`load` for the commands of VAEs (sample, encode, evaluate, report…): a recommendation run
    (``mult-vae``/``mult-dae``) is refused in one line naming what it can do instead."""
    trained = load(run_dir, device)
    family = family_name(trained.config)
    if not FAMILIES[family].example_model:
        hint = FAMILIES[family].other_commands.format(run=run_dir)
        if hint.startswith("(recommendation) "):  # the recommenders' words, as before
            raise UsageError(f"{run_dir} is a {family} run (recommendation), which this command does not take; "
                             + hint[len("(recommendation) "):])
        raise UsageError(f"{run_dir} is a {family} run, which this command does not take; {hint}")
    return trained


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
        ds = trained.load_data(source, cache_dir=cache_dir, mapped=True)  # --mmap runs: the cache, not memory
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
    return trained.to_model_units(x), None, trained.condition_rows(c, len(x)), {"data": "array", "split": "all"}, mask


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
    Returns a JSON-ready dict (nats per example, bits per dimension, active units, warnings); for a
    recommendation run, the ranking metrics of ``split``'s users (NDCG@100, Recall@20/50, coverage@20; see
    :func:`vaekit.recommend_api.evaluate_recommender`).
    """
    trained = model if isinstance(model, TrainedVAE) else load(model)
    if trained.kind.windowed:  # a time series: rolling-origin forecast metrics or −ELBO per window
        from .series_api import evaluate_series

        return evaluate_series(trained, data, split, seed)

    from .tasks.sequences import evaluate_strings, is_sequence_info

    if is_sequence_info(trained.info):  # strings: −ELBO per string and exact reconstructions
        return evaluate_strings(trained, data, split, seed)
    if not FAMILIES[family_name(trained.config)].example_model:  # recommendation: ranking metrics
        from .recommend_api import evaluate_recommender

        return evaluate_recommender(trained, data, split, cache_dir)
    x, _, ct, where, mask = _eval_data(trained, data, split, seed, cache_dir, c)
    return {**where, **_evaluate_model_units(trained, x, iwae_k, seed, ct, mask, where, progress)}


def _write_report(trained: "TrainedVAE", x: torch.Tensor, y: torch.Tensor | None, evaluation: dict,
                  c: torch.Tensor | None = None) -> Path:
    """Write ``evaluation.json`` and ``report.html`` into the run directory; return the report's path."""
    from .finish import write_report

    return write_report(trained, x, y, evaluation, c)


def report(run_dir: str | os.PathLike, *, data: Any = None, split: str = "test", iwae_k: int = 100,
           seed: int = 0, cache_dir: str | None = None, progress: bool = False) -> Path:
    """Evaluate a run and write its self-contained ``report.html``, ``evaluation.json`` and model card
    (``README.md``, :mod:`vaekit.evaluation.model_card`); returns the report's path.
    ``progress`` shows a progress bar of the IWAE pass on stderr."""
    from .finish import write_card

    trained = load(run_dir)
    if trained.kind.windowed:  # a time series: forecast metrics or −ELBO per window, its pictures and card
        from .series_report import report_series

        return report_series(trained, data, split, seed)
    from .tasks.sequences import is_sequence_info

    if is_sequence_info(trained.info):  # strings: −ELBO, MOSES metrics, molecule drawings, card
        from .sequence_report import report_sequences

        return report_sequences(trained, data, split, seed)
    if not FAMILIES[family_name(trained.config)].example_model:  # recommendation: ranking metrics and card
        from .recommend_api import report_recommender

        return report_recommender(trained, data, split, cache_dir)
    with lock_run(run_dir, "report"):  # taken before computing: a read-only or busy run fails now, not at the write
        x, y, c, where, mask = _eval_data(trained, data, split, seed, cache_dir)
        ev = {**where, **_evaluate_model_units(trained, x, iwae_k, seed, c, mask, where, progress)}
        path = _write_report(trained, x, y, ev, c)
        write_card(trained)
        return path


def _version() -> str:
    from . import __version__

    return __version__
