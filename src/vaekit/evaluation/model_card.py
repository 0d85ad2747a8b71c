"""The model card: ``RUN/README.md``, a plain Markdown page that travels with a run directory into a model store.

Written at the end of ``vaekit train`` (:func:`vaekit.finish.end_of_run`) and rewritten by ``vaekit report``,
from the run's own files only (``config.json``, ``results.json``, ``evaluation.json``), so every number on the
card is one of theirs, with the estimator that produced it. The card's first line is :data:`vaekit.runs.CARD_MARK`:
``--overwrite`` removes a ``README.md`` only when it carries that mark, and a ``README.md`` without it (the
user's own) is never replaced; the card then goes to ``MODEL_CARD.md`` instead.
"""

from __future__ import annotations

import math
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..data.kinds import kind_of
from ..runs import (CARD, CARD_FALLBACK, CARD_FILES, CARD_MARK, CONFIG, EVALUATION, RESULTS, WEIGHTS, atomic_write_text,
                    is_vaekit_card, read_json, regular_file)

__all__ = ["model_card", "write_model_card", "number_text"]

_FAMILIES = {"vae": ("variational autoencoder", ""), "m2": ("semi-supervised M2 variational autoencoder",
                                                           ", Kingma et al. 2014")}
_SHOWN = 20  # classes/columns listed before "and N more"


