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
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..runs import atomic_write_bytes

    D = min(len(sd.targets), 4)
    fig, axes = plt.subplots(D, 1, figsize=(9, 2.6 * D), squeeze=False)
    past = np.arange(origin - context, origin)
    fut = np.arange(origin, origin + fc.shape[1])
    for d in range(D):
        ax = axes[d, 0]
        ax.plot(past - origin, sd.values[past, d], color="black", lw=1, label="observed")
        for lo, hi, a in ((0.025, 0.975, 0.2), (0.1, 0.9, 0.35)):
            ax.fill_between(fut - origin, np.quantile(fc[:, :, d], lo, 0), np.quantile(fc[:, :, d], hi, 0),
                            color="C0", alpha=a, lw=0, label=f"{hi - lo:.0%} interval")
        ax.plot(fut - origin, np.median(fc[:, :, d], 0), color="C0", lw=1.5, label="median")
        ax.set_ylabel(sd.targets[d])
        ax.legend(loc="upper left", fontsize=7)
    axes[-1, 0].set_xlabel(f"steps from the forecast origin ({sd.time_text(np.array([origin]))[0]})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(png, buf.getvalue())
