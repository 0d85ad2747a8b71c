"""The ``vaekit`` command line: a thin face over :mod:`vaekit.api` (no maths here).

Flag names and the run-directory layout are stable: users' scripts rely on them. Bad input ends in one
line on stderr naming the problem and the fix, and exit code 2. torch is imported only inside the
commands that need it, so ``vaekit --help`` starts quickly.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from .config import TrainConfig
from .errors import UsageError, describe_exception, one_line

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Variational autoencoders: train on your data, then sample, reconstruct and encode.")


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code)


# typer.Exit/Abort and click's usage errors (typer vendors click in recent versions) pass through untouched
_TYPER_EXITS = (typer.Exit, typer.Abort, *[c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"])


def _user_errors(fn: Callable) -> Callable:
    """Turn every exception into one capped line on stderr and an exit code (see errors.describe_exception):
    vaekit's own errors (2 for bad input), the environment's OS and memory errors (2; 1 for a failing disk),
    anything else "internal error" (1). ``VAEKIT_DEBUG=1`` prints the traceback first."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _TYPER_EXITS:
            raise  # typer's own exits and usage errors
        except Exception as err:  # noqa: BLE001 - the one place every failure becomes one line
            if os.environ.get("VAEKIT_DEBUG", "") not in ("", "0"):
                import traceback

                traceback.print_exception(err, file=sys.stderr)
            message, code = describe_exception(err)
            _fail(message, code)

    return wrapper


def _d(text: str, field: str) -> str:
    """``text`` plus TrainConfig's default for ``field``, read from the model (never re-typed here), so
    `vaekit train --help` shows the defaults while the flags themselves stay None and never override YAML."""
    value = TrainConfig.model_fields[field].get_default(call_default_factory=True)
    if value is None:
        return text
    if isinstance(value, bool):
        shown = str(value).lower()
    elif isinstance(value, list):
        shown = ",".join(str(v) for v in value)
    else:
        shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text} \\[default: {shown}]"  # \\[: a literal bracket in rich markup


