"""The model card (``RUN/README.md``) and ``report.html`` of a seq-vae run (strings; molecules as SMILES or
SELFIES): the data (tokenizer, vocabulary, maximum length, split), the metrics with their definitions (−ELBO per
string, exact reconstructions, the MOSES metrics of samples for molecules), intended use and limits (a posterior
collapse warning when the KL is near 0), how to load and sample. A VAE's card talks of examples and bits per
dimension, which do not apply here; :func:`vaekit.evaluation.model_card.model_card` hands seq-vae runs to this
module. Pictures come in as PNG bytes (made by :mod:`vaekit.sequence_report`), so this module needs neither torch
nor the model.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from ..runs import CARD_MARK, CONFIG, EVALUATION, METRICS, RESULTS, WEIGHTS, atomic_write_text

__all__ = ["sequence_card", "write_sequence_report", "collapsed", "COLLAPSE_KL"]

#: KL (nats per string) under which the card and the report warn of posterior collapse
COLLAPSE_KL = 0.5
_ELBO_DEFS = [
    "**−ELBO**: the negative evidence lower bound per string (nats; one seeded draw of z) = **recon** (−log p of "
    "every token up to and including `<eos>` given z, padding excluded) + **KL** (of q(z | string) from N(0, I)); "
    "lower is better.",
    "**exact reconstruction**: the fraction of (up to 1000) strings that greedy decoding of their posterior mean "
    "gives back character for character."]


def _num(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def collapsed(results: dict | None, ev: dict | None) -> float | None:
    """The KL per string (evaluation, else the test split of results) when it is under :data:`COLLAPSE_KL`."""
    kl = (ev or {}).get("kl", ((results or {}).get("test") or {}).get("kl"))
    return kl if isinstance(kl, (int, float)) and kl < COLLAPSE_KL else None


def data_facts(info: dict) -> list[list[str]]:
    """(fact, value) rows of the run's strings: source, tokenizer, vocabulary, maximum length, split."""
    d, cfg = info.get("data", {}), info.get("config", {})
    vocab = d.get("vocab") or []
    n = d.get("n") or d.get("examples")
    return [["source", f"`{d.get('source')}`"],
            ["tokenizer", f"`{d.get('tokenizer')}`"
             + (" (decoded strings are SMILES)" if d.get("tokenizer") == "selfies" else "")],
            ["vocabulary", f"{len(vocab)} tokens (with `<pad>`, `<bos>`, `<eos>`, `<unk>`)"],
            ["maximum length", f"{d.get('max_length')} tokens, `<bos>` and `<eos>` included"],
            ["split", f"random, seeded ({cfg.get('seed', 0)}): validation {cfg.get('val_fraction', 0.1)}, test "
                      f"{cfg.get('test_fraction', 0.1)}, the rest trains" + (f"; {n} strings" if n else "")]]


def metric_rows(results: dict | None, ev: dict | None) -> list[list[str]]:
    """(metric, where, value) rows from results.json and evaluation.json."""
    rows = []
    for name in ("validation", "test"):
        r = (results or {}).get(name) or {}
        for key, label in (("elbo", "−ELBO"), ("recon", "recon"), ("kl", "KL")):
            if key in r:
                rows.append([label, f"{name} (results.json)", _num(r[key])])
        if "reconstructed_exactly" in r:
            rows.append(["exact reconstruction", f"{name} (results.json)", _num(r["reconstructed_exactly"])])
    if ev and "elbo" in ev:
        where = f"{ev.get('split')} ({EVALUATION})"
        rows += [["−ELBO", where, _num(ev["elbo"])], ["KL", where, _num(ev.get("kl"))]]
        if "reconstructed_exactly" in ev:
            rows.append(["exact reconstruction", where, _num(ev["reconstructed_exactly"])])
    mol = (ev or {}).get("molecules")
    if mol:
        where = f"{mol['samples']} samples, temperature {mol['temperature']:g}"
        rows += [[k, where, _num(v)] for k, v in mol["metrics"].items()]
    return rows


