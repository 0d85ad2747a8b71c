"""The model card (``RUN/README.md``) and ``report.html`` of a recommendation run (``mult-vae``, ``mult-dae``,
``recvae``): ranking metrics with their definitions, the users × items data and its split, intended use and
limits, how to load it and recommend. A VAE's card talks of likelihoods, samples and latent codes, which do not
apply here; :func:`vaekit.evaluation.model_card.model_card` hands interactions runs to this module.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..runs import CARD_MARK, CONFIG, EVALUATION, METRICS, RESULTS, WEIGHTS, atomic_write_text

__all__ = ["recommend_card", "write_recommend_report", "METRIC_NAMES"]

#: results.json / evaluation.json keys → how the card and the report name them
METRIC_NAMES = {"ndcg@100": "NDCG@100", "recall@20": "Recall@20", "recall@50": "Recall@50",
                "coverage@20": "coverage@20", "users": "users scored"}
_ABOUT = {
    "mult-vae": "Mult-VAE (Liang et al. 2018): a variational autoencoder with a multinomial likelihood over the "
                "catalogue, input dropout and β annealed up to a cap",
    "mult-dae": "Mult-DAE (Liang et al. 2018): a denoising autoencoder (input dropout, no KL term) with a "
                "multinomial likelihood over the catalogue",
    "recvae": "RecVAE (Shenbin et al. 2020): Mult-VAE with a composite prior, a user-specific β and alternating "
              "encoder/decoder updates"}
_DEFINITIONS = [
    "**NDCG@100**: for each scored user, the sum of 1/log2(r + 1) over the held-out items ranked r ≤ 100 among the "
    "items the user has not seen, divided by the best possible sum (all held-out items first); mean over users.",
    "**Recall@k** (k = 20, 50): held-out items in the top k unseen items, divided by min(k, the user's held-out "
    "items) (Liang et al.'s normalisation, so 1 is reachable); mean over users.",
    "**coverage@20**: the fraction of the catalogue that appears in at least one user's top 20.",
    "Scored users are the held-out (validation or test) users with 5 or more items: 20% of each one's items, "
    "drawn with the run's seed, are hidden and ranked given the other 80% (strong generalization); higher is "
    "better for every metric."]


def _num(v: Any, digits: int = 4) -> str:
    if v is None or isinstance(v, bool):
        return "n/a"
    if isinstance(v, int):
        return str(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "n/a"
    return f"{f:.{digits}f}" if f == f else "n/a"


def _row_cells(name: str, r: dict) -> list[str]:
    return [name] + [_num(r.get(k)) for k in METRIC_NAMES]


def metric_rows(results: dict | None, ev: dict | None) -> list[list[str]]:
    """(where, NDCG@100, Recall@20, Recall@50, coverage@20, users) rows from results.json and evaluation.json."""
    rows = []
    for split in ("validation", "test"):
        r = (results or {}).get(split)
        if isinstance(r, dict):
            rows.append(_row_cells(f"{split} users (`{RESULTS}`)", r))
    if ev and "ndcg@100" in ev:
        rows.append(_row_cells(f"{ev.get('split')} users of `{ev.get('data')}` (`{EVALUATION}`)", ev))
    return rows


def data_facts(info: dict) -> dict[str, Any]:
    """Users, items, interactions, density and the split sizes of the run's data (config.json ``data``)."""
    data, cfg = info.get("data", {}), info.get("config", {})
    users = len(data.get("users") or []) or sum(int(data.get(k) or 0) for k in ("n_train", "n_val", "n_test"))
    items = len(data.get("items") or []) or int((data.get("shape") or [0])[0])
    nnz = data.get("interactions")  # runs written before it was recorded: unknown
    density = nnz / (users * items) if isinstance(nnz, int) and users and items else None
    return {"source": data.get("source"), "users": users, "items": items, "interactions": nnz, "density": density,
            "n_train": data.get("n_train"), "n_val": data.get("n_val"), "n_test": data.get("n_test"),
            "seed": cfg.get("seed"), "min_rating": cfg.get("min_rating"),
            "min_user_items": cfg.get("min_user_items"), "fingerprint": data.get("fingerprint")}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]


