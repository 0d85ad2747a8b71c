"""What ``vaekit tune`` writes into the tune folder: ``trials.csv``, ``best_config.yaml`` and
``tune_report.html`` (Optuna's matplotlib figures embedded). The study and its workers are in :mod:`vaekit.tuning`.
Optuna and matplotlib are imported inside functions."""

from __future__ import annotations

import csv
import html
import io
import json
import warnings
from pathlib import Path
from typing import Any

from ..config import TrainConfig, make_config
from ..runs import atomic_write_text
from .space import SearchSpace
from .job import MAXIMIZED, METRICS, TuneResult, format_params
from .storage import STUDY_ATTR, trial_counts


def results(study, tune_dir: Path, name: str, where: str, metric: str, target: int, space: SearchSpace,
             figures: bool) -> TuneResult:
    """Write ``trials.csv``, ``best_config.yaml`` (if a trial completed) and, if ``figures``,
    ``tune_report.html`` into ``tune_dir``; returns the counts and the best trial of ``study``."""
    from optuna.trial import TrialState

    counts = trial_counts(study)
    res = TuneResult(tune_dir, name, where, metric, counts, target)
    trials = study.get_trials(deepcopy=False)
    _write_trials_csv(trials, tune_dir / "trials.csv", space, metric)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best = (max if metric in MAXIMIZED else min)(complete, key=lambda t: t.value)
        res.best_value, res.best_trial = best.value, best.number
        res.best_params = best.user_attrs.get("settings") or space.decode(best.params)
        run = tune_dir / best.user_attrs.get("run_dir", f"trials/{best.number:04d}")
        res.best_run = run if run.is_dir() else None
        desc = study.user_attrs[STUDY_ATTR]
        cfg = make_config({**desc["settings"], **res.best_params})
        _write_best_config(cfg, tune_dir / "best_config.yaml", name, best.number, metric, best.value)
    if figures:
        atomic_write_text(tune_dir / "tune_report.html", _report_html(study, res, space))
    return res


def _write_trials_csv(trials, path: Path, space: SearchSpace, metric: str) -> None:
    names = [p.name for p in space.params]
    extras = ["epochs", "best_epoch", "pruned_at_epoch", "val_elbo", "val_recon", "val_kl", "val_iwae", "seconds"]
    if metric in MAXIMIZED:  # a recommender search: its ranking numbers instead of the likelihood ones
        extras = ["epochs", "best_epoch", "pruned_at_epoch", "val_ndcg@100", "val_recall@20", "val_recall@50",
                  "seconds"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["trial", "state", "value", *names, *extras, "retry_of", "run_dir", "error"])
    for t in trials:
        settings = t.user_attrs.get("settings") or space.decode(t.params)

        def cell(v: Any) -> str:
            if v is None:
                return ""
            if isinstance(v, list):
                return ",".join(str(x) for x in v)
            return f"{v:.6g}" if isinstance(v, float) else str(v)

        state = t.state.name if not (t.state.name == "FAIL" and "error" not in t.user_attrs) else "INTERRUPTED"
        w.writerow([t.number, state, cell(t.value), *(cell(settings.get(n)) for n in names),
                    *(cell(t.user_attrs.get(k)) for k in extras), cell(t.system_attrs.get("failed_trial")),
                    cell(t.user_attrs.get("run_dir")), cell(t.user_attrs.get("error"))])
    atomic_write_text(path, buf.getvalue())


def _write_best_config(cfg: TrainConfig, path: Path, name: str, number: int, metric: str, value: float) -> None:
    import yaml

    header = (f"# best trial {number} of vaekit tune study '{name}': {metric} = {value:.4f} "
              f"({METRICS.get(metric, 'nats per example')})\n"
              f"# train it again with: vaekit train --config {path} --out RUN\n")
    atomic_write_text(path, header + yaml.safe_dump(cfg.model_dump(), sort_keys=False))


