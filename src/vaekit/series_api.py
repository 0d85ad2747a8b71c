"""The run of the time-series families (``series-vae``, ``forecast-cvae``) and what a trained one does with a
series: forecasts (samples → quantiles), rolling-origin evaluation; scores and gap filling are in
:mod:`vaekit.series_tasks`.

``results.json`` of a forecast-cvae run holds the rolling-origin metrics of the test period (origins every
``horizon`` steps, each forecast from the ``context`` steps before it, every window inside the test period);
a series-vae run's holds the −ELBO per window of the validation and test periods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import Standardizer
from .errors import DataError, UsageError
from .families import FAMILIES, family_name
from .runs import RESULTS, WEIGHTS, prepare_run_dir, save_tensors, write_json
from .trained import TrainedVAE
from .training import Trainer

#: forecast samples behind results.json's metrics
EVAL_SAMPLES = 100
QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)


def train_series(prep: Any, info: dict, ctx: Any) -> TrainedVAE:
    """Train a series run (see :func:`vaekit.api.train`) and write its results."""
    cfg, out = prep.cfg, ctx.out
    info["series"] = prep.series_info
    family = FAMILIES[family_name(cfg)]()
    if out is not None and not ctx.resume:
        prepare_run_dir(out, ctx.overwrite, info, ctx.held)
    torch.manual_seed(cfg.seed)
    model = family.build(cfg, prep.shape, len(info["series"]["covariates"]) + len(info["series"]["calendar"]))
    trainer = Trainer(model, cfg, ctx.device, run_dir=out, progress=ctx.progress, on_epoch_end=ctx.on_epoch_end,
                      family=family)
    if ctx.resume and not ctx.restart:
        trainer.load_checkpoint()
    result = trainer.fit(prep.splits[0], prep.splits[1])
    trained = TrainedVAE(trainer.model, cfg, info, out, prep.scaler, result)
    if out is not None:
        save_tensors(out / WEIGHTS, trained.model.state_dict())
        if family_name(cfg) == "forecast-cvae":
            from .series_calibration import calibrate_run

            calibrate_run(trained, prep.ds.series, EVAL_SAMPLES, cfg.seed)
        write_json(out / RESULTS, series_results(trained, prep, result))
        _end_of_series_run(trained, prep, ctx.end.get("report", True))
        trainer.save_checkpoint(finished=True)
    return trained


def _end_of_series_run(trained: TrainedVAE, prep: Any, report: bool) -> None:
    """report.html with the test period's pictures (``report``) and the model card (always), as a VAE run ends."""
    if report:
        from .series_report import write_series_outputs

        write_series_outputs(trained, prep.ds.series, None, tuple(trained.info["series"]["periods"][2]),
                             trained.config.seed)
    else:
        from .finish import write_card

        write_card(trained)


def series_results(trained: TrainedVAE, prep: Any, result: Any) -> dict:
    """results.json: training summary, −ELBO per window, and (forecast-cvae) rolling-origin test metrics."""
    from .families.series import window_elbo

    model = trained.model
    out: dict[str, Any] = {"units": "elbo (= −ELBO), recon, kl: nats per window in standardized units (the "
                                    "training period's); forecast metrics: the targets' own units", "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                           "stopped_early": result.stopped_early,
                           "validation": window_elbo(model, prep.splits[1], 1024),
                           "test": window_elbo(model, prep.splits[2], 1024)}
    if family_name(trained.config) == "forecast-cvae":
        sd = prep.ds.series
        a, b = trained.info["series"]["periods"][2]
        cal = trained.info["series"].get("calibration")
        if cal:
            out["validation"]["forecast_calibration"] = {k: cal[k] for k in ("method", "origins", "n",
                                                                              "coverage_before", "coverage_after")}
        out["test"]["forecast"] = rolling_origin(trained, sd, test_origins(trained, a, b), EVAL_SAMPLES,
                                                 trained.config.seed)
    return out


def test_origins(trained: TrainedVAE, start: int, stop: int) -> np.ndarray:
    """Forecast origins of a period [start, stop): every ``horizon`` steps, context and future inside it."""
    C, H = trained.config.context, trained.config.horizon
    return np.arange(start + C, stop - H + 1, H, dtype=np.int64)


def season(info: dict) -> int:
    """MASE's seasonal period in steps: a day when steps are shorter than a day (clock), else 1."""
    s = info["series"]
    day = 86400 * 10**9
    return day // s["step_ns"] if s["clock"] and s["step_ns"] < day and day % s["step_ns"] == 0 else 1


def series_scalers(trained: TrainedVAE) -> tuple[Standardizer, Standardizer | None]:
    s = trained.info["series"]
    cov = Standardizer.from_dict(s["covariate_scaler"]) if s.get("covariate_scaler") else None
    return trained.scaler, cov


