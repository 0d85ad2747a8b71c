"""``vaekit train``: its options are generated from :class:`~vaekit.config.TrainConfig` (:mod:`.options`), so a
new setting is one field there; the rest of the command is the run-level flags and the summary it prints."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import UsageError
from .common import app, read_results, user_errors
from .options import config_parameters, config_settings


def train(**args: Any) -> None:
    """Train a VAE and write a run directory (config, weights, metrics, samples, results)."""
    data, out, config, quiet = args["data"], args["out"], args["config"], args["quiet"]
    resume, overwrite, no_early_stopping = args["resume"], args["overwrite"], args["no_early_stopping"]
    if no_early_stopping and args["patience"] is not None:
        raise UsageError("--patience and --no-early-stopping contradict each other; give one")
    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other; give one")
    if args["nproc"] is not None:  # this process only launches the world (each rank runs this command)
        return _launch(args["nproc"], out)
    settings = config_settings(args)
    if settings.get("condition_columns"):  # naming condition columns makes the run conditional
        settings.setdefault("conditional", True)
    if resume and config is not None:
        raise UsageError("--resume continues with the run's saved settings; drop --config")
    from ..config import load_config_file, make_config

    if not resume:
        base = load_config_file(config) if config is not None else {}
        cfg = make_config(base, **({"data": data} if data else {}), **settings)
        if no_early_stopping:
            cfg = cfg.model_copy(update={"patience": None})
        kwargs: dict[str, Any] = {"config": cfg}
    else:
        kwargs = {**settings, **({"data": data} if data else {})}
    from .. import api

    try:
        trained = api.train(out=out, resume=resume, overwrite=overwrite, progress=not quiet,
                            dist_backend=args["dist_backend"],
                            report_iwae_k=args["report_iwae_k"], report_examples=args["report_examples"],
                            cache_dir=str(args["cache_dir"]) if args["cache_dir"] else None, log=args["log"],
                            log_uri=args["log_uri"], **kwargs)
    except KeyboardInterrupt:
        typer.echo(f"interrupted; continue with: vaekit train --out {out} --resume", err=True)
        raise typer.Exit(130)
    if os.environ.get("RANK", "0") not in ("", "0"):
        return  # a distributed run: rank 0 speaks for the world
    _echo_tracking(args["log"], args["log_uri"], out)
    print_summary(out, trained.result)


def _launch(nproc: int, out: Path) -> None:
    """``--nproc N``: this command again in N processes under PyTorch's elastic launcher, without --nproc."""
    import sys

    from ..training.launch import RankFailed, launch_local

    argv = sys.argv[sys.argv.index("train") + 1:] if "train" in sys.argv else []
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    try:
        launch_local(nproc, rest, str(out))
    except RankFailed as err:
        if err.said:  # the failing rank printed its own one-line error
            raise typer.Exit(err.code)
        raise


def _echo_tracking(log: str | None, log_uri: str | None, out: Path) -> None:
    """Where ``--log`` sent the run, and the command that opens it."""
    if log == "tensorboard":
        typer.echo(f"logged to TensorBoard: tensorboard --logdir {out / 'tensorboard'}", err=True)
    elif log == "mlflow":
        uri = log_uri or (out / "mlruns").resolve().as_uri()
        typer.echo(f"logged to MLflow ({uri}, experiment vaekit): mlflow ui --backend-store-uri {uri}", err=True)


def print_summary(out: Path, r: Any) -> None:
    """The end-of-train lines: the numbers stored in results.json (and evaluation.json's report line), never
    a recomputed estimate; M2 runs show accuracy, recommenders their ranking metrics."""
    res = read_results(out)
    if "test_accuracy" in res:
        typer.echo(f"semi-supervised M2 with {res['labeled']} labels: test accuracy {res['test_accuracy']:.4f} "
                   f"(validation {res['validation_accuracy']:.4f}); run directory: {out}")
        echo_report_line(out)
        return
    test, val = res.get("test") or {}, res.get("validation") or {}
    if "ndcg@100" in test or "ndcg@100" in val:  # recommendation (mult-vae, mult-dae): ranking metrics
        shown = "; ".join(f"{name} NDCG@100 {m['ndcg@100']:.4f}, Recall@20 {m['recall@20']:.4f}, Recall@50 "
                          f"{m['recall@50']:.4f} ({m['users']} users)" for name, m in (("validation", val),
                                                                                      ("test", test)) if m)
        typer.echo(f"trained {r.epochs_run} epochs (best epoch {r.best_epoch}"
                   f"{', stopped early' if r.stopped_early else ''}); {shown}")
        typer.echo(f"run directory: {out}")
        return
    msg = (f"trained {r.epochs_run} epochs (best epoch {r.best_epoch}"
           f"{', stopped early' if r.stopped_early else ''})")
    if val:  # the numbers stored in results.json (one estimate each, shown everywhere)
        msg += f"; best validation -ELBO {val['elbo']:.2f} nats"
    if test:
        msg += f"; test -ELBO {test['elbo']:.2f} nats (recon {test['recon']:.2f} + KL {test['kl']:.2f})"
    typer.echo(msg + ("; 1-sample ELBO of the best weights (results.json)" if val or test else ""))
    if "forecast" in test:  # a forecast-cvae run: its rolling-origin test metrics (vaekit.series_api)
        f = test["forecast"]
        typer.echo(f"test forecasts ({f['origins']} origins x {f['horizon']} steps): MAE {f['mae']:.4g}, CRPS "
                   f"{f['crps']:.4g}, 80%/95% coverage {f['coverage_80']:.2f}/{f['coverage_95']:.2f}")
    echo_report_line(out)
    warning = collapse_note(out)
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"run directory: {out}")