def _figures(study, metric: str = "val_elbo") -> list[tuple[str, str, bytes | None, str]]:
    """(id, caption, PNG or None, why not) for Optuna's matplotlib plots of the study."""
    from optuna.visualization import matplotlib as ovm

    from ..evaluation.report import fig_png, pyplot

    plt = pyplot()
    out = []
    plots = [("history", "optimization history: each trial's value and the best so far", ovm.plot_optimization_history),
             ("intermediate", f"learning curves reported to the pruner (best "
              f"{'validation NDCG@100' if metric in MAXIMIZED else 'validation −ELBO'} so far, per epoch); "
              "pruned trials stop early", ovm.plot_intermediate_values),
             ("importance", "hyperparameter importances (Optuna's default evaluator over completed trials)",
              ovm.plot_param_importances),
             ("parallel", "parallel coordinates: each line a completed trial, coloured by its value",
              ovm.plot_parallel_coordinate)]
    for key, caption, fn in plots:
        try:
            with warnings.catch_warnings(), plt.rc_context():  # Optuna switches the global style to ggplot
                warnings.simplefilter("ignore")
                ax = fn(study)
                fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
                fig.set_size_inches(9, 4.5)
                png = fig_png(fig)
            out.append((key, caption, png, ""))
        except Exception as err:  # noqa: BLE001 - e.g. importances need 2+ completed trials
            plt.close("all")
            out.append((key, caption, None, (str(err).splitlines() or [type(err).__name__])[0]))
    return out


def _report_html(study, res: TuneResult, space: SearchSpace) -> str:
    from optuna.trial import TrialState

    from ..evaluation.report import CSS, data_uri

    e = html.escape
    c = res.counts
    higher = res.metric in MAXIMIZED
    unit = "" if higher else " nats per example"
    parts = [f"<h1>vaekit tune: study {e(res.study)}</h1>",
             f"<p>storage {e(res.storage)} · metric <b>{e(res.metric)}</b> ({e(METRICS[res.metric])}"
             f"{'' if higher else '; lower is better'}) · {c['finished']} of {res.target} trials finished: {c['complete']} complete, "
             f"{c['pruned']} pruned, {c['failed']} failed"
             + (f", {c['interrupted']} interrupted (retried)" if c["interrupted"] else "") + "</p>"]
    if res.best_trial is not None:
        rows = "".join(f"<tr><td>{e(k)}</td><td class=num>{e(format_params({k: v}).split('=', 1)[1])}</td></tr>"
                       for k, v in res.best_params.items())
        run = f"<code>{e(str(res.best_run))}</code>" if res.best_run else "(run on another machine)"
        parts.append(f"<h2 id=best>Best trial</h2><p>trial {res.best_trial}: {e(res.metric)} = "
                     f"<b>{res.best_value:.4f}</b>{unit}; run directory {run}; "
                     f"<code>best_config.yaml</code> retrains it with <code>vaekit train --config</code>.</p>"
                     f"<table><tr><th>hyperparameter</th><th>value</th></tr>{rows}</table>")
    d = space.to_dict()
    lines = [f"{k}: {json.dumps(v)}" for k, v in {**d["params"], **d["fixed"]}.items()]
    parts.append("<h2 id=space>Search space</h2><pre>" + e("\n".join(lines)) + "</pre>")
    for key, caption, png, why in _figures(study, res.metric):
        if png is not None:
            parts.append(f'<h2 id="{key}">{e(caption.split(":")[0].split("(")[0].strip().capitalize())}</h2>'
                         f'<figure id="fig-{key}"><img alt="{e(caption)}" src="{data_uri(png)}">'
                         f"<figcaption>{e(caption)}</figcaption></figure>")
        else:
            parts.append(f"<h2 id=\"{key}\">{e(caption.split(':')[0])}</h2><p>not available: {e(why)}</p>")
    head = ["trial", "state", res.metric, "epochs", "run directory"]
    body = []
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.WAITING,):
            continue
        ep = t.user_attrs.get("epochs", t.user_attrs.get("pruned_at_epoch", ""))
        val = f"{t.value:.4f}" if t.value is not None else e(t.user_attrs.get("error", ""))
        body.append(f"<tr><td class=num>{t.number}</td><td>{t.state.name}</td><td class=num>{val}</td>"
                    f"<td class=num>{ep}</td><td>{e(str(t.user_attrs.get('run_dir', '')))}</td></tr>")
    parts.append("<h2 id=trials>Trials</h2><table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
                 + "".join(body) + "</table><p>All columns, with every hyperparameter: <code>trials.csv</code>.</p>")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>vaekit tune {e(res.study)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