def recommend_card(name: str, info: dict, results: dict | None, ev: dict | None) -> str:
    """The Markdown card of a recommendation run named ``name`` with ``config.json`` = ``info``."""
    from .model_card import _config, family_card_safety

    cfg = info.get("config", {})
    fam = cfg.get("family", "mult-vae")
    f = data_facts(info)
    nnz = f"{f['interactions']:,}" if isinstance(f["interactions"], int) else "n/a (not recorded by this version)"
    density = f"{100 * f['density']:.3f}%" if f["density"] is not None else "n/a"
    clicks = (f"rows rated ≥ {f['min_rating']:g} are clicks, the rest dropped" if f["min_rating"] is not None
              else "every row (or stored value > 0) is a click")
    out = [CARD_MARK, "", f"# vaekit run `{name}`", "",
           f"A recommender: {_ABOUT.get(fam, fam)} (family `{fam}`), encoder hidden layers {cfg.get('hidden')}, "
           f"a {cfg.get('latent_dim')}-dimensional latent code. A user's set of items goes in; a probability for "
           "every item of the catalogue comes out, and the top items the user has not seen are the "
           "recommendations.", "",
           f"Trained on `{f['source']}` with vaekit {info.get('vaekit_version', '?')} and PyTorch "
           f"{info.get('torch_version', '?')}; created {info.get('created', '?')}.", "",
           "## Data", "",
           *_table(["", ""], [["source", f"`{f['source']}`"], ["kind", "interactions (implicit feedback)"],
                              ["users × items", f"{f['users']:,} × {f['items']:,}"], ["interactions", nnz],
                              ["density", density], ["clicks", clicks],
                              ["users kept", f"those with ≥ {f['min_user_items'] or 1} item(s)"],
                              ["split (users)", f"{f['n_train']} train · {f['n_val']} validation · {f['n_test']} test"],
                              ["SHA-256 fingerprint", f"`{f['fingerprint']}`"]]), "",
           f"The split is Liang et al.'s strong generalization, seeded (seed {f['seed']}): validation and test users "
           "are held out whole, and for each of them with 5 or more items 20% of the items are scored given the "
           f"other 80%. The user and item ids are stored in `{CONFIG}` (key `data`: `users`, `items`), so "
           "recommendations name real ids.", "",
           *_config(info), "## Metrics", ""]
    rows = metric_rows(results, ev)
    if rows:
        out += [*_table(["users", *METRIC_NAMES.values()], rows), ""]
    else:
        out += [f"No `{RESULTS}` yet (the run has not finished); `vaekit report RUN` writes the metrics.", ""]
    out += [f"- {d}" for d in _DEFINITIONS] + [""]
    if results and "epochs_run" in results:
        best = f", best epoch {results['best_epoch']} by validation NDCG@100" if results.get("best_epoch") else ""
        out += [f"Training ran {results['epochs_run']} epochs{best}"
                f"{' (stopped early)' if results.get('stopped_early') else ''}.", ""]
    out += ["## Intended use and limits", "",
            f"- Ranking the {f['items']:,} items of this catalogue for users with a history over it: users seen in "
            "training and new users alike (the history is folded in; nothing is retrained).",
            "- Items the run never saw are ignored (and counted); new items cannot be recommended until the model "
            "is retrained with them (no cold start for items). A user with no known item gets no recommendations.",
            "- Scores are the model's multinomial probabilities over the catalogue: they rank items, they are not "
            "predicted ratings and not calibrated click probabilities.",
            "- The metrics are offline, on randomly hidden items of held-out users of the same data; they favour "
            "popular items and do not measure what users would do online. Compare with a popularity ranking and "
            "EASE (`bench/recommend.py`) before trusting the model.", ""]
    out += ["## How to use", "", "```python", "import vaekit", "",
            f'model = vaekit.load("{name}")   # config.json (with the id maps) + {WEIGHTS}',
            'recs = model.recommend({"user-1": ["item-a", "item-b"]}, k=20)  # user -> [(item, probability)]',
            f'rec = vaekit.Recommender.load("{name}")   # the scikit-learn face: rec.predict(X, k=20)',
            "```", "", "```sh",
            f"vaekit recommend {name} --data history.csv --k 20 --out recs.csv   # user,item,score,rank",
            f"vaekit evaluate {name}        # NDCG@100, Recall@20/50, coverage on the test users",
            f"vaekit report {name}          # rewrites report.html, evaluation.json and this card",
            "```", "", *family_card_safety()]
    return "\n".join(out)


def _curve_png(metrics: list[dict]) -> bytes | None:
    """Validation NDCG@100 (and the training loss) per epoch."""
    rows = [m for m in metrics if "val_ndcg@100" in m]
    if not rows:
        return None
    from .report import fig_png, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
    ep = [m["epoch"] for m in rows]
    ax[0].plot(ep, [m["val_ndcg@100"] for m in rows], "o-")
    ax[0].set(title="validation NDCG@100 (early stopping watches it)", xlabel="epoch")
    ax[1].plot(ep, [m.get("train_loss") for m in rows], "C1")
    ax[1].set(title="training loss", xlabel="epoch")
    fig.tight_layout()
    return fig_png(fig)


def write_recommend_report(run: Path, info: dict, ev: dict) -> Path:
    """``RUN/report.html`` of a recommendation run: metrics (results.json and ``ev``), their definitions, the
    data, the validation curve and the config; written atomically, returns its path."""
    from ..runs import read_json
    from .report import CSS, data_uri

    results = read_json(run / RESULTS) if (run / RESULTS).is_file() else None
    metrics = [json.loads(s) for s in (run / METRICS).read_text().splitlines() if s.strip()] \
        if (run / METRICS).is_file() else []
    f = data_facts(info)
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in ["users", *METRIC_NAMES.values()])
    body = "".join("<tr>" + "".join(f"<td>{e(c.replace('`', ''))}</td>" for c in row) + "</tr>"
                   for row in metric_rows(results, ev))
    defs = "".join(f"<li>{e(d.replace('**', ''))}</li>" for d in _DEFINITIONS)
    density = f"{100 * f['density']:.3f}%" if f["density"] is not None else "n/a"
    parts = [f"<h1>vaekit run {e(run.name)}</h1>",
             f"<p>{e(info.get('config', {}).get('family', ''))} · data <b>{e(str(f['source']))}</b>: {f['users']} "
             f"users × {f['items']} items, {f['interactions'] if f['interactions'] is not None else 'n/a'} "
             f"interactions (density {density}); users split {f['n_train']} train / {f['n_val']} validation / "
             f"{f['n_test']} test · vaekit {e(str(info.get('vaekit_version')))}</p>",
             f'<h2 id="metrics">Metrics</h2><table><tr>{head}</tr>{body}</table><ul>{defs}</ul>']
    png = _curve_png(metrics)
    if png is not None:
        parts.append(f'<h2 id="curves">Training curves</h2><figure id="fig-curves"><img alt="validation NDCG@100" '
                     f'src="{data_uri(png)}"></figure>')
    parts.append('<h2 id="config">Config</h2><pre>' + e(json.dumps(info.get("config", {}), indent=2)) + "</pre>")
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>vaekit run {e(run.name)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    atomic_write_text(run / "report.html", page)
    return run / "report.html"