def _int_list(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return []
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated integers like 400,200, got {text!r}") from None


def _check_out_file(out: Path, overwrite: bool, suffixes: tuple[str, ...]) -> None:
    if out.suffix.lower() not in suffixes:
        raise UsageError(f"--out {out} has an unsupported suffix; use one of {', '.join(suffixes)}")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; pass --overwrite to replace it or choose another --out")


def _write_array(values, out: Path, kind: str, columns: list[str] | None = None,
                 schema: list[dict] | None = None) -> None:
    """Write examples in the format of ``out`` (PNG grid for images, .npy, or .csv with the data's columns;
    a mixed-type table's CSV names categories), atomically: see :meth:`vaekit.data.kinds.DataKind.write`."""
    from .data.kinds import kind_of

    kind_of(kind).write(values, out, columns, schema)


@app.command()
@_user_errors
def train(
    data: Optional[str] = typer.Option(None, "--data", help="digits, fashion-mnist, mnist, a folder of images, .npy/.npz, .csv/.parquet \\[default: digits]"),
    out: Path = typer.Option(..., "--out", help="run directory to write"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of settings; flags override it"),
    conditional: Optional[bool] = typer.Option(None, "--conditional", help=_d("conditional VAE on the data's labels", "conditional")),
    condition_columns: Optional[str] = typer.Option(None, "--condition-columns", help=_d("conditional VAE on these numeric table columns, e.g. a,b", "condition_columns")),
    semi_supervised: Optional[bool] = typer.Option(None, "--semi-supervised", help=_d("M2 semi-supervised VAE (Kingma et al. 2014); needs --labeled", "semi_supervised")),
    labeled: Optional[int] = typer.Option(None, "--labeled", help=_d("training labels kept for --semi-supervised", "labeled")),
    alpha: Optional[float] = typer.Option(None, "--alpha", help=_d("classification weight of M2, times the training set size", "alpha")),
    classifier_dropout: Optional[float] = typer.Option(None, "--classifier-dropout", help=_d("dropout in M2's classifier q(y|x)", "classifier_dropout")),
    classifier_noise: Optional[float] = typer.Option(None, "--classifier-noise", help=_d("std of Gaussian noise on M2's labelled classifier inputs", "classifier_noise")),
    model: Optional[str] = typer.Option(None, "--model", help=_d("mlp or conv", "model")),
    latent_dim: Optional[int] = typer.Option(None, "--latent-dim", help=_d("latent size", "latent_dim")),
    hidden: Optional[str] = typer.Option(None, "--hidden", help=_d("hidden layer sizes, e.g. 400,200", "hidden")),
    channels: Optional[str] = typer.Option(None, "--channels", help=_d("conv channels, e.g. 32,64", "channels")),
    likelihood: Optional[str] = typer.Option(None, "--likelihood", help=_d("bernoulli, gaussian or auto", "likelihood")),
    gaussian_std: Optional[float] = typer.Option(None, "--gaussian-std", help=_d("fixed std of the Gaussian likelihood (learned per feature when unset)", "gaussian_std")),
    beta: Optional[float] = typer.Option(None, "--beta", help=_d("weight of the KL term", "beta")),
    kl_warmup: Optional[int] = typer.Option(None, "--kl-warmup", help=_d("epochs over which beta ramps up from 0", "kl_warmup")),
    kl_schedule: Optional[str] = typer.Option(None, "--kl-schedule", help=_d("linear (warm-up) or cyclical (Fu et al. 2019)", "kl_schedule")),
    kl_cycles: Optional[int] = typer.Option(None, "--kl-cycles", help=_d("cycles of the cyclical schedule", "kl_cycles")),
    kl_ratio: Optional[float] = typer.Option(None, "--kl-ratio", help=_d("fraction of each cycle spent ramping beta", "kl_ratio")),
    iw_samples: Optional[int] = typer.Option(None, "--iw-samples", help=_d("importance samples of the training objective: 1 = ELBO, K > 1 = IWAE_K (MIWAE with --missing mask)", "iw_samples")),
    free_bits: Optional[float] = typer.Option(None, "--free-bits", help=_d("KL floor per latent dimension, nats (Kingma et al. 2016)", "free_bits")),
    binarize: Optional[str] = typer.Option(None, "--binarize", help=_d("none, dynamic (fresh draw every step) or static", "binarize")),
    dropout: Optional[float] = typer.Option(None, "--dropout", help=_d("dropout in encoder and decoder", "dropout")),
    corruption: Optional[str] = typer.Option(None, "--corruption", help=_d("denoising VAE: corrupt inputs, reconstruct the clean data; gaussian:0.3, masking:0.25 or salt-pepper:0.1", "corruption")),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help=_d("adam or adamw", "optimizer")),
    lr: Optional[float] = typer.Option(None, "--lr", help=_d("learning rate", "lr")),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help=_d("weight decay of the optimizer", "weight_decay")),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help=_d("examples per training step", "batch_size")),
    epochs: Optional[int] = typer.Option(None, "--epochs", help=_d("maximum number of epochs", "epochs")),
    patience: Optional[int] = typer.Option(None, "--patience", help=_d("early stopping: epochs without validation improvement", "patience")),
    no_early_stopping: bool = typer.Option(False, "--no-early-stopping", help="train for all --epochs"),
    min_delta: Optional[float] = typer.Option(None, "--min-delta", help=_d("improvement (nats) that resets early stopping", "min_delta")),
    lr_schedule: Optional[str] = typer.Option(None, "--lr-schedule", help=_d("none, exponential, step, plateau or cosine", "lr_schedule")),
    lr_gamma: Optional[float] = typer.Option(None, "--lr-gamma", help=_d("decay factor of the exponential/step/plateau schedules", "lr_gamma")),
    lr_step: Optional[int] = typer.Option(None, "--lr-step", help=_d("epochs between step decays", "lr_step")),
    grad_clip: Optional[float] = typer.Option(None, "--grad-clip", help=_d("clip the gradient norm to this value", "grad_clip")),
    image_size: Optional[int] = typer.Option(None, "--image-size", help=_d("resize images to N×N", "image_size")),
    label_column: Optional[str] = typer.Option(None, "--label-column", help=_d("table column holding labels", "label_column")),
    missing: Optional[str] = typer.Option(None, "--missing", help=_d("missing table cells: error, or mask (train on incomplete rows, MIWAE)", "missing")),
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help=_d("fraction of the data held out for validation", "val_fraction")),
    test_fraction: Optional[float] = typer.Option(None, "--test-fraction", help=_d("fraction of the data held out for testing", "test_fraction")),
    seed: Optional[int] = typer.Option(None, "--seed", help=_d("random seed (splits, initialisation, shuffling)", "seed")),
    device: Optional[str] = typer.Option(None, "--device", help=_d("auto, cpu, cuda, cuda:N or mps", "device")),
    precision: Optional[str] = typer.Option(None, "--precision", help=_d("fp32, or bf16 (autocast; GPUs with bf16, or CPUs)", "precision")),
    compile_: Optional[bool] = typer.Option(None, "--compile/--no-compile", help=_d("torch.compile the networks", "compile")),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads of torch \\[default: VAEKIT_THREADS, OMP_NUM_THREADS, else vaekit's default: see README, Performance]"),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="download cache \\[default: ~/.cache/vaekit]"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run in --out"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing run in --out"),
    report_iwae_k: Optional[int] = typer.Option(None, "--report-iwae-k", help="IWAE samples for the end-of-run report (0 skips) \\[auto: 100, fewer when its IWAE pass would cost over 10% of the training time]"),
    report_examples: Optional[int] = typer.Option(None, "--report-examples", help="test examples of the report's IWAE bound \\[auto: all, down to 1000 to keep its IWAE pass near 10% of the training time]"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Train a VAE and write a run directory (config, weights, metrics, samples, results)."""
    if no_early_stopping and patience is not None:
        raise UsageError("--patience and --no-early-stopping contradict each other; give one")
    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other; give one")
    cond_cols = [c.strip() for c in condition_columns.split(",") if c.strip()] if condition_columns else None
    settings = dict(conditional=conditional or (True if cond_cols else None), condition_columns=cond_cols,
                    semi_supervised=semi_supervised, labeled=labeled, alpha=alpha,
                    classifier_dropout=classifier_dropout, classifier_noise=classifier_noise,
                    model=model, latent_dim=latent_dim, hidden=_int_list(hidden, "--hidden"),
                    channels=_int_list(channels, "--channels"), likelihood=likelihood, gaussian_std=gaussian_std,
                    beta=beta, kl_warmup=kl_warmup, kl_schedule=kl_schedule, kl_cycles=kl_cycles,
                    kl_ratio=kl_ratio, free_bits=free_bits, iw_samples=iw_samples, binarize=binarize, dropout=dropout, corruption=corruption, optimizer=optimizer, lr=lr,
                    weight_decay=weight_decay, batch_size=batch_size, epochs=epochs, patience=patience,
                    min_delta=min_delta, lr_schedule=lr_schedule, lr_gamma=lr_gamma, lr_step=lr_step,
                    grad_clip=grad_clip, image_size=image_size, label_column=label_column, missing=missing,
                    val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, device=device,
                    precision=precision, compile=compile_, threads=threads)
    settings = {k: v for k, v in settings.items() if v is not None}
    if resume and config is not None:
        raise UsageError("--resume continues with the run's saved settings; drop --config")
    from .config import load_config_file, make_config

    if not resume:
        base = load_config_file(config) if config is not None else {}
        cfg = make_config(base, **({"data": data} if data else {}), **settings)
        if no_early_stopping:
            cfg = cfg.model_copy(update={"patience": None})
        kwargs: dict[str, Any] = {"config": cfg}
    else:
        kwargs = {**settings, **({"data": data} if data else {})}
    from . import api

    try:
        trained = api.train(out=out, resume=resume, overwrite=overwrite, progress=not quiet,
                            report_iwae_k=report_iwae_k, report_examples=report_examples,
                            cache_dir=str(cache_dir) if cache_dir else None, **kwargs)
    except KeyboardInterrupt:
        typer.echo(f"interrupted; continue with: vaekit train --out {out} --resume", err=True)
        raise typer.Exit(130)
    r = trained.result
    res = _read_results(out)
    if "test_accuracy" in res:
        typer.echo(f"semi-supervised M2 with {res['labeled']} labels: test accuracy {res['test_accuracy']:.4f} "
                   f"(validation {res['validation_accuracy']:.4f}); run directory: {out}")
        _echo_report_line(out)
        return
    test, val = res.get("test") or {}, res.get("validation") or {}
    msg = (f"trained {r.epochs_run} epochs (best epoch {r.best_epoch}"
           f"{', stopped early' if r.stopped_early else ''})")
    if val:  # the numbers stored in results.json (one estimate each, shown everywhere)
        msg += f"; best validation -ELBO {val['elbo']:.2f} nats"
    if test:
        msg += f"; test -ELBO {test['elbo']:.2f} nats (recon {test['recon']:.2f} + KL {test['kl']:.2f})"
    typer.echo(msg + ("; 1-sample ELBO of the best weights (results.json)" if val or test else ""))
    _echo_report_line(out)
    warning = _collapse_note(out)
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"run directory: {out}")


def _echo_report_line(out: Path) -> None:
    """One line on the end-of-run report: the estimator, how many examples, and what it cost."""
    from .runs import read_json

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


def _collapse_note(run: Path) -> str | None:
    """evaluation.collapse_warning for a finished run, from the active units its evaluation.json counted."""
    from .evaluation.metrics import collapse_warning
    from .runs import read_json

    p = run / "evaluation.json"
    ev = read_json(p) if p.is_file() else {}
    if "active_units" not in ev or "latent_dim" not in ev:
        return None
    return collapse_warning(int(ev["active_units"]), int(ev["latent_dim"]))


def _user_condition(trained, label: Optional[str], attributes: Optional[str], n: int):
    """Condition rows from --label / --attributes (None for unconditional runs; errors for mismatches)."""
    cond = trained.conditioning
    if cond is None:
        if label is not None or attributes is not None:
            raise UsageError("this run is not conditional; drop --label/--attributes")
        return None
    if label is not None and attributes is not None:
        raise UsageError("give --label or --attributes, not both")
    if label is not None:
        return cond.labels([label] * n)
    if attributes is not None:
        from .conditions import parse_attributes

        return cond.attributes(parse_attributes(attributes), n)
    what = f"--label (one of {', '.join(cond.classes or [])})" if cond.kind == "label" \
        else f"--attributes ({', '.join(f'{c}=...' for c in cond.columns or [])})"
    raise UsageError(f"this run is a conditional VAE: pass {what}")


def _read_results(run: Path) -> dict:
    from .runs import RESULTS, read_json

    p = run / RESULTS
    return read_json(p) if p.is_file() else {}


SPLIT_HELP = "all rows of --data, or its train, validation or test split (split like the run's own data)"


def _pick_split(trained, ds, split: str, source: str):
    """Keep only ``split`` of a loaded dataset (``all`` keeps it as loaded), split as the run's data was."""
    names = ("train", "validation", "test")
    if split == "all":
        return ds
    if split not in names:
        raise UsageError(f"--split must be all, train, validation or test, got {split!r}")
    part = trained.kind.split(ds, trained.config)[names.index(split)]
    if len(part) == 0:
        raise UsageError(f"the {split} split of {source} is empty; choose another --split")
    ds.x, ds.y, ds.attributes, ds.test_x, ds.test_y = part.x, part.y, part.a, None, None
    return ds


@app.command()
@_user_errors
def sample(
    run: Path = typer.Argument(..., help="run directory"),
    n: int = typer.Option(64, "-n", "--n", help="number of samples"),
    out: Path = typer.Option(..., "--out", help="FILE.png, FILE.npy or FILE.csv"),
    temperature: float = typer.Option(1.0, "--temperature", help="scale of the prior draws"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    label: Optional[str] = typer.Option(None, "--label", help="class to generate (conditional runs)"),
    attributes: Optional[str] = typer.Option(None, "--attributes", help='attribute values, e.g. "a=0.5,b=1" (conditional runs)'),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Draw new examples from a trained model (means of p(x|z), z from the prior)."""
    _check_out_file(out, overwrite, (".png", ".npy", ".csv"))
    from .api import load

    trained = load(run)
    c = _user_condition(trained, label, attributes, n)
    x = trained.sample(n, temperature=temperature, seed=seed, c=c)
    _write_array(x, out, trained.info["data"]["kind"], trained.info["data"].get("columns"), trained.schema)
    typer.echo(f"wrote {n} samples to {out}")


@app.command()
@_user_errors
def reconstruct(
    run: Path = typer.Argument(..., help="run directory"),
    data: str = typer.Option(..., "--data", help="data to reconstruct (same kind as the training data)"),
    out: Path = typer.Option(..., "--out", help="FILE.png (inputs above reconstructions), FILE.npy or FILE.csv"),
    n: Optional[int] = typer.Option(None, "-n", "--n", help="only the first N examples [PNG default: 32]"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="resize images \\[default: as in training]"),
    split: str = typer.Option("all", "--split", help=SPLIT_HELP),
    label: Optional[str] = typer.Option(None, "--label", help="re-decode every input under this class (conditional runs)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Reconstruct data through a trained model (mean of p(x|z) at the posterior mean)."""
    _check_out_file(out, overwrite, (".png", ".npy", ".csv"))
    from .api import load

    trained = load(run)
    ds = trained.load_data(data, **({"image_size": image_size} if image_size else {}))
    ds = _pick_split(trained, ds, split, data)
    keep = n or (32 if out.suffix.lower() == ".png" else len(ds.x))
    ds.x, ds.y = ds.x[:keep], (ds.y[:keep] if ds.y is not None else None)
    xm, c = trained.dataset_inputs(ds)
    x = trained._output(xm)
    c_out = _user_condition(trained, label, None, len(x)) if label is not None else None
    rec = trained.reconstruct(x, c=c, c_out=c_out)
    from .data.kinds import kind_of

    kind_of(ds.kind).write_pairs(x, rec, out, ds.columns, trained.schema)
    typer.echo(f"wrote {len(rec)} reconstructions to {out}")


@app.command()
@_user_errors
def encode(
    run: Path = typer.Argument(..., help="run directory"),
    data: str = typer.Option(..., "--data", help="data to encode"),
    out: Path = typer.Option(..., "--out", help="FILE.npy or FILE.csv"),
    draw: bool = typer.Option(False, "--sample", help="one draw from q(z|x) instead of its mean"),
    seed: Optional[int] = typer.Option(None, "--seed", help="seed of --sample draws"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="resize images \\[default: as in training]"),
    split: str = typer.Option("all", "--split", help=SPLIT_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Latent codes of data: posterior means (or draws with --sample), one row per example."""
    _check_out_file(out, overwrite, (".npy", ".csv"))
    import torch

    from .api import load

    trained = load(run)
    ds = trained.load_data(data, **({"image_size": image_size} if image_size else {}))
    ds = _pick_split(trained, ds, split, data)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    xm, c = trained.dataset_inputs(ds)
    z = trained.encode(trained._output(xm), sample=draw, generator=gen, c=c)
    _write_array(z, out, "latent", [f"z{i}" for i in range(z.shape[1])])
    typer.echo(f"wrote {len(z)}×{z.shape[1]} latent codes to {out}")


@app.command()
@_user_errors
def denoise(
    run: Path = typer.Argument(..., help="run directory (best: one trained with --corruption)"),
    data: str = typer.Option(..., "--data", help="noisy data (same kind as the training data)"),
    out: Path = typer.Option(..., "--out", help="FILE.png (noisy above denoised), FILE.npy or FILE.csv"),
    add_noise: Optional[str] = typer.Option(None, "--add-noise", help="corrupt clean data first, e.g. gaussian:0.3, and report the MSE against it"),
    seed: int = typer.Option(0, "--seed", help="seed of --add-noise"),
    n: Optional[int] = typer.Option(None, "-n", "--n", help="only the first N examples [PNG default: 32]"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="resize images \\[default: as in training]"),
    split: str = typer.Option("all", "--split", help=SPLIT_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Denoise data: the mean of p(x|z) at the posterior mean of each noisy input."""
    _check_out_file(out, overwrite, (".png", ".npy", ".csv"))
    if add_noise is not None:
        from .data.noise import parse_corruption

        parse_corruption(add_noise, "--add-noise")
    from .api import load

    trained = load(run)
    ds = trained.load_data(data, **({"image_size": image_size} if image_size else {}))
    ds = _pick_split(trained, ds, split, data)
    from .data.kinds import kind_of

    kind_of(ds.kind).check_png(out)
    keep = n or (32 if out.suffix.lower() == ".png" else len(ds.x))
    ds.x, ds.y = ds.x[:keep], (ds.y[:keep] if ds.y is not None else None)
    xm, c = trained.dataset_inputs(ds)
    clean = trained._output(xm)
    noisy = trained.corrupt(clean, add_noise, seed) if add_noise is not None else clean
    den = trained.denoise(noisy, c=c)
    if out.suffix.lower() == ".png":
        from .evaluation.figures import save_stacked

        save_stacked([noisy, den, clean] if add_noise is not None else [noisy, den], out)
    else:
        _write_array(den, out, ds.kind, ds.columns, trained.schema)
    typer.echo(f"wrote {len(den)} denoised examples to {out}")
    if add_noise is not None:
        for line in _denoise_lines(trained, clean, noisy, den, ds.columns):
            typer.echo(line)


def _denoise_lines(trained, clean, noisy, den, columns: list[str] | None, show: int = 30) -> list[str]:
    """The errors of `denoise --add-noise`: for tables per column in standardized units (error / the column's
    training std, so one large column does not dominate) and their mean; for images and arrays per feature
    in data units. Says plainly when the denoised output is not closer to the clean data than its input."""
    if trained.scaler is not None:
        std = trained.scaler.std.reshape(1, -1).to(clean.device)
        per = lambda a: (((a - clean) / std) ** 2).mean(0)  # noqa: E731
        cor, dn = per(noisy), per(den)
        d = cor.numel()
        names = columns if columns and len(columns) == d else [f"x{i}" for i in range(d)]
        width = max(8, *(len(n) for n in names[:show]))
        lines = ["MSE against the clean data, per column in standardized units (squared error / the column's "
                 "training variance):", f"  {'column':<{width}}  corrupted   denoised"]
        lines += [f"  {n:<{width}}  {c:9.5f}  {v:9.5f}" + ("   (worse)" if v >= c else "")
                  for n, c, v in zip(names[:show], cor.tolist(), dn.tolist())]
        if d > show:
            lines.append(f"  ... and {d - show} more columns")
        mc, md = float(cor.mean()), float(dn.mean())
        lines.append(f"  {'mean':<{width}}  {mc:9.5f}  {md:9.5f}")
        worse = [n for n, c, v in zip(names, cor.tolist(), dn.tolist()) if v >= c]
    else:
        mc, md = float(((noisy - clean) ** 2).mean()), float(((den - clean) ** 2).mean())
        lines = [f"MSE per feature against the clean data (data units): corrupted {mc:.5f}, denoised {md:.5f}"]
        worse = []
    if md >= mc:
        lines.append(f"denoising did not help: the denoised output is further from the clean data ({md:.5f}) than "
                     f"the corrupted input ({mc:.5f}): its reconstruction error exceeds this noise; train longer or with "
                     "--corruption matching this noise")
    elif worse:
        lines.append(f"denoising helped on average but not for {len(worse)} column(s): {', '.join(worse[:8])}"
                     + (" ..." if len(worse) > 8 else ""))
    return lines


from . import cli_inspect  # noqa: E402,F401  (registers the inspection commands on `app`)
from . import cli_tune  # noqa: E402,F401  (registers `vaekit tune`)
from . import cli_complete  # noqa: E402,F401  (registers impute and inpaint on `app`)
from . import cli_anomaly  # noqa: E402,F401  (registers `vaekit score`)


def main() -> None:
    """Console-script entry point."""
    from ._threads import cli_environment

    problem = cli_environment()  # before torch is imported: OpenMP reads its settings once, when it starts
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise SystemExit(2)
    app(prog_name="vaekit")


if __name__ == "__main__":  # pragma: no cover
    # `python -m vaekit.cli`: the other command modules register on vaekit.cli's app, not on this __main__ copy
    from vaekit.cli import main as _main

    sys.exit(_main())
