"""Hyperparameter search over vaekit runs with Optuna (``vaekit tune``).

One *study* per tune folder, kept in a real database (SQLite ``study.db`` in the folder by default, or any
SQLAlchemy URL), so that a search survives interruptions and several processes or machines can work on it.
Each *trial* is an ordinary vaekit run in ``TUNE_DIR/trials/NNNN``; it reports its best validation −ELBO so
far (nats per example, β = 1) after every epoch, so the pruner can stop it early.

Counting: ``trials`` is the study's total of *finished* trials (complete, pruned, or failed because of their
own settings, e.g. a diverging loss). A trial interrupted by Ctrl-C/SIGTERM, or whose worker died (found by a
heartbeat after ``GRACE_S`` seconds), is marked FAIL and queued again with the same hyperparameters; its run
continues from its last epoch checkpoint. So re-running the same command finishes the remaining trials.

Layer: beside :mod:`vaekit.api` (it trains through ``api.train``); Optuna is imported inside functions.
This module checks the request, opens the study and hands it to the workers; the database is
:mod:`.storage`, the sampler/pruner/result types :mod:`.job`, one trial :mod:`.objective`, the worker
processes :mod:`.workers`, and what a search writes :mod:`.report`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..config import TrainConfig, load_config_file, load_yaml, make_config
from ..errors import UsageError
from ..runs import read_json, write_json
from .job import MAXIMIZED, METRICS, PRUNERS, SAMPLERS, Job, TuneResult
from .job import make_pruner, make_sampler  # noqa: F401 (importable from here too)
from .report import results
from .space import RECOMMEND_SPACE_YAML, SEQUENCE_SPACE_YAML, SERIES_SPACE_YAML, SearchSpace, load_space, parse_space
from .storage import GRACE_S, HEARTBEAT_S  # noqa: F401 (importable from here too)
from .storage import mask_url, open_storage, open_study, trial_counts
from .workers import run_worker  # noqa: F401 (importable from here too)
from .workers import run_workers as _run_workers  # tune runs the workers through this name (tests replace it)

TUNE_JSON = "tune.json"


def tune(data: str | None = None, out: str | os.PathLike | None = None, *, space: Any = None, sampler: str = "tpe",
         trials: int = 20, storage: str | None = None, study: str | None = None, jobs: int = 1,
         timeout: float | None = None, metric: str | None = None, pruner: str = "median",
         allow_partial_grid: bool = False, config: Any = None, epochs: int | None = None, seed: int = 0,
         iwae_k: int = 100, report: bool = True, quiet: bool = False, log: str | None = None,
         log_uri: str | None = None, family: str | None = None) -> TuneResult:
    """Search hyperparameters of vaekit runs on ``data``; everything is written to the folder ``out``.

    ``space`` is a YAML path, a dict in the same format, or None (the default space); ``trials`` is the
    study's total of finished trials (a rerun continues the study in ``out``). ``metric`` (lower is better,
    nats per example) is what is minimized: ``val_elbo`` (validation −ELBO of the best weights),
    ``val_iwae`` (its IWAE bound with ``iwae_k`` samples, computed once at the end of each trial; pruning
    still watches the per-epoch −ELBO) or ``val_recon``; None: ``val_elbo``. For the recommendation families
    (``family`` ``mult-vae``/``mult-dae``/``recvae``, or ``family`` in ``config``/the space) the metric is
    ``val_ndcg@100`` (validation NDCG@100, maximized: the study's direction is "maximize") and the default
    space is :data:`~vaekit.tuning.space.RECOMMEND_SPACE_YAML`. ``jobs`` > 1 runs that many worker processes.
    Returns a :class:`TuneResult`; writes ``trials.csv``, ``best_config.yaml`` and ``tune_report.html``.
    ``log`` sends each completed trial's run to a tracker (:mod:`vaekit.tracking`): TensorBoard in
    ``trials/NNNN/tensorboard``, MLflow one run per trial in ``log_uri`` (default: the file store ``out/mlruns``).
    """
    if out is None:
        raise UsageError("--out TUNE_DIR is needed: the folder that keeps the study, its trials and results")
    from ..tracking import MLFLOW_DIR, check_tracker

    check_tracker(log, log_uri, out)
    if log == "mlflow" and log_uri is None:  # one store for the study's trials, beside them
        log_uri = (Path(out) / MLFLOW_DIR).resolve().as_uri()
    _check_options(sampler, pruner, metric, trials, jobs, timeout, iwae_k)
    sp, base, base_cfg = _settings(space, config, data, epochs, seed, family)
    metric = _metric_for(base_cfg, metric)
    target = _grid_size(sp, trials, allow_partial_grid) if sampler == "grid" else trials
    from ..data import load_source
    from ..data.kinds import kind_of
    from ..families import FAMILIES, family_name

    kind = FAMILIES[family_name(base_cfg)].data_kind
    load_source(base_cfg.data, image_size=base_cfg.image_size, label_column=base_cfg.label_column,  # fail early
                **(kind_of(kind).load_options(base_cfg, {}) if kind else {}))

    tune_dir = Path(out)
    name = study or tune_dir.resolve().name
    url = storage or f"sqlite:///{tune_dir / 'study.db'}"
    where = "default (study.db in the tune folder)" if storage is None else mask_url(storage)
    desc = {"data": base_cfg.data, "metric": metric, "iwae_k": iwae_k if metric == "val_iwae" else None,
            "space": sp.to_dict(), "settings": base}
    the_study = _start_study(tune_dir, url, name, where, json.loads(json.dumps(desc)), own_db=storage is None,
                             extra={"sampler": sampler, "pruner": pruner, "trials": trials},
                             direction="maximize" if metric in MAXIMIZED else "minimize")
    before = trial_counts(the_study)
    job = Job(tune_dir=str(tune_dir), url=url, study=name, sampler=sampler, pruner=pruner, target=target,
              metric=metric, iwae_k=iwae_k, seed=seed, space=sp.to_dict(), base=base, epochs=base_cfg.epochs,
              deadline=time.time() + timeout if timeout else None, quiet=quiet, log=log, log_uri=log_uri)
    if not quiet:
        left = max(0, target - before["finished"])
        print(f"study '{name}' in {mask_url(url)}: {before['finished']} of {target} trials finished"
              + (f"; running {left} more with {jobs} worker{'s' if jobs > 1 else ''}" if left else ""), flush=True)
    interrupted = False
    why = "done"
    try:
        why = _run_workers(job, jobs) if before["finished"] < target else "done"
    except KeyboardInterrupt:
        interrupted = True
    return _results(the_study, tune_dir, where, job, sp, figures=report, interrupted=interrupted, why=why)


def _check_options(sampler: str, pruner: str, metric: str, trials: int, jobs: int, timeout: float | None,
                   iwae_k: int) -> None:
    """Refuse an out-of-range option in one line naming the flag."""
    if sampler not in SAMPLERS:
        raise UsageError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if pruner not in PRUNERS:
        raise UsageError(f"--pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    if metric is not None and metric not in METRICS:
        raise UsageError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if not 1 <= trials <= 100_000:
        raise UsageError(f"--trials must be between 1 and 100000, got {trials}")
    if not 1 <= jobs <= 256:
        raise UsageError(f"--jobs must be between 1 and 256, got {jobs}")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {timeout}")
    if not 1 <= iwae_k <= 100_000:
        raise UsageError(f"--iwae-k must be between 1 and 100000, got {iwae_k}")


def _metric_for(cfg: TrainConfig, metric: str | None) -> str:
    """The metric a search of ``cfg``'s family watches: NDCG@100 for recommenders, an ELBO-type one otherwise."""
    from ..families import FAMILIES, family_name

    if FAMILIES[family_name(cfg)].data_kind in ("series", "sequences"):  # −ELBO per window / per string
        series = FAMILIES[family_name(cfg)].data_kind == "series"
        kind, unit = ("series", "window") if series else (cfg.family, "string")
        if metric not in (None, "val_elbo", "val_recon"):
            raise UsageError(f"--metric {metric} is not computed for {cfg.family} runs; a {kind} search watches the "
                             f"validation −ELBO per {unit} (--metric val_elbo, or val_recon)")
        return metric or "val_elbo"
    ranking = not FAMILIES[family_name(cfg)].example_model
    if metric is None:
        return "val_ndcg@100" if ranking else "val_elbo"
    if ranking and metric not in MAXIMIZED:
        raise UsageError(f"--metric {metric} is a likelihood; a {cfg.family} search watches validation NDCG@100 "
                         "(--metric val_ndcg@100, or leave --metric out)")
    if not ranking and metric in MAXIMIZED:
        raise UsageError(f"--metric {metric} is for the recommendation families (mult-vae, mult-dae, recvae); "
                         "use val_elbo, val_iwae or val_recon")
    return metric


def _settings(space: Any, config: Any, data: str | None, epochs: int | None, seed: int,
              family: str | None = None) -> tuple[SearchSpace, dict, TrainConfig]:
    """The search space, the fixed settings every trial shares (``--config``, the space's fixed values,
    ``data``, ``epochs``, ``seed``; not the searched ones) and those settings as a validated config."""
    sp = space if isinstance(space, SearchSpace) else (
        parse_space(space, "space") if isinstance(space, dict) else load_space(space))
    given = dict(load_config_file(config)) if isinstance(config, (str, os.PathLike)) else dict(config or {})
    from ..families import FAMILIES, family_name

    if family is not None:
        given["family"] = family
    fam = FAMILIES[family_name(make_config({**given, **({"data": data} if data else {})}))]
    if space is None and fam.data_kind == "series":
        sp = parse_space(load_yaml(SERIES_SPACE_YAML), "default time-series space")
    elif space is None and fam.data_kind == "sequences":
        sp = parse_space(load_yaml(SEQUENCE_SPACE_YAML), "default seq-vae space")
    elif space is None and not fam.example_model:
        sp = parse_space(load_yaml(RECOMMEND_SPACE_YAML), "default recommendation space")
    given_flags = {k: v for k, v in (("data", data), ("epochs", epochs)) if v is not None}
    base = {**given, **sp.fixed, **given_flags}
    base.setdefault("seed", seed)
    base_cfg = make_config(base)
    if space is None:  # the default space: no KL warm-up longer than the trials' --epochs
        sp = sp.capped_warmup(base_cfg.epochs)
        base.update({**sp.fixed, **given_flags})  # --epochs still wins over the space's epochs
        base_cfg = make_config(base)
    if not FAMILIES[family_name(base_cfg)].tunable:
        raise UsageError(f"vaekit tune does not search the {family_name(base_cfg)} family yet; train its runs with "
                         "vaekit train")
    if base_cfg.semi_supervised:
        raise UsageError("vaekit tune searches unsupervised and conditional runs; drop semi_supervised")
    searched = {p.name for p in sp.params}  # the space wins over --config for what it searches
    base = {k: v for k, v in base_cfg.model_dump().items() if (k in base or k == "data") and k not in searched}
    return sp, base, base_cfg


def _grid_size(sp: SearchSpace, trials: int, allow_partial_grid: bool) -> int:
    """The trials ``--sampler grid`` will run: the whole grid, or ``trials`` of it if partial is allowed."""
    size = sp.check_grid()  # counted, not listed: a space can describe 10^8 points
    if size > trials and not allow_partial_grid:
        raise UsageError(f"the grid has {size} points but --trials is {trials}; raise --trials to {size}, "
                         "shrink the space, or pass --allow-partial-grid to run a random subset")
    return min(trials, size)


def _start_study(tune_dir: Path, url: str, name: str, where: str, desc: dict, own_db: bool, extra: dict,
                 direction: str = "minimize"):
    """Check the tune folder, open (or create) the study described by ``desc`` and write ``tune.json``."""
    _check_tune_dir(tune_dir, name, where)
    if own_db:
        tune_dir.mkdir(parents=True, exist_ok=True)
    st = open_storage(url)
    tune_dir.mkdir(parents=True, exist_ok=True)
    the_study = open_study(st, name, desc, where, direction)
    write_json(tune_dir / TUNE_JSON, {"format": "vaekit-tune", "study": name, "storage": where, **extra, **desc})
    return the_study


def _check_tune_dir(tune_dir: Path, name: str, where: str) -> None:
    if tune_dir.exists() and not tune_dir.is_dir():
        raise UsageError(f"--out {tune_dir} is a file; choose a folder for the search")
    info = tune_dir / TUNE_JSON
    if info.is_file():
        try:
            saved = read_json(info)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UsageError(f"{info} is damaged (not JSON); choose another --out") from None
        if saved.get("study") != name or saved.get("storage") != where:
            raise UsageError(f"{tune_dir} holds study '{saved.get('study')}' in {saved.get('storage')}; "
                             "rerun with the same --study and --storage to continue it, or choose another --out")
    elif tune_dir.is_dir() and any(tune_dir.iterdir()):
        raise UsageError(f"--out {tune_dir} is not empty and is not a vaekit tune folder; choose another --out")


def _results(the_study, tune_dir: Path, where: str, job: Job, sp: SearchSpace, figures: bool, interrupted: bool,
             why: str) -> TuneResult:
    """Write the search's results (figures only if it was not interrupted) and say how it ended."""
    try:
        result = results(the_study, tune_dir, job.study, where, job.metric, job.target, sp,
                         figures=figures and not interrupted)
    except KeyboardInterrupt:  # while writing the results: the study itself is complete and safe
        interrupted = True
        result = TuneResult(tune_dir, job.study, where, job.metric, trial_counts(the_study), job.target)
    result.interrupted = interrupted
    result.timed_out = why == "timeout"
    return result
