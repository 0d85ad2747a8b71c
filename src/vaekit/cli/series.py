"""Time-series commands: ``vaekit forecast`` (a forecast-cvae run), and the series branches of ``vaekit score``
and ``vaekit impute`` (a series-vae run), which delegate here. Registered on :data:`vaekit.cli.app`; torch is
imported lazily."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import app, check_out_file, user_errors
from ..errors import DataError, UsageError


@app.command()
@user_errors
def forecast(
    run: Path = typer.Argument(..., help="run directory of a forecast-cvae run"),
    data: str = typer.Option(..., "--data", help="the series (same columns as training); the forecast starts after its last observed step (rows after it carry the future covariates)"),
    out: Path = typer.Option(..., "--out", help="FILE.csv: time, step, then mean, median and quantiles per target; FILE.png beside it: the fan chart"),
    horizon: Optional[int] = typer.Option(None, "--horizon", help="steps to forecast \\[the run's --horizon]"),
    samples: int = typer.Option(200, "--samples", help="sampled futures behind the quantiles"),
    quantiles: str = typer.Option("0.025,0.1,0.5,0.9,0.975", "--quantiles", help="quantiles to write, comma-separated, in (0, 1)"),
    seed: int = typer.Option(0, "--seed", help="seed of the sampling"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out (and its .png) if they exist"),
) -> None:
    """Probabilistic forecast of the steps after a series: median and quantiles per step, and a fan chart."""
    check_out_file(out, overwrite, (".csv",))
    png = out.with_suffix(".png")
    if png.exists() and not overwrite:
        raise UsageError(f"{png} (the fan chart beside --out) already exists; pass --overwrite or choose another --out")
    qs = _quantiles(quantiles)
    if not 1 <= samples <= 100_000:
        raise UsageError(f"--samples must be between 1 and 100000, got {samples}")
    import numpy as np

    from ..data.series import extend
    from ..runs import atomic_write_text
    from ..series_api import forecast_samples, load_series_run, read_series

    trained = load_series_run(run, "forecast-cvae")
    C, H = trained.config.context, int(trained.config.horizon)
    if horizon is not None and horizon != H:
        raise UsageError(f"{run} was trained to forecast --horizon {H} steps, not {horizon}; forecast {H} steps (or "
                         f"train a run with --horizon {horizon})")
    sd = read_series(trained, data)
    origin = sd.observed_end
    if origin < C:
        raise DataError(f"{data} has {origin} observed steps, fewer than the run's --context of {C}; give a longer "
                        "series")
    missing = origin + H - len(sd.times)
    if missing > 0 and sd.covariates:
        raise DataError(f"{data} needs the covariates {', '.join(sd.covariates)} for the {H} steps after its last "
                        f"observed one ({missing} row(s) missing): add those rows with the covariates and empty targets")
    sd = extend(sd, missing)
    fc = forecast_samples(trained, sd, np.array([origin]), samples, seed)[:, 0]  # [S, H, D]
    times = sd.time_text(np.arange(origin, origin + H))
    atomic_write_text(out, _forecast_csv(fc, times, sd.targets, qs))
    _fan_chart(png, sd, origin, fc, C)
    typer.echo(f"forecast {H} steps of {', '.join(sd.targets)} after {sd.time_text(np.array([origin - 1]))[0]} "
               f"from {samples} samples; wrote {out} and {png}")


def _quantiles(text: str) -> list[float]:
    try:
        qs = [float(q) for q in text.split(",") if q.strip()]
    except ValueError:
        qs = []
    if not qs or any(not 0 < q < 1 for q in qs):
        raise UsageError(f"--quantiles must be numbers in (0, 1), comma-separated, e.g. 0.1,0.5,0.9; got {text!r}")
    return sorted(set(qs))


def _forecast_csv(fc, times: list[str], targets: list[str], qs: list[float]) -> str:
    import numpy as np

    header = ["time", "step"]
    cols = []
    for d, name in enumerate(targets):
        header += [f"{name}_mean", f"{name}_median"] + [f"{name}_q{q:g}" for q in qs]
        cols += [fc[:, :, d].mean(0), np.median(fc[:, :, d], 0)] + list(np.quantile(fc[:, :, d], qs, axis=0))
    rows = [",".join(header)]
    for h, t in enumerate(times):
        rows.append(",".join([t, str(h + 1)] + [f"{c[h]:.7g}" for c in cols]))
    return "\n".join(rows) + "\n"


def _fan_chart(png: Path, sd, origin: int, fc, context: int) -> None:
    """The last ``context`` observed steps and the forecast's median, 80% and 95% bands, one panel per target."""
    from ..runs import atomic_write_bytes
    from ..series_report import fan_chart_png

    atomic_write_bytes(png, fan_chart_png(sd, origin, fc, context))