def echo_report_line(out: Path) -> None:
    """One line on the end-of-run report: the estimator, how many examples, and what it cost."""
    from ..runs import read_json

    p = out / "evaluation.json"
    ev = read_json(p) if p.is_file() else {}
    plan = ev.get("report_plan")
    if not plan or "neg_iwae" not in ev:
        return
    line = (f"report: -log {ev.get('likelihood_of', 'p(x)')} <= {ev['neg_iwae']:.2f} nats (IWAE k={plan['k']} on "
            f"{plan['n']} of {plan['total']} test examples, {plan['seconds']:.1f} s)")
    if "neg_iwae_marginal" in ev:
        line += f"; -log p(x) <= {ev['neg_iwae_marginal']:.2f} nats (summed over labels)"
    typer.echo(f"{line}; {out / 'report.html'}")


def collapse_note(run: Path) -> str | None:
    """evaluation.collapse_warning for a finished run, from the active units its evaluation.json counted."""
    from ..evaluation.metrics import collapse_warning
    from ..runs import read_json

    p = run / "evaluation.json"
    ev = read_json(p) if p.is_file() else {}
    if "active_units" not in ev or "latent_dim" not in ev:
        return None
    return collapse_warning(int(ev["active_units"]), int(ev["latent_dim"]))


def _run_parameters() -> tuple[list[inspect.Parameter], list[inspect.Parameter]]:
    """The options of ``vaekit train`` that are not settings of the run (before and after the generated ones)."""
    def opt(name: str, annotation: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)

    before = [
        opt("data", Optional[str], typer.Option(None, "--data", help="digits, fashion-mnist, mnist, a folder of "
                                                "images, .npy/.npz, .csv/.parquet \\[default: digits]")),
        opt("out", Path, typer.Option(..., "--out", help="run directory to write")),
        opt("config", Optional[Path], typer.Option(None, "--config", help="YAML file of settings; flags override it")),
    ]
    after = [
        opt("no_early_stopping", bool, typer.Option(False, "--no-early-stopping", help="train for all --epochs")),
        opt("cache_dir", Optional[Path], typer.Option(None, "--cache-dir",
                                                      help="download cache \\[default: ~/.cache/vaekit]")),
        opt("resume", bool, typer.Option(False, "--resume", help="continue an interrupted run in --out")),
        opt("overwrite", bool, typer.Option(False, "--overwrite", help="replace an existing run in --out")),
        opt("report_iwae_k", Optional[int], typer.Option(
            None, "--report-iwae-k", help="IWAE samples for the end-of-run report (0 skips) \\[auto: 100, fewer "
            "when its IWAE pass would cost over 10% of the training time]")),
        opt("report_examples", Optional[int], typer.Option(
            None, "--report-examples", help="test examples of the report's IWAE bound \\[auto: all, down to 1000 "
            "to keep its IWAE pass near 10% of the training time]")),
        opt("log", Optional[str], typer.Option(
            None, "--log", help="send the finished run to an experiment tracker: tensorboard (RUN/tensorboard) or "
            "mlflow (RUN/mlruns unless --log-uri); needs pip install 'vaekit[track]'")),
        opt("log_uri", Optional[str], typer.Option(
            None, "--log-uri", help="MLflow tracking URI for --log mlflow (e.g. sqlite:///mlflow.db, "
            "http://host:5000) \\[default: the file store RUN/mlruns]")),
        opt("quiet", bool, typer.Option(False, "--quiet", "-q", help="no progress bar")),
        opt("nproc", Optional[int], typer.Option(
            None, "--nproc", help="train in N processes on this machine with PyTorch DDP (launches torchrun; "
            "--batch-size stays the global batch, split over the processes)")),
        opt("dist_backend", str, typer.Option(
            "auto", "--dist-backend", help="process group of a distributed run: auto (gloo on CPU, nccl on CUDA), "
            "gloo or nccl")),
    ]
    return before, after


_before, _after = _run_parameters()
train.__signature__ = inspect.Signature([*_before, *config_parameters(), *_after])  # type: ignore[attr-defined]
train.__annotations__ = {}  # Typer reads the types from the signature above
app.command()(user_errors(train))