def number_text(value: Any) -> str:
    """How the card writes a number: 4 decimals for floats (``n/a`` for None/non-finite), integers as they are."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    return f"{float(value):.4f}"


def _cell(text: Any) -> str:
    """A Markdown table cell: ``|`` (as in p(x|z)) would end the cell, so it is escaped."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def _listing(items: list | None) -> str:
    if not items:
        return "—"
    shown = ", ".join(f"`{v}`" for v in items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _family(cfg: dict, info: dict) -> str:
    return cfg.get("family") or ("m2" if cfg.get("semi_supervised") or info.get("semi_supervised") else "vae")


def _conditioned_on(info: dict) -> str | None:
    """What the model is conditional on, in words (None: unconditional)."""
    cond = info.get("condition")
    if not cond:
        return None
    if cond.get("kind") == "label":
        return f"the label y ({cond.get('dim')} classes: {_listing(cond.get('classes'))})"
    return f"the attribute columns c = {_listing(cond.get('columns'))} (standardized)"


def _summary(name: str, info: dict) -> list[str]:
    cfg, data = info["config"], info.get("data", {})
    fam = _family(cfg, info)
    net = "convolutional" if cfg.get("model") == "conv" else "MLP"
    width = f"channels {cfg.get('channels')}" if cfg.get("model") == "conv" and cfg.get("channels") else \
        f"hidden layers {cfg.get('hidden')}"
    article = "an" if net == "MLP" else "a"
    kind, cite = _FAMILIES.get(fam, (fam, ""))
    what = (f"A {kind} (family `{fam}`{cite}) with {article} {net} encoder and decoder ({width}), a "
            f"{cfg.get('latent_dim')}-dimensional Gaussian latent z with prior N(0, I), and a "
            f"{cfg.get('likelihood')} likelihood p(x|z)")
    cond = _conditioned_on(info)
    what += f", conditional on {cond}." if cond else "."
    if info.get("semi_supervised"):
        ss = info["semi_supervised"]
        what += (f" It was trained with {ss.get('labeled')} labelled training examples (alpha = {ss.get('alpha')}) "
                 "and has a classifier q(y|x).")
    return [CARD_MARK, "", f"# vaekit run `{name}`", "", what, "",
            f"Trained on `{data.get('source')}` with vaekit {info.get('vaekit_version', '?')} and PyTorch "
            f"{info.get('torch_version', '?')}; created {info.get('created', '?')}.", ""]


def _data(info: dict) -> list[str]:
    data = info.get("data", {})
    shape = data.get("shape") or []
    features = math.prod(int(s) for s in shape) if shape else None
    rows = [("source", f"`{data.get('source')}`"), ("kind", str(data.get("kind"))),
            ("shape of one example", " × ".join(str(s) for s in shape) + f" ({features} features)"),
            ("examples", f"{data.get('n_train')} train · {data.get('n_val')} validation · {data.get('n_test')} test")]
    if data.get("classes"):
        rows.append(("classes", _listing(data["classes"])))
    if data.get("columns"):
        rows.append(("columns (model features)", _listing(data["columns"])))
    rows.append(("SHA-256 fingerprint", f"`{data.get('fingerprint')}`"))
    out = ["## Data", "", *_table(("", ""), rows), ""]
    out += ["The fingerprint is the SHA-256 of the data as loaded (values and labels); `vaekit train --resume` "
            "refuses data with another fingerprint.", ""]
    return out


def _config(info: dict) -> list[str]:
    cfg = info["config"]
    defaults = {name: f.get_default(call_default_factory=True) for name, f in TrainConfig.model_fields.items()}
    changed = [(k, v) for k, v in cfg.items() if k in defaults and v != defaults[k]]
    out = ["## Configuration", "", "Settings that differ from vaekit's defaults (all of them: `config.json`, "
           "key `config`; train the same model with `vaekit train --config` on that object):", ""]
    if changed:
        out += _table(("setting", "value", "default"), [(f"`{k}`", f"`{v}`", f"`{defaults[k]}`") for k, v in changed])
    else:
        out.append("(none: every setting is the default)")
    return out + [""]


def _metric_rows(results: dict | None, ev: dict | None) -> list[tuple[str, str, str]]:
    """(quantity, value, estimator) rows of the metrics table."""
    rows: list[tuple[str, str, str]] = []
    if ev:
        given = ev.get("likelihood_of", "p(x)")[1:]  # "(x)", "(x|y)" or "(x|c)"
        c = given[3:-1]  # "", "y" or "c"
        est = ev.get("elbo_estimator", "ELBO (1 posterior sample)")
        rows += [(f"−ELBO of p{given}", number_text(ev.get("neg_elbo")), f"{est}; upper bound on −log p{given}"),
                 (f"reconstruction −log p(x|z{',' + c if c else ''})", number_text(ev.get("recon_nll")),
                  "the same posterior sample"),
                 (f"KL(q(z|x{',' + c if c else ''}) ‖ p(z))", number_text(ev.get("kl")), "closed form (Gaussians)")]
        if "neg_iwae" in ev:
            rows.append((f"−log p{given} ≤ −IWAE", number_text(ev["neg_iwae"]), f"IWAE, k = {ev.get('iwae_k')} "
                         f"importance samples, {ev.get('iwae_n')} of {ev.get('n')} examples"))
        if "neg_iwae_marginal" in ev:
            rows.append(("−log p(x) ≤ (unconditional)", number_text(ev["neg_iwae_marginal"]),
                         str(ev.get("marginal_estimator", ""))))
        rows.append(("bits/dim", number_text(ev.get("bits_per_dim")),
                     f"best bound ({ev.get('bound', 'ELBO')}) / ({ev.get('features')} features × ln 2)"))
        if "bits_per_dim_marginal" in ev:
            rows.append(("bits/dim (unconditional)", number_text(ev["bits_per_dim_marginal"]),
                         "the unconditional bound"))
        rows.append(("active units", f"{ev.get('active_units')} of {ev.get('latent_dim')}",
                     "latent dimensions u with Var_x E[z_u|x] > 0.01 (Burda et al. 2015)"))
        if "mse" in ev:
            rows.append(("reconstruction MSE per feature", number_text(ev["mse"]), "posterior-mean reconstruction"))
    if results:
        for key, name in (("test_accuracy", "test accuracy"), ("validation_accuracy", "validation accuracy")):
            if key in results:
                rows.append((name, number_text(results[key]), "classifier q(y|x), argmax, labelled examples"))
    return rows


def _metrics(results: dict | None, ev: dict | None) -> list[str]:
    out = ["## Metrics", ""]
    if results is None and ev is None:
        return out + ["No `results.json` or `evaluation.json` yet (the run has not finished); "
                      "`vaekit report RUN` writes them.", ""]
    if ev:
        split = ev.get("split", "test")
        src = ev.get("data", "?")
        of = ev.get("likelihood_of", "p(x)")
        given = f" given the true {'label' if of == 'p(x|y)' else 'condition'}" if "|" in of else ""
        out += [f"On the {split} split of `{src}` ({ev.get('n')} examples), from `{EVALUATION}`: bounds on the "
                f"likelihood {of}{given}, {ev.get('units', 'nats per example')}, lower is better (bits/dim and "
                "active units aside).", ""]
    else:
        out += [f"No `{EVALUATION}` (the run ended without its report); `vaekit report RUN` adds the IWAE bound, "
                "bits/dim and active units.", ""]
    rows = _metric_rows(results, ev)
    if rows:
        out += [*_table(("quantity", "value", "estimator"), rows), ""]
    if results:
        splits = [(s, results[s]) for s in ("train", "validation", "test") if isinstance(results.get(s), dict)]
        if splits:
            out += [f"From `{RESULTS}` ({results.get('estimator', 'ELBO (1 posterior sample)')}, "
                    f"{results.get('units', 'nats per example')}):", "",
                    *_table(("split", "−ELBO", "reconstruction", "KL"),
                            [(s, number_text(r.get("elbo")), number_text(r.get("recon")), number_text(r.get("kl")))
                             for s, r in splits]), ""]
            if results.get("note"):
                out += [f"Note ({RESULTS}): {results['note']}.", ""]
        if "epochs_run" in results:
            best = f", best epoch {results['best_epoch']}" if results.get("best_epoch") is not None else ""
            early = " (stopped early)" if results.get("stopped_early") else ""
            out += [f"Training ran {results['epochs_run']} epochs{best}{early}.", ""]
    return out


def _limits(info: dict, results: dict | None, ev: dict | None) -> list[str]:
    cfg, data = info["config"], info.get("data", {})
    out = ["## Intended use and limits", "",
           f"- A generative model and density estimate of data like `{data.get('source')}` ({data.get('kind')}, "
           f"{data.get('n_train')} training examples): sampling, reconstruction, latent codes, anomaly scores. "
           "Its numbers say nothing about data unlike its training data; check a new source with "
           "`vaekit evaluate RUN --data NEW` before trusting them."]
    if info.get("scaler"):
        out.append("- Likelihoods are in model units: densities of the **standardized columns** (each column minus its "
                   "training mean, divided by its training standard deviation; both in `config.json`, key `scaler`). "
                   "In the data's own units, −log p(x) is the card's number plus Σ_j log σ_j.")
    else:
        out.append("- Likelihoods are in model units: the model's inputs as vaekit prepared them "
                   + ("(pixel values scaled to [0, 1])." if kind_of(data.get("kind", "array")).pictures
                      else "(the values as given)."))
    if info.get("condition"):
        separately = " (the unconditional bound is listed separately)" if ev and "neg_iwae_marginal" in ev else ""
        out.append("- The bounds are conditional, of p(x|y) or p(x|c) given the true condition; they are not "
                   f"comparable with unconditional models' −log p(x){separately}.")
    if cfg.get("missing") == "mask":
        out.append("- Trained with `--missing mask`: every likelihood is of the observed cells only.")
    if cfg.get("binarize", "none") != "none":
        out.append(f"- Trained on binarized data (`binarize: {cfg['binarize']}`); evaluated on a fixed binarization.")
    warnings = (ev or {}).get("warnings") or []
    for w in warnings:
        out.append(f"- **Warning:** {w}.")
    if ev is not None and not warnings:
        out.append(f"- `{EVALUATION}` carries no warning (no posterior collapse detected, and no Bernoulli "
                   "likelihood on continuous values).")
    return out + [""]


def _usage(name: str, info: dict) -> list[str]:
    kind = kind_of(info.get("data", {}).get("kind", "array"))
    out_file = "samples.png" if kind.pictures else ("samples.csv" if kind.cells else "samples.npy")
    cond = info.get("condition") or {}
    if cond.get("kind") == "label":
        first = str((cond.get("classes") or ["0"])[0])
        flag, py_c = f" --label {shlex.quote(first)}", f"model.conditioning.labels([{first!r}])"
    elif cond:
        columns = [str(c) for c in cond.get("columns") or []]
        flag = " --attributes " + shlex.quote(",".join(f"{c}=0" for c in columns))
        py_c = "model.conditioning.attributes({" + ", ".join(f"{c!r}: 0.0" for c in columns) + "})"
    else:
        flag = py_c = ""
    out = ["## How to use", "", "```python", "import vaekit", "",
           f'model = vaekit.load("{name}")          # config.json + {WEIGHTS}, checked before loading',
           *([f"c = {py_c}  # the condition"] if py_c else []),
           f"x = model.sample(16, seed=0{', c=c' if py_c else ''})",
           f"z = model.encode(x{', c=c' if py_c else ''})  # posterior means",
           "```", "", "```sh",
           f"vaekit sample {name} -n 16{flag} --out {out_file}",
           f"vaekit evaluate {name} --iwae-k 100",
           f"vaekit report {name}                  # rewrites report.html, evaluation.json and this card",
           "```", "",
           "## Safety", "",
           f"The weights are `{WEIGHTS}` (safetensors: tensors only, no code); every other file is JSON, PNG or this "
           "Markdown. vaekit never unpickles a file: a pickle (`torch.save` output, `.pt`/`.pth`/`.pkl`) in place of "
           "the weights is refused with a one-line error naming why, and other files in the folder are ignored.", "",
           *card_written_by()]
    return out


def card_written_by() -> list[str]:
    """The last lines of every card (VAE, recommender, series, sequence): which files it was written from and how
    to keep one's own notes instead."""
    return [f"_This card was written by vaekit from `{CONFIG}`, `{RESULTS}` and `{EVALUATION}`; `vaekit report` "
            "rewrites it. To keep your own notes, delete its first line (then vaekit neither replaces nor removes "
            f"the file, and writes its card to `{CARD_FALLBACK}`)._", ""]


def family_card_safety() -> list[str]:
    """The Safety section of the cards of runs without a VAE's PNG figures (recommender, series, sequence runs),
    followed by :func:`card_written_by`."""
    return ["## Safety", "",
            f"The weights are `{WEIGHTS}` (safetensors: tensors only, no code); every other file is JSON, HTML or "
            "this Markdown. vaekit never unpickles a file.", "", *card_written_by()]


def _optional_json(path: Path) -> dict | None:
    try:
        obj = read_json(path) if regular_file(path) else None
    except ValueError:  # damaged: the card says the file is missing rather than failing the run
        return None
    return obj if isinstance(obj, dict) else None


def model_card(run_dir: str | os.PathLike, info: dict) -> str:
    """The card's Markdown for the run in ``run_dir`` with ``config.json`` = ``info``; metrics are read from its
    ``results.json`` and ``evaluation.json`` (either may be missing)."""
    run = Path(run_dir)
    results, ev = _optional_json(run / RESULTS), _optional_json(run / EVALUATION)
    name = run.name or str(run)
    if info.get("data", {}).get("kind") == "interactions":  # a recommender: ranking metrics, not likelihoods
        from .recommend_card import recommend_card

        return recommend_card(name, info, results, ev)
    if info.get("data", {}).get("kind") == "sequences":  # strings: −ELBO per string, MOSES metrics
        from .sequence_card import sequence_card

        return sequence_card(name, info, results, ev)
    if "series" in info:  # a time series: forecast metrics or −ELBO per window, periods instead of splits
        from .series_card import series_card

        return series_card(name, info, results, ev)
    lines = [*_summary(name, info), *_data(info), *_config(info), *_metrics(results, ev), *_limits(info, results, ev),
             *_usage(name, info)]
    return "\n".join(lines)


def write_model_card(run_dir: str | os.PathLike, info: dict) -> Path | None:
    """Write the card atomically into ``run_dir`` (call it with the run's lock held) and return its path:
    ``README.md``, or ``MODEL_CARD.md`` when a ``README.md`` that vaekit did not write is there (a file without
    :data:`~vaekit.runs.CARD_MARK` is never replaced). None, with a note on stderr, when both are the user's."""
    run = Path(run_dir)
    for name in CARD_FILES:
        target = run / name
        if not os.path.lexists(target) or is_vaekit_card(target):
            atomic_write_text(target, model_card(run, info))
            if name == CARD and is_vaekit_card(run / CARD_FALLBACK):  # an older card of ours, now stale
                (run / CARD_FALLBACK).unlink(missing_ok=True)
            return target
    print(f"note: no model card written: {run / CARD} and {run / CARD_FALLBACK} are not vaekit's (kept as they are)",
          file=sys.stderr, flush=True)
    return None