def _molecule_defs(ev: dict | None) -> list[str]:
    mol = (ev or {}).get("molecules")
    if not mol:
        return []
    return [f"MOSES metrics (Polykovskiy et al. 2020) of strings sampled from the prior, against the "
            f"{mol['reference']}:"] + \
        [f"  - **{k}**: {d}" for k, d in mol.get("definitions", {}).items()]


def sequence_card(name: str, info: dict, results: dict | None, ev: dict | None) -> str:
    """The Markdown card of a seq-vae run named ``name`` with ``config.json`` = ``info``."""
    from .model_card import _config, family_card_safety

    cfg, d = info.get("config", {}), info.get("data", {})
    tok = d.get("tokenizer", "smiles")
    molecules = tok in ("smiles", "selfies")
    hidden = cfg.get("hidden") or ["?", "?"]
    out = [CARD_MARK, "", f"# vaekit run `{name}`", "",
           f"A VAE of strings ({'molecules as ' + tok.upper() if molecules else 'text, one token per character'}; "
           f"family `seq-vae`): a bidirectional GRU encoder of {hidden[0]} units, an autoregressive GRU decoder of "
           f"{hidden[-1]} units × {cfg.get('decoder_layers', '?')}, a {cfg.get('latent_dim')}-dimensional latent "
           "code.", "",
           f"Trained on `{d.get('source')}` with vaekit {info.get('vaekit_version', '?')} and PyTorch "
           f"{info.get('torch_version', '?')}; created {info.get('created', '?')}.", "",
           "## Data", "", *_table(["", ""], data_facts(info)), "",
           f"The vocabulary, tokenizer and maximum length are in `{CONFIG}` (key `data`); a reloaded run encodes with "
           "them, and a string with a token outside the vocabulary is refused by name.", "",
           *_config(info), "## Metrics", ""]
    rows = metric_rows(results, ev)
    out += [*_table(["metric", "where", "value"], rows), ""] if rows else \
        [f"No `{RESULTS}` yet (the run has not finished); `vaekit report RUN` writes the metrics.", ""]
    out += [f"- {x}" for x in _ELBO_DEFS] + [f"- {x}" if not x.startswith("  ") else x for x in _molecule_defs(ev)]
    out += [""]
    if results and "epochs_run" in results:
        out += [f"Training ran {results['epochs_run']} epochs, best epoch {results.get('best_epoch')} by the "
                f"validation −ELBO{' (stopped early)' if results.get('stopped_early') else ''}.", ""]
    out += ["## Intended use and limits", ""]
    kl = collapsed(results, ev)
    if kl is not None:
        out += [f"- **Warning: posterior collapse.** The KL is {kl:.3g} nats per string: the decoder ignores z, so "
                "samples do not depend on the latent code and encode / interpolate / optimize are meaningless. "
                "Retrain with `--kl-warmup`, `--free-bits` or `--word-dropout` (Bowman et al. 2016)."]
    if molecules:
        out += ["- Generating new molecules like the training set, encoding molecules to latent codes, and "
                "searching the latent space for better properties (`vaekit optimize`).",
                "- Validity is a metric, not a guarantee (SMILES runs); a SELFIES run always decodes to a molecule, "
                "so judge it by novelty, SNN, scaffold similarity and FCD against the test set, not validity.",
                "- The model knows the chemistry of its training set only; its molecules are proposals, not "
                "checked for synthesis, safety or activity."]
    else:
        out += ["- Generating and encoding strings like the training set; nothing here checks what they mean."]
    out += ["- Strings longer than the maximum length or with unknown tokens cannot be encoded.", ""]
    out += ["## How to use", "", "```python", "import vaekit", "",
            f'model = vaekit.load("{name}")   # config.json + {WEIGHTS}',
            "strings = model.sample_strings(100, temperature=1.0, seed=0)",
            'z = model.encode_strings(["CCO", "c1ccccc1"])   # posterior means [N, latent]' if molecules
            else 'z = model.encode_strings(["abc"])   # posterior means [N, latent]',
            "back = model.decode_latent(z)   # greedy", "```", "", "```sh",
            f"vaekit sample {name} -n 1000 --out samples.smi [--temperature 0.7]",
            f"vaekit evaluate {name} [--samples 1000] [--fcd]   # the metrics above",
            f"vaekit report {name}          # rewrites report.html, {EVALUATION} and this card", "```", "",
            *family_card_safety()]
    return "\n".join(out)


