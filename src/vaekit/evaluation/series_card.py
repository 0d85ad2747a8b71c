"""The model card (``RUN/README.md``) and ``report.html`` of a time-series run (``forecast-cvae``,
``series-vae``): the series (time range, step, columns, the chronological periods), the metrics with their
definitions (rolling-origin forecast metrics or −ELBO per window), intended use and limits, how to load it and
forecast or score. A VAE's card talks of samples and latent codes of examples, which do not apply here;
:func:`vaekit.evaluation.model_card.model_card` hands series runs to this module. Pictures come in as PNG bytes
(made by :mod:`vaekit.series_report`), so this module needs neither torch nor the model.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..runs import CARD_MARK, CONFIG, EVALUATION, METRICS, RESULTS, WEIGHTS, atomic_write_text

__all__ = ["series_card", "write_series_report", "FORECAST_METRICS"]

#: results.json / evaluation.json forecast keys → how the card and the report name them
FORECAST_METRICS = {"mae": "MAE", "rmse": "RMSE", "mase": "MASE", "crps": "CRPS", "coverage_80": "80% coverage",
                    "coverage_95": "95% coverage", "origins": "origins"}
WINDOW_METRICS = {"elbo": "−ELBO", "recon": "recon", "kl": "KL"}
_ABOUT = {
    "forecast-cvae": "a conditional VAE forecaster: the condition is the encoded context (its values, missing-value "
                     "mask and covariates) plus the future covariates; z drawn from the prior gives one sampled "
                     "future, many give a probabilistic forecast (median and quantiles per step)",
    "series-vae": "a VAE of windows of the series (a Gaussian per step and target, missing steps masked out of the "
                  "likelihood): per-timestamp anomaly scores and gap filling"}
_FORECAST_DEFS = [
    "Forecasts start at **rolling origins** every `--horizon` steps of the period, each from the `--context` steps "
    "before it, with the context and the future inside the period; 100 sampled futures per origin.",
    "**MAE** and **RMSE**: of the median forecast, over every forecast step and target, in the targets' own units.",
    "**MASE**: MAE divided by the mean absolute error of the seasonal naive forecast over the training period "
    "(season: a day's steps for sub-daily data, else 1); below 1 beats that naive forecast.",
    "**CRPS**: the continuous ranked probability score of the sampled forecast distribution (targets' units; a "
    "point forecast's CRPS is its MAE); lower is better.",
    "**80% / 95% coverage**: the fraction of true values inside the central 80% / 95% intervals of the samples; "
    "near 0.80 / 0.95 means calibrated intervals."]
_WINDOW_DEFS = [
    "**−ELBO**: the negative evidence lower bound per window of `--context` steps (nats, in the standardized units "
    "of the training period; one seeded draw of z), = **recon** (−log p of the observed entries given z) + **KL** "
    "(of q(z | window) from the prior); lower is better. Windows of the period with stride 1."]


def _num(v: Any, digits: int = 4) -> str:
    if v is None or isinstance(v, bool):
        return "n/a"
    if isinstance(v, int):
        return str(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "n/a"
    return f"{f:.{digits}g}" if f == f else "n/a"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]


def is_forecaster(info: dict) -> bool:
    return info.get("config", {}).get("family") == "forecast-cvae"


def metric_rows(info: dict, results: dict | None, ev: dict | None) -> tuple[list[str], list[list[str]]]:
    """(header, rows): a forecast-cvae's rolling-origin metrics (results.json's test period, evaluation.json's),
    or a series-vae's −ELBO per window (validation and test periods, evaluation.json's)."""
    rows: list[list[str]] = []
    if is_forecaster(info):
        names = FORECAST_METRICS
        f = ((results or {}).get("test") or {}).get("forecast")
        if isinstance(f, dict):
            rows.append([f"test period (`{RESULTS}`)"] + [_num(f.get(k)) for k in names])
        if ev and "mae" in ev:
            rows.append([f"{ev.get('split')} period of `{ev.get('data')}` (`{EVALUATION}`)"]
                        + [_num(ev.get(k)) for k in names])
    else:
        names = WINDOW_METRICS
        for split in ("validation", "test"):
            r = (results or {}).get(split)
            if isinstance(r, dict):
                rows.append([f"{split} period (`{RESULTS}`)"] + [_num(r.get(k)) for k in names])
        if ev and "elbo" in ev:
            rows.append([f"{ev.get('split')} period of `{ev.get('data')}` (`{EVALUATION}`)"]
                        + [_num(ev.get(k)) for k in names])
    return ["where", *names.values()], rows


def data_facts(info: dict) -> list[list[str]]:
    """The series' facts as (name, value) rows: source, time range, step, columns, periods, fingerprint."""
    s, data, cfg = info.get("series", {}), info.get("data", {}), info.get("config", {})
    step = s.get("step_ns")
    if s.get("clock") and isinstance(step, int):
        sec = step / 1e9
        freq = next((f"{sec / u:g} {n}" for u, n in ((86400, "day(s)"), (3600, "hour(s)"), (60, "minute(s)"))
                     if sec >= u and sec % u == 0), f"{sec:g} s")
    else:
        freq = "no clock (steps of an array)"
    starts, periods = s.get("period_starts") or [], s.get("periods") or []
    split = []
    for i, (name, p) in enumerate(zip(("train", "validation", "test"), periods)):
        when = f" from {starts[i]}" if i < len(starts) else ""
        split.append(f"{name} steps {p[0]}–{p[1] - 1}{when}")
    first = starts[0] if starts else "n/a"
    return [["source", f"`{data.get('source')}`"], ["kind", "series (one regular series)"],
            ["time range", f"{first} to {s.get('last_step', 'n/a')} (last observed step)"],
            ["step", freq], ["time column", f"`{s.get('time_column')}`" if s.get("time_column") else "none"],
            ["targets", ", ".join(f"`{t}`" for t in s.get("targets", [])) or "n/a"],
            ["covariates (known in advance)", ", ".join(f"`{c}`" for c in s.get("covariates", [])) or "none"],
            ["calendar features", ", ".join(s.get("calendar", [])) or "none"],
            ["windows", f"context {s.get('context')}" + (f" + horizon {s['horizon']}" if s.get("horizon") else "")
             + f" steps, training stride {s.get('stride')}"],
            ["chronological split", " · ".join(split) or "n/a"],
            ["label column", f"`{cfg['label_column']}`" if cfg.get("label_column") else "none"],
            ["SHA-256 fingerprint", f"`{data.get('fingerprint')}`"]]


