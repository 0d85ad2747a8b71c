"""``vaekit tune``: hyperparameter search with Optuna (grid, random, TPE), resumable, parallel and pruned.

Registered on :data:`vaekit.cli.app` when ``vaekit.cli`` is imported; Optuna and torch are imported inside
the command so ``vaekit --help`` stays fast. Bad input ends in one line and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import user_errors, app


@app.command()
@user_errors
def tune(
    data: Optional[str] = typer.Option(None, "--data", help="data to tune on (as for vaekit train) \\[default: digits]"),
    out: Path = typer.Option(..., "--out", help="tune folder: study.db, trials/NNNN run directories, results"),
    space: Optional[Path] = typer.Option(None, "--space", help="YAML search space (see README) \\[default: vaekit's default space]"),
    sampler: str = typer.Option("tpe", "--sampler", help="grid, random or tpe (Bayesian)"),
    trials: int = typer.Option(20, "--trials", help="finished trials the study should have in total (a rerun continues)"),
    storage: Optional[str] = typer.Option(None, "--storage", help="SQLAlchemy URL of the study database \\[default: sqlite in --out]"),
    study: Optional[str] = typer.Option(None, "--study", help="study name \\[default: the --out folder's name]"),
    jobs: int = typer.Option(1, "--jobs", help="local worker processes on the study"),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="start no trial after this many seconds"),
    metric: Optional[str] = typer.Option(None, "--metric", help="val_elbo, val_iwae or val_recon (nats, lower is "
                                         "better); val_ndcg@100 for recommenders \\[default: val_elbo; "
                                         "val_ndcg@100 for mult-vae, mult-dae, recvae]"),
    family: Optional[str] = typer.Option(None, "--family", help="model family of every trial (as for vaekit train; "
                                         "mult-vae, mult-dae, recvae search validation NDCG@100) \\[default: vae]"),
    pruner: str = typer.Option("median", "--pruner", help="median, hyperband or none"),
    allow_partial_grid: bool = typer.Option(False, "--allow-partial-grid", help="run a random subset of a grid larger than --trials"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML settings for every trial (the space wins for what it searches)"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="epochs per trial \\[default: the space's, 40 in the default space]"),
    seed: int = typer.Option(0, "--seed", help="seed of the samplers and of every trial's training"),
    iwae_k: int = typer.Option(100, "--iwae-k", help="importance samples for --metric val_iwae"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no line per trial"),
    log: Optional[str] = typer.Option(None, "--log", help="send each completed trial's run to tensorboard "
                                      "(trials/NNNN/tensorboard) or mlflow (one run per trial in TUNE_DIR/mlruns "
                                      "unless --log-uri); needs pip install 'vaekit[track]'"),
    log_uri: Optional[str] = typer.Option(None, "--log-uri", help="MLflow tracking URI for --log mlflow "
                                          "\\[default: the file store TUNE_DIR/mlruns]"),
) -> None:
    """Search hyperparameters: each trial is a vaekit run; results in trials.csv, best_config.yaml, tune_report.html."""
    import time

    from ..tuning.study import tune as _tune

    t0 = time.perf_counter()
    res = _tune(data, out, space=space, sampler=sampler, trials=trials, storage=storage, study=study, jobs=jobs,
                timeout=timeout, metric=metric, pruner=pruner, allow_partial_grid=allow_partial_grid,
                config=config, epochs=epochs, seed=seed, iwae_k=iwae_k, quiet=quiet, log=log, log_uri=log_uri,
                family=family)
    c = res.counts
    typer.echo(f"{c['finished']} of {res.target} trials finished ({c['complete']} complete, {c['pruned']} pruned, "
               f"{c['failed']} failed) in {time.perf_counter() - t0:.0f} s")
    if res.best_trial is not None:
        from ..tuning.study import METRICS

        typer.echo(f"best: trial {res.best_trial}, {res.metric} {res.best_value:.3f} "
                   f"({METRICS[res.metric]}, the value in its results.json/trial.json); "
                   f"{out / 'best_config.yaml'}, {out / 'trials.csv'}"
                   + ("" if res.interrupted else f", {out / 'tune_report.html'}"))
    if res.interrupted:
        typer.echo("interrupted; the study is kept: rerun the same command to continue it", err=True)
        raise typer.Exit(130)
    if res.timed_out and c["finished"] < res.target:
        typer.echo("stopped by --timeout; rerun the same command to continue the study")