def _curve_png(metrics: list[dict]) -> bytes | None:
    """Training and validation −ELBO per string per epoch."""
    from .report import train_val_curve

    return train_val_curve(metrics, "−ELBO per string (nats)")


def write_sequence_report(run: Path, info: dict, ev: dict | None, figures: dict[str, tuple[str, bytes]],
                          texts: dict[str, tuple[str, list[str]]], notes: list[str] | None = None) -> Path:
    """``RUN/report.html`` of a seq-vae run: metrics (results.json and ``ev``) and their definitions, the data,
    the training curve, ``figures`` (id → (caption, PNG)), ``texts`` (id → (caption, strings): samples,
    interpolation paths), ``notes`` and the config; written atomically, returns its path."""
    from ..runs import read_json
    from .report import CSS, data_uri
    results = read_json(run / RESULTS) if (run / RESULTS).is_file() else None
    metrics = [json.loads(t) for t in (run / METRICS).read_text().splitlines() if t.strip()] \
        if (run / METRICS).is_file() else []
    e = html.escape
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in metric_rows(results, ev))
    defs = "".join(f"<li>{e(x.strip().lstrip('- ').replace('**', '').replace('`', ''))}</li>"
                   for x in _ELBO_DEFS + _molecule_defs(ev))
    facts = "".join(f"<tr><th>{e(k)}</th><td>{e(v.replace('`', ''))}</td></tr>" for k, v in data_facts(info))
    parts = [f"<h1>vaekit run {e(run.name)}</h1>",
             f"<p>seq-vae · vaekit {e(str(info.get('vaekit_version')))}</p>"]
    kl = collapsed(results, ev)
    if kl is not None:
        parts.append(f'<p class="warn">Posterior collapse: KL {kl:.3g} nats per string; the decoder ignores z. '
                     "Retrain with --kl-warmup, --free-bits or --word-dropout.</p>")
    parts += [f"<p class=warn>{e(n)}</p>" for n in notes or []]
    parts += [f'<h2 id="metrics">Metrics</h2><table><tr><th>metric</th><th>where</th><th>value</th></tr>{body}'
              f"</table><ul>{defs}</ul>", f'<h2 id="data">Data</h2><table>{facts}</table>']
    png = _curve_png(metrics)
    if png is not None:
        parts.append(f'<h2 id="curves">Training curve</h2><figure id="fig-curves"><img alt="loss per epoch" '
                     f'src="{data_uri(png)}"><figcaption>−ELBO per string (nats)</figcaption></figure>')
    for key, (caption, img) in figures.items():
        parts.append(f'<h2 id="{e(key)}">{e(caption.split(":")[0])}</h2><figure id="fig-{e(key)}"><img '
                     f'alt="{e(caption)}" src="{data_uri(img)}"><figcaption>{e(caption)}</figcaption></figure>')
    for key, (caption, strings) in texts.items():
        parts.append(f'<h2 id="{e(key)}">{e(caption)}</h2><pre>' + e("\n".join(strings)) + "</pre>")
    parts.append('<h2 id="config">Config</h2><pre>' + e(json.dumps(info.get("config", {}), indent=2)) + "</pre>")
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>vaekit run {e(run.name)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    atomic_write_text(run / "report.html", page)
    return run / "report.html"