def series_card(name: str, info: dict, results: dict | None, ev: dict | None) -> str:
    """The Markdown card of a series run named ``name`` with ``config.json`` = ``info``."""
    from .model_card import _config, family_card_safety

    cfg, s = info.get("config", {}), info.get("series", {})
    fam = cfg.get("family", "series-vae")
    net = cfg.get("series_network", "conv")
    out = [CARD_MARK, "", f"# vaekit run `{name}`", "",
           f"A time-series model: {_ABOUT.get(fam, fam)} (family `{fam}`), {net} networks of "
           f"{(cfg.get('hidden') or ['?'])[0]} units, a {cfg.get('latent_dim')}-dimensional latent code.", "",
           f"Trained on `{info.get('data', {}).get('source')}` with vaekit {info.get('vaekit_version', '?')} and "
           f"PyTorch {info.get('torch_version', '?')}; created {info.get('created', '?')}.", "",
           "## Data", "", *_table(["", ""], data_facts(info)), "",
           "The split is chronological: the last `--test-fraction` of the steps (up to the last observed one) test, "
           "the `--val-fraction` before them validate (early stopping), the rest trains; no window crosses a "
           "period's boundary, and the scalers of the targets and covariates are fitted on the training period "
           f"only. Missing timestamps and empty cells are missing steps, masked out of the likelihood. The columns, "
           f"step, periods and covariate scaler are in `{CONFIG}` (key `series`).", "",
           *_config(info), "## Metrics", ""]
    header, rows = metric_rows(info, results, ev)
    if rows:
        out += [*_table(header, rows), ""]
    else:
        out += [f"No `{RESULTS}` yet (the run has not finished); `vaekit report RUN` writes the metrics.", ""]
    out += [f"- {d}" for d in (_FORECAST_DEFS if fam == "forecast-cvae" else _WINDOW_DEFS)] + [""]
    if results and "epochs_run" in results:
        best = f", best epoch {results['best_epoch']} by the validation loss (−ELBO, or −IWAE with --iw-samples)" if results.get("best_epoch") else ""
        out += [f"Training ran {results['epochs_run']} epochs{best}"
                f"{' (stopped early)' if results.get('stopped_early') else ''}.", ""]
    targets = ", ".join(s.get("targets", [])) or "the targets"
    out += ["## Intended use and limits", ""]
    if fam == "forecast-cvae":
        out += [f"- Forecasting the next {s.get('horizon')} steps of {targets} from the last {s.get('context')} "
                "steps of the same series at the same step, as a distribution (median and quantiles per step)"
                + (", given the covariates of those future steps (they must be known in advance)"
                   if s.get("covariates") else "") + ".",
                "- Compare its MAE and CRPS with the seasonal naive forecasts and a ridge on lags "
                "(`bench/series.py`) before trusting it; the intervals are recalibrated on the validation period "
                "(`calibration.json`) and calibrated only as far as the coverage above says, on one test period.",
                "- It has seen one series: a different series, a changed level or season (a new regime, a "
                "holiday pattern absent from training) is extrapolation. A forecast of another horizon needs "
                "another run."]
    else:
        out += [f"- Scoring each timestamp of {targets} (log p(x_t | window), higher = more normal) to flag "
                "anomalies against a threshold taken on the validation period, and filling gaps.",
                "- The scores are relative to the training period: a series whose normal behaviour differs from "
                "it scores low everywhere. Anomalies present in the training period are partly learnt as normal.",
                "- With labels, judge it by point-wise AUROC and average precision (`vaekit score --label-column`); "
                "point-adjusted scores flatter random detectors and are not reported."]
    out += ["- The −ELBO and the likelihood are in the training period's standardized units; forecast metrics "
            "are in the targets' own units.", ""]
    out += ["## How to use", "", "```python", "import numpy as np", "import vaekit", "",
            f'model = vaekit.load("{name}")   # config.json + {WEIGHTS}',
            "from vaekit.series_api import read_series, forecast_samples" if fam == "forecast-cvae"
            else "from vaekit.series_api import read_series",
            'sd = read_series(model, "series.csv")   # the same columns, at the same step']
    if fam == "forecast-cvae":
        out += ["from vaekit.data.series import extend",
                f"H, origin = {s.get('horizon')}, sd.observed_end   # forecast the H steps after the last observed one",
                "sd = extend(sd, origin + H - len(sd.times))   # (rows after it may carry the future covariates)",
                "futures = forecast_samples(model, sd, np.array([origin]), samples=200, seed=0)  # [200, 1, H, D]"]
    else:
        out += ["from vaekit.series_tasks import step_scores, impute_series",
                "scores = step_scores(model, sd, k=100)   # [T] log-density per step (NaN: missing)"]
    out += ["```", "", "```sh"]
    if fam == "forecast-cvae":
        out += [f"vaekit forecast {name} --data series.csv --samples 200 --out forecast.csv   # + forecast.png"]
    else:
        out += [f"vaekit score {name} --data series.csv --out scores.csv     # time,score,is_anomaly[,label]",
                f"vaekit impute {name} --data series.csv --out filled.csv"]
    out += [f"vaekit evaluate {name}        # the metrics above, on the test period",
            f"vaekit report {name}          # rewrites report.html, evaluation.json and this card",
            "```", "", *family_card_safety()]
    return "\n".join(out)