@torch.no_grad()
def forecast_samples(trained: TrainedVAE, sd: Any, origins: np.ndarray, samples: int, seed: int,
                     batch: int = 256, calibrated: bool = True) -> np.ndarray:
    """[samples, N, H, D] forecasts (data units) of the ``horizon`` steps from each origin of ``sd`` (a
    :class:`~vaekit.data.series.SeriesData` long enough to hold the futures' covariates); ``calibrated``: moved
    by the run's validation-period recalibration (:mod:`vaekit.series_calibration`) when it has one."""
    from .series_prep import covariates, model_units

    model, cfg = trained.model, trained.config
    C, H = cfg.context, int(cfg.horizon)
    scaler, cov_scaler = series_scalers(trained)
    x, mask = model_units(sd, scaler)
    c = covariates(sd, cov_scaler)
    dev = trained.device
    gen = torch.Generator(dev).manual_seed(seed)
    idx = torch.as_tensor(origins)[:, None] + torch.arange(-C, H)[None]  # [N, C + H]
    keep = torch.arange(C + H) < C
    outs = []
    for i in range(0, len(origins), batch):
        j = idx[i: i + batch]
        xb = (x[j] * keep[None, :, None]).to(dev)
        mb = (mask[j] * keep[None, :, None]).to(dev)
        cb = None if c is None else c[j].to(dev)
        outs.append(model.forecast(xb, mb, cb, samples, gen).cpu())
    y = torch.cat(outs, 1) if outs else torch.zeros(samples, 0, H, x.shape[1])
    fc = scaler.inverse_transform(y).numpy().astype(np.float64)
    if not calibrated:
        return fc
    from .series_calibration import recalibrate, run_calibration

    return recalibrate(fc, run_calibration(trained))


def rolling_origin(trained: TrainedVAE, sd: Any, origins: np.ndarray, samples: int = EVAL_SAMPLES,
                   seed: int = 0, calibrated: bool = True) -> dict[str, Any]:
    """Rolling-origin metrics (:mod:`vaekit.evaluation.forecasting`) of forecasts from ``origins`` of ``sd``,
    in the targets' units, MASE scaled by the seasonal naive error of the run's training period."""
    from .evaluation.forecasting import forecast_metrics, naive_scale

    if len(origins) == 0:
        raise UsageError("no forecast origin: the period is shorter than --context + --horizon")
    H = int(trained.config.horizon)
    ys = sd.values[np.asarray(origins)[:, None] + np.arange(H)[None]]  # [N, H, D]
    fc = forecast_samples(trained, sd, origins, samples, seed, calibrated=calibrated)
    m = season(trained.info)
    train_end = trained.info["series"]["periods"][0][1]
    out = forecast_metrics(fc, ys, naive_scale(sd.values[:train_end], m))
    return {"origins": int(len(origins)), "horizon": H, "samples": samples, "season": m, **out}


def load_series_run(run: Path, family: str | None = None) -> TrainedVAE:
    """A series run (``family``: the one the command needs), refusing others in one line."""
    from .api import load

    trained = load(run)
    have = family_name(trained.config)
    if "series" not in trained.info or (family is not None and have != family):
        need = family or "series-vae or forecast-cvae"
        raise UsageError(f"{run} is a {have} run; this command needs a {need} run (vaekit train --family {need} ...)")
    return trained


def read_series(trained: TrainedVAE, data: str, label_column: str | None = None) -> Any:
    """``data`` read as the run's series (same time, target and covariate columns; same step), with its 0/1
    ``label_column`` when given."""
    from .data import load_source
    from .data.kinds import kind_of

    opts = kind_of("series").load_options(trained.config, trained.info)
    ds = load_source(data, label_column=label_column, **opts)
    sd, s = ds.series, trained.info["series"]
    if sd.step != s["step_ns"] and s["clock"]:
        raise DataError(f"{data} has a step of {sd.step / 1e9:g} s but the run was trained on steps of "
                        f"{s['step_ns'] / 1e9:g} s; give data at the run's frequency")
    return sd



def evaluate_series(trained: TrainedVAE, data: str | None = None, split: str = "test", seed: int = 0) -> dict:
    """On the ``split`` period of ``data`` (default: the run's own; periods cut as in training): a forecast-cvae's
    rolling-origin metrics (origins every horizon steps, context and future inside the period, 100 samples) or
    a series-vae's −ELBO per window (stride 1); on the run's own data, results.json's numbers."""
    from .data.kinds.series import SeriesSplit, windows
    from .data.series import periods
    from .families.series import window_elbo
    from .series_prep import covariates, model_units

    names = ("train", "validation", "test")
    if split not in names:
        raise UsageError(f"--split must be one of {', '.join(names)}, got {split!r}")
    cfg = trained.config
    source = cfg.data if data is None else str(data)
    sd = read_series(trained, source)
    a, b = periods(sd.observed_end, cfg.val_fraction, cfg.test_fraction)[names.index(split)]
    res: dict[str, Any] = {"data": source, "split": split, "steps": [int(a), int(b)]}
    if family_name(cfg) == "forecast-cvae":
        return {**res, **rolling_origin(trained, sd, test_origins(trained, a, b), EVAL_SAMPLES, seed)}
    scaler, cov_scaler = series_scalers(trained)
    x, mask = model_units(sd, scaler)
    c = covariates(sd, cov_scaler)
    L = cfg.context
    if b - a < L:
        raise DataError(f"the {split} period of {source} has {b - a} steps, fewer than the run's --context of {L}")
    part = SeriesSplit(x=windows(x, (a, b), L, 1), mask=windows(mask, (a, b), L, 1),
                       c=None if c is None else windows(c, (a, b), L, 1), starts=None)
    return {**res, **window_elbo(trained.model, part, 256, seed), "windows": len(part), "context": L}