def is_series_run(run: Path) -> bool:
    """Whether ``run``'s config.json names a series family (json only: no torch, no weights)."""
    import json

    try:
        with open(Path(run) / "config.json") as f:
            fam = json.load(f).get("config", {}).get("family")
    except (OSError, ValueError, AttributeError):
        return False
    return fam in ("series-vae", "forecast-cvae")


def _refuse(given: dict[str, bool], command: str) -> None:
    bad = [flag for flag, on in given.items() if on]
    if bad:
        raise UsageError(f"{', '.join(bad)} do(es) not apply to `vaekit {command}` of a time-series run; drop "
                         f"{', '.join(bad)}")


def series_score(run: Path, data: str, out: Path, k: int, threshold_quantile: Optional[float],
                 contamination: Optional[float], label_column: Optional[str], seed: int,
                 refused: Optional[dict[str, bool]] = None) -> None:
    """``vaekit score`` of a series-vae run: a score per timestamp (higher = more normal), a threshold (the
    ``threshold_quantile`` [0.01] of the scores of the run's validation period, or the ``contamination``
    quantile of the scored series), and point-wise AUROC / average precision with a 0/1 label column
    (never point-adjusted: each timestamp counts once)."""
    import numpy as np

    from ..runs import atomic_write_text
    from ..series_api import load_series_run, read_series
    from ..series_tasks import step_scores, sub_series
    from ..tasks.anomaly import check_score_settings, quantile_warning, ranking_metrics, threshold

    _refuse(refused or {}, "score")
    check_score_settings("iwae", 1, "auto" if contamination is None else contamination, threshold_quantile)
    if k < 1 or k > 100_000:
        raise UsageError(f"--iwae-k must be between 1 and 100000, got {k}")
    trained = load_series_run(run, "series-vae")
    label_column = label_column or trained.config.label_column
    sd = read_series(trained, data, label_column)
    n = sd.observed_end
    sd = sub_series(sd, 0, n)
    scores = step_scores(trained, sd, k, seed)
    ok = ~np.isnan(scores)
    if contamination is not None:
        offset, where = threshold(scores[ok], contamination), f"{contamination:g} of the scored steps below it"
    else:
        q = 0.01 if threshold_quantile is None else threshold_quantile
        try:
            ref = read_series(trained, trained.config.data)
        except DataError as err:
            raise DataError(f"the threshold is a quantile of the validation period of the run's data "
                            f"{trained.config.data!r}, which cannot be read ({str(err).rstrip('.')}); pass "
                            f"--contamination C to threshold on {data} itself") from None
        a, b = trained.info["series"]["periods"][1]
        val = step_scores(trained, sub_series(ref, a, b), k, seed)
        val = val[~np.isnan(val)]
        offset, where = threshold(val, q), f"the {q:g}-quantile of the scores of {run}'s {len(val)} validation steps"
        note = quantile_warning(len(val), q, "validation")
        if note:
            typer.echo(f"warning: {note}", err=True)
    flagged = ok & (scores < offset)
    times = sd.time_text()
    header = "time,score,is_anomaly" + (",label" if sd.labels is not None else "")
    rows = [header]
    for i, t in enumerate(times):
        row = f"{t},{'' if not ok[i] else f'{scores[i]:.6f}'},{int(flagged[i])}"
        if sd.labels is not None:
            row += f",{'' if sd.labels[i] < 0 else sd.labels[i]}"
        rows.append(row)
    atomic_write_text(out, "\n".join(rows) + "\n")
    typer.echo(f"scored {int(ok.sum())} steps of {data} (log p(x_t | window), mean over the {trained.config.context}"
               f"-step windows holding each step, k={k}); {len(scores) - int(ok.sum())} missing steps not scored")
    typer.echo(f"threshold {offset:.4f} ({where}): {int(flagged.sum())} steps flagged ({flagged[ok].mean():.1%})")
    if sd.labels is not None:
        known = ok & (sd.labels >= 0)
        m = ranking_metrics(scores[known], sd.labels[known] == 1)
        typer.echo(f"point-wise AUROC {m['auroc']:.4f}, average precision {m['average_precision']:.4f} "
                   f"({m['n_anomalies']} anomalous of {m['n']} labelled steps; not point-adjusted)")
    typer.echo(f"wrote {out}")