def curve_png(metrics: list[dict]) -> bytes | None:
    """Training and validation loss (−ELBO per window, or −IWAE) per epoch."""
    from .report import train_val_curve

    return train_val_curve(metrics, "loss per window (nats, standardized units)")


def write_series_report(run: Path, info: dict, ev: dict | None, figures: dict[str, tuple[str, bytes]]) -> Path:
    """``RUN/report.html`` of a series run: metrics (results.json and ``ev``), their definitions, the data, the
    training curve, ``figures`` (id → (caption, PNG bytes)) and the config; written atomically, returns its path."""
    from ..runs import read_json
    from .report import CSS, data_uri

    results = read_json(run / RESULTS) if (run / RESULTS).is_file() else None
    metrics = [json.loads(t) for t in (run / METRICS).read_text().splitlines() if t.strip()] \
        if (run / METRICS).is_file() else []
    e = html.escape
    header, rows = metric_rows(info, results, ev)
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c.replace('`', ''))}</td>" for c in row) + "</tr>" for row in rows)
    defs = "".join(f"<li>{e(d.replace('**', '').replace('`', ''))}</li>"
                   for d in (_FORECAST_DEFS if is_forecaster(info) else _WINDOW_DEFS))
    facts = "".join(f"<tr><th>{e(k)}</th><td>{e(v.replace('`', ''))}</td></tr>" for k, v in data_facts(info))
    parts = [f"<h1>vaekit run {e(run.name)}</h1>",
             f"<p>{e(info.get('config', {}).get('family', ''))} · vaekit {e(str(info.get('vaekit_version')))}</p>",
             f'<h2 id="metrics">Metrics</h2><table><tr>{head}</tr>{body}</table><ul>{defs}</ul>',
             f'<h2 id="data">Data</h2><table>{facts}</table>']
    png = curve_png(metrics)
    if png is not None:
        parts.append(f'<h2 id="curves">Training curve</h2><figure id="fig-curves"><img alt="loss per epoch" '
                     f'src="{data_uri(png)}"></figure>')
    for key, (caption, img) in figures.items():
        parts.append(f'<h2 id="{e(key)}">{e(caption.split(":")[0])}</h2><figure id="fig-{e(key)}"><img '
                     f'alt="{e(caption)}" src="{data_uri(img)}"><figcaption>{e(caption)}</figcaption></figure>')
    parts.append('<h2 id="config">Config</h2><pre>' + e(json.dumps(info.get("config", {}), indent=2)) + "</pre>")
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>vaekit run {e(run.name)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    atomic_write_text(run / "report.html", page)
    return run / "report.html"
