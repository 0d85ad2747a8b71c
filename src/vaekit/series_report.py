"""``report.html`` and the model card of a time-series run (:mod:`vaekit.evaluation.series_card` writes them):
the pictures of a test window, made here because they need the model: a forecast-cvae's fan chart at the first
origin of the test period; a series-vae's reconstruction of the first test window and its per-timestamp
anomaly scores over the test period (labelled anomalies shaded).

Training writes them at the end (from ``results.json``, without ``evaluation.json``, unless ``report=False``:
then the card only); ``vaekit report RUN`` re-evaluates a period (:func:`vaekit.series_api.evaluate_series`),
writes ``evaluation.json`` and both files again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .families import family_name
from .trained import TrainedVAE

#: sampled futures of the report's fan chart; posterior draws of its anomaly scores; at most this many steps
#: of the period are scored for the picture (its cost stays bounded however long the test period is)
FAN_SAMPLES, SCORE_K, SCORE_STEPS = 200, 20, 2000


def fan_chart_png(sd: Any, origin: int, fc: np.ndarray, context: int) -> bytes:
    """The ``context`` steps before ``origin`` and the forecast's median, 80% and 95% bands (``fc``: [S, H, D]
    samples), one panel per target (at most 4)."""
    from .evaluation.report import fig_png, pyplot

    plt = pyplot()
    D = min(len(sd.targets), 4)
    fig, axes = plt.subplots(D, 1, figsize=(9, 2.6 * D), squeeze=False)
    past = np.arange(max(origin - context, 0), origin)
    fut = np.arange(origin, origin + fc.shape[1])
    for d in range(D):
        ax = axes[d, 0]
        ax.plot(past - origin, sd.values[past, d], color="black", lw=1, label="observed")
        if fut[-1] < len(sd.values) and not np.isnan(sd.values[fut, d]).all():
            ax.plot(fut - origin, sd.values[fut, d], color="black", lw=1, ls=":", label="actual")
        for lo, hi, a in ((0.025, 0.975, 0.2), (0.1, 0.9, 0.35)):
            ax.fill_between(fut - origin, np.quantile(fc[:, :, d], lo, 0), np.quantile(fc[:, :, d], hi, 0),
                            color="C0", alpha=a, lw=0, label=f"{hi - lo:.0%} interval")
        ax.plot(fut - origin, np.median(fc[:, :, d], 0), color="C0", lw=1.5, label="median")
        ax.set_ylabel(sd.targets[d])
        ax.legend(loc="upper left", fontsize=7)
    axes[-1, 0].set_xlabel(f"steps from the forecast origin ({sd.time_text(np.array([origin]))[0]})")
    fig.tight_layout()
    return fig_png(fig)


@torch.no_grad()
def reconstruction_png(trained: TrainedVAE, sd: Any, start: int) -> bytes:
    """The window of ``context`` steps from ``start``: observed values and the decoder's mean ± 2 std at the
    posterior mean of z (data units), one panel per target (at most 4)."""
    from .evaluation.report import fig_png, pyplot
    from .series_api import series_scalers
    from .series_prep import covariates, model_units

    L = trained.config.context
    scaler, cov_scaler = series_scalers(trained)
    x, mask = model_units(sd, scaler)
    c = covariates(sd, cov_scaler)
    sl = slice(start, start + L)
    dev = trained.device
    xb, mb = x[None, sl].to(dev), mask[None, sl].to(dev)
    cb = None if c is None else c[None, sl].to(dev)
    mu, _ = trained.model.posterior(xb, mb, cb)
    mean, lv = trained.model.decoder(mu, cb)
    std = (0.5 * lv).exp() * scaler.std.to(dev)
    mean = scaler.inverse_transform(mean.cpu()).numpy()[0]
    std = std.cpu().numpy()[0]
    plt = pyplot()
    D = min(len(sd.targets), 4)
    fig, axes = plt.subplots(D, 1, figsize=(9, 2.4 * D), squeeze=False)
    t = np.arange(L)
    for d in range(D):
        ax = axes[d, 0]
        ax.fill_between(t, mean[:, d] - 2 * std[:, d], mean[:, d] + 2 * std[:, d], color="C0", alpha=0.25, lw=0,
                        label="± 2 std")
        ax.plot(t, mean[:, d], color="C0", lw=1.5, label="reconstruction (mean)")
        ax.plot(t, sd.values[sl, d], color="black", lw=1, label="observed")
        ax.set_ylabel(sd.targets[d])
        ax.legend(loc="upper left", fontsize=7)
    axes[-1, 0].set_xlabel(f"steps from {sd.time_text(np.array([start]))[0]}")
    fig.tight_layout()
    return fig_png(fig)


def scores_png(sd: Any, scores: np.ndarray, first: int) -> bytes:
    """Per-timestamp scores (log p(x_t | window); low = anomalous) over a period starting at step ``first``,
    with the labelled anomalies shaded when the series has labels."""
    from .evaluation.report import fig_png, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(2, 1, figsize=(9, 4.8), sharex=True)
    t = np.arange(len(scores)) + first
    ax[0].plot(t, sd.values[:, 0], color="black", lw=0.8)
    ax[0].set_ylabel(sd.targets[0])
    ax[1].plot(t, scores, color="C3", lw=0.8)
    ax[1].set_ylabel("score (log p)")
    if sd.labels is not None and (sd.labels == 1).any():
        for a in ax:
            a.fill_between(t, 0, 1, where=sd.labels == 1, color="C1", alpha=0.3, lw=0,
                           transform=a.get_xaxis_transform(), label="labelled anomaly")
        ax[1].legend(loc="lower left", fontsize=7)
    ax[1].set_xlabel("step")
    fig.tight_layout()
    return fig_png(fig)


def series_figures(trained: TrainedVAE, sd: Any, period: tuple[int, int], seed: int = 0) -> dict[str, tuple[str, bytes]]:
    """The report's pictures of the ``period`` [a, b) of ``sd`` (id → (caption, PNG)); none when the period is too
    short for one window."""
    from .series_api import forecast_samples, test_origins
    from .series_tasks import step_scores, sub_series

    a, b = int(period[0]), int(period[1])
    C = trained.config.context
    when = lambda i: sd.time_text(np.array([i]))[0]  # noqa: E731
    if family_name(trained.config) == "forecast-cvae":
        origins = test_origins(trained, a, b)
        if not len(origins):
            return {}
        o = int(origins[0])
        fc = forecast_samples(trained, sd, np.array([o]), FAN_SAMPLES, seed)[:, 0]
        return {"fan": (f"Forecast of a test window: {FAN_SAMPLES} sampled futures from the origin {when(o)} (the "
                        "first of the period), median and 80% / 95% intervals; dotted: what happened",
                        fan_chart_png(sd, o, fc, C))}
    if b - a < C:
        return {}
    b = min(b, a + max(SCORE_STEPS, C))
    part = sub_series(sd, a, b)
    scores = step_scores(trained, part, SCORE_K, seed)
    return {"reconstruction": (f"Reconstruction of a test window: the {C} steps from {when(a)}, the decoder's mean "
                               "± 2 std at the posterior mean of z", reconstruction_png(trained, sd, a)),
            "scores": (f"Anomaly scores: log p(x_t | window) per timestamp of the {b - a} steps from {when(a)} (k = "
                       f"{SCORE_K} posterior draws; low = anomalous)", scores_png(part, scores, a))}


def write_series_outputs(trained: TrainedVAE, sd: Any, ev: dict | None, period: tuple[int, int],
                         seed: int = 0) -> Path:
    """report.html (with the pictures of ``period``) and the model card; the report's path (lock held)."""
    from .evaluation.series_card import write_series_report
    from .finish import write_card

    path = write_series_report(trained.run_dir, trained.info, ev, series_figures(trained, sd, period, seed))
    write_card(trained)
    return path


def report_series(trained: TrainedVAE, data: Any = None, split: str = "test", seed: int = 0) -> Path:
    """``vaekit report`` of a series run: ``evaluation.json`` (:func:`~vaekit.series_api.evaluate_series` of
    ``split``), ``report.html`` and the model card; the report's path."""
    from .runs import EVALUATION, lock_run, write_json
    from .series_api import evaluate_series, read_series

    run = trained.run_dir
    with lock_run(run, "report"):  # taken before computing: a read-only or busy run fails now
        ev = evaluate_series(trained, data, split, seed)
        write_json(run / EVALUATION, ev)
        label = trained.config.label_column if data is None else None  # other data need not carry the labels
        sd = read_series(trained, ev["data"], label)
        return write_series_outputs(trained, sd, ev, tuple(ev["steps"]), seed)