def series_impute(run: Path, data: str, out: Path, k: int, passes: int, seed: int,
                  refused: Optional[dict[str, bool]] = None) -> None:
    """``vaekit impute`` of a series-vae run: the series on its regular grid (missing timestamps included) up to
    its last observed step, with every missing target filled (importance-weighted conditional mean, ``k``
    samples, written to 7 significant digits); observed values are written as read (the shortest text that reads
    back as the same float64)."""
    from ..runs import atomic_write_text
    from ..series_api import load_series_run, read_series
    from ..series_tasks import impute_series, sub_series

    _refuse(refused or {}, "impute")
    if k < 1 or k > 100_000:
        raise UsageError(f"--k must be between 1 and 100000, got {k}")
    if passes < 1 or passes > 100:
        raise UsageError(f"--passes must be between 1 and 100, got {passes}")
    trained = load_series_run(run, "series-vae")
    sd = read_series(trained, data)
    sd = sub_series(sd, 0, sd.observed_end)
    filled, missing = impute_series(trained, sd, k, passes, seed)
    head = [sd.time_column or "step"] + sd.targets + sd.covariates
    rows = [",".join(head)]
    for i, t in enumerate(sd.time_text()):
        vals = [f"{v:.7g}" if missing[i, j] else repr(float(v)) for j, v in enumerate(filled[i])]
        rows.append(",".join([t] + vals + [repr(float(v)) for v in sd.known[i]]))
    atomic_write_text(out, "\n".join(rows) + "\n")
    typer.echo(f"filled {int(missing.sum())} missing values at {int(missing.any(1).sum())} of {len(sd.times)} steps "
               f"(importance-weighted conditional mean, k={k}, {passes} pass(es)); wrote {out}")


def series_evaluate(run: Path, data: Optional[str], split: str, seed: int, as_json: bool) -> None:
    """``vaekit evaluate`` of a series run: :func:`vaekit.series_api.evaluate_series`, printed (not saved)."""
    from ..runs import json_text
    from ..series_api import evaluate_series, load_series_run

    res = evaluate_series(load_series_run(run), data, split, seed)
    if "mae" in res:
        line = (f"{split} period of {res['data']}, {res['origins']} origins x {res['horizon']} steps: MAE "
                f"{res['mae']:.4g}, RMSE {res['rmse']:.4g}, MASE {res.get('mase', float('nan')):.3f}, CRPS "
                f"{res['crps']:.4g}, 80%/95% coverage {res['coverage_80']:.3f}/{res['coverage_95']:.3f}")
    else:
        line = (f"{split} period of {res['data']} ({res['windows']} windows of {res['context']} steps): -ELBO "
                f"{res['elbo']:.3f} nats per window (recon {res['recon']:.3f} + KL {res['kl']:.3f}; standardized "
                "units)")
    typer.echo(json_text(res, indent=2) if as_json else line)
