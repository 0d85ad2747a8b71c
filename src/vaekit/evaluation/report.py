"""The run report: one self-contained HTML file (figures embedded as PNG data URIs) that opens anywhere.

Sections: warnings, metrics (with the IWAE bound), loss curves, samples, reconstructions, interpolations,
traversals, latent map (and the decoded manifold for 2-D latents), KL per dimension, config.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field

import torch

from ..data.kinds import kind_of
from .figures import grid_png, pairs
from .latent import interpolate, manifold, project_2d, traversal
from ..core.vae import VAE


@dataclass
class ReportInputs:
    info: dict  # the run's config.json
    model: VAE
    x: torch.Tensor  # evaluation examples in model units (the test split)
    y: torch.Tensor | None = None
    c: torch.Tensor | None = None  # condition rows of x, for conditional models
    metrics: list[dict] = field(default_factory=list)
    results: dict | None = None
    evaluation: dict | None = None
    title: str = "vaekit run"
    extra: list[str] = field(default_factory=list)  # HTML sections a kind adds before the config (audio players)


def data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI, so an HTML page embeds its figures in one file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def fig_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (100 dpi, tight bounding box); the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt




def train_val_curve(metrics: list[dict], title: str) -> bytes | None:
    """One panel: training and validation loss per epoch (families whose metrics.jsonl has no recon/KL/β
    columns: series, sequences); None before the first epoch."""
    rows = [m for m in metrics if "train_loss" in m]
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ep = [m["epoch"] for m in rows]
    ax.plot(ep, [m["train_loss"] for m in rows], "o-", label="training")
    if any("val_loss" in m for m in rows):
        ax.plot(ep, [m.get("val_loss") for m in rows], "o-", label="validation (early stopping watches it)")
    ax.set(title=title, xlabel="epoch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig_png(fig)


def loss_curves(metrics: list[dict]) -> bytes:
    """Three panels: train/validation −ELBO; reconstruction and KL; β and learning rate, per epoch
    (semi-supervised M2 runs log other terms: :func:`m2_curves`)."""
    if "train_unlabelled" in metrics[0]:
        return m2_curves(metrics)
    plt = pyplot()
    ep = [m["epoch"] for m in metrics]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.4))
    ax[0].plot(ep, [m["train_loss"] for m in metrics], label="train")
    ax[0].plot(ep, [m["val_loss"] for m in metrics], label="validation")
    ax[0].set(title="−ELBO (nats per example)", xlabel="epoch")
    ax[0].legend()
    ax[1].plot(ep, [m["train_recon"] for m in metrics], label="recon (train)")
    ax[1].plot(ep, [m["val_recon"] for m in metrics], label="recon (validation)")
    k = ax[1].twinx()
    k.plot(ep, [m["train_kl"] for m in metrics], "C2--", label="KL (train)")
    k.plot(ep, [m["val_kl"] for m in metrics], "C3--", label="KL (validation)")
    ax[1].set(title="reconstruction (solid, left) vs KL (dashed, right)", xlabel="epoch")
    ax[1].legend(loc="upper right", fontsize=7)
    k.legend(loc="center right", fontsize=7)
    ax[2].plot(ep, [m["beta"] for m in metrics], "C4", label="β")
    ax[2].set(title="β and learning rate", xlabel="epoch", ylabel="β")
    lr = ax[2].twinx()
    lr.plot(ep, [m["lr"] for m in metrics], "C5--", label="learning rate")
    lr.set_ylabel("learning rate")
    ax[2].legend(loc="upper left", fontsize=7)
    lr.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return fig_png(fig)


def m2_curves(metrics: list[dict]) -> bytes:
    """M2's terms per epoch: the unlabelled bound U (train, validation), the labelled L and the classifier CE."""
    plt = pyplot()
    ep = [m["epoch"] for m in metrics]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.4))
    ax[0].plot(ep, [m["train_unlabelled"] for m in metrics], label="train")
    ax[0].plot(ep, [m["val_unlabelled"] for m in metrics], label="validation")
    ax[0].set(title="unlabelled −bound U(x) (nats per example)", xlabel="epoch")
    ax[0].legend()
    ax[1].plot(ep, [m["train_labelled"] for m in metrics], "C2")
    ax[1].set(title="labelled −bound L(x, y) (train, nats)", xlabel="epoch")
    ax[2].plot(ep, [m["train_ce"] for m in metrics], "C3")
    ax[2].set(title="classifier cross-entropy (train, nats)", xlabel="epoch")
    fig.tight_layout()
    return fig_png(fig)


def kl_bars(kl_per_dim: list[float], activity: list[float] | None = None) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4, 0.35 * len(kl_per_dim) + 2), 3))
    colors = ["C0" if (activity is None or a > 0.01) else "0.7" for a in (activity or kl_per_dim)]
    ax.bar(range(len(kl_per_dim)), kl_per_dim, color=colors)
    ax.set(title="KL per latent dimension (nats; grey = inactive)", xlabel="latent dimension", ylabel="nats")
    fig.tight_layout()
    return fig_png(fig)


def latent_map(mu: torch.Tensor, y: torch.Tensor | None, classes: list[str] | None, method: str = "pca") -> bytes:
    plt = pyplot()
    xy, axis = project_2d(mu, method)
    fig, ax = plt.subplots(figsize=(6, 5))
    if y is not None:
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=y.numpy(), cmap="tab10" if int(y.max()) < 10 else "viridis", s=6)
        n_cls = int(y.max()) + 1
        if n_cls <= 20:
            handles = [plt.Line2D([], [], marker="o", ls="", color=sc.cmap(sc.norm(c)),
                                  label=(classes[c] if classes and c < len(classes) else str(c)))
                       for c in range(n_cls)]
            ax.legend(handles=handles, fontsize=7, loc="best", markerscale=0.8)
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=6)
    ax.set(title=f"latent means ({'the latent itself' if axis == 'z' else axis})",
           xlabel=f"{axis} 1", ylabel=f"{axis} 2")
    fig.tight_layout()
    return fig_png(fig)


@torch.no_grad()
def class_grid(model: VAE, n_classes: int, per_class: int = 8, seed: int = 0) -> tuple[torch.Tensor, int]:
    """Samples of a label-conditional model, one row per class (the same z in every row, so a column
    shows one style under every label): ``[n_classes * per_class, *shape]`` and the row length."""
    z = torch.randn(per_class, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    dev = next(model.parameters()).device
    z = z.repeat(n_classes, 1).to(dev)
    c = torch.nn.functional.one_hot(torch.arange(n_classes).repeat_interleave(per_class), n_classes).float()
    return model.decode(z, c.to(dev)).mean.cpu(), per_class


def _table(rows: list[tuple[str, str, str]]) -> str:
    body = "".join(f"<tr><td>{html.escape(a)}</td><td class=num>{html.escape(b)}</td><td>{html.escape(c)}</td></tr>"
                   for a, b, c in rows)
    return f"<table><tr><th>metric</th><th>value</th><th>unit / estimator</th></tr>{body}</table>"


def _metrics_rows(results: dict | None, ev: dict | None) -> list[tuple[str, str, str]]:
    rows = []
    stored = ev.get("elbo_estimator", "").endswith("results.json") if ev else False
    given = "" if not ev else ev.get("likelihood_of", "p(x)")[3:-1]  # "|y" for p(x|y)
    cond_note = f" given {given[1:]}" if given else ""
    if results:
        est = results.get("estimator", "1-sample ELBO")
        for split in ("train", "validation", "test"):
            r = results.get(split)
            if r:
                rows.append((f"{split} −ELBO{cond_note}", f"{r['elbo']:.3f}",
                             f"nats per example (recon {r['recon']:.2f} + KL {r['kl']:.2f}); {est}"))
    if ev:
        if not (stored and results and results.get(ev.get("split", "test"))):
            rows.append((f"{ev.get('data', '')} {ev.get('split', 'test')} −ELBO{cond_note}".strip(),
                         f"{ev['neg_elbo']:.3f}", "nats per example, 1-sample ELBO"))
        if "neg_iwae" in ev:
            where = f", {ev['iwae_n']} of {ev['n']} examples" if ev.get("iwae_n", ev["n"]) != ev["n"] else ""
            rows.append((f"−log p(x{given}) ≤ −IWAE", f"{ev['neg_iwae']:.3f}",
                         f"nats per example, IWAE k={ev['iwae_k']}{where}"))
        rows.append((f"bits/dim{cond_note}", f"{ev['bits_per_dim']:.4f}", f"from {ev['bound']}, {ev['features']} dims"))
        if "neg_iwae_marginal" in ev:
            rows.append(("−log p(x) ≤ (unconditional)", f"{ev['neg_iwae_marginal']:.3f}",
                         f"nats per example, {ev['marginal_estimator']}"))
            rows.append(("bits/dim (unconditional)", f"{ev['bits_per_dim_marginal']:.4f}", "from the bound above"))
        rows.append(("active units", f"{ev['active_units']} / {ev['latent_dim']}", "Var_x E[z_u|x] > 0.01"))
        rows.append(("reconstruction MSE", f"{ev['mse']:.5f}", "per feature"))
        if "bce" in ev:
            rows.append(("reconstruction BCE", f"{ev['bce']:.3f}", "nats per example"))
        rows.append(("binarized", str(ev.get("binarized", "no")), ""))
        if plan := ev.get("report_plan"):
            rows.append(("report cost", f"{plan['seconds']:.1f} s",
                         f"IWAE k={plan['k']} on {plan['n']} of {plan['total']} examples ({plan['chosen']}); "
                         f"training took {plan['training_seconds']:.1f} s"))
    return rows


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}.warn{background:#fff4d6;border-left:4px solid #e0a800;
padding:.5em 1em;margin:.5em 0}img{max-width:100%;image-rendering:pixelated}figure{margin:.5em 0}
figcaption{font-size:.85em;color:#555}pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.8em}"""


def build_report(inp: ReportInputs) -> str:
    """The HTML text of the report (self-contained): one helper per section, in the order they appear (the
    figures draw from torch's global RNG in this order, seeded once, so the report is reproducible)."""
    info, model = inp.info, inp.model
    is_image = kind_of(info.get("data", {}).get("kind", "array")).pictures
    ev = inp.evaluation or {}
    parts = [_header_section(inp), _warnings_section(ev),
             '<h2 id="metrics">Metrics</h2>' + _table(_metrics_rows(inp.results, ev))]
    if inp.metrics:
        parts.append('<h2 id="curves">Training curves</h2>' + _figure(
            loss_curves(inp.metrics), "loss curves, reconstruction vs KL, β and learning rate", "fig-curves"))
    model.eval()
    torch.manual_seed(0)
    if is_image:
        parts += _image_sections(inp, ev)
    if len(inp.x) >= 3:
        parts.append(_latent_map_section(inp))
    if kl := ev.get("kl_per_dim"):
        parts.append('<h2 id="kl-per-dim">KL per dimension</h2>' + _figure(
            kl_bars(kl, ev.get("activity")), "mean KL(q(z_u|x) || N(0,1)) per dimension", "fig-kl"))
    parts += inp.extra
    parts.append('<h2 id="config">Config</h2><pre>' + html.escape(json.dumps(info.get("config", {}), indent=2))
                 + "</pre>")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(inp.title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def _figure(png: bytes, caption: str, name: str) -> str:
    """A PNG as an inline ``<figure>`` with id ``name`` and an (escaped) caption."""
    return (f'<figure id="{name}"><img alt="{html.escape(caption)}" src="{data_uri(png)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _header_section(inp: ReportInputs) -> str:
    """The title and one line about the data and the versions that trained the run."""
    info = inp.info
    data = info.get("data", {})
    return (f"<h1>{html.escape(inp.title)}</h1><p>data <b>{html.escape(str(data.get('source')))}</b> "
            f"({data.get('kind')}, shape {data.get('shape')}, {data.get('n_train')} train / {data.get('n_val')} "
            f"validation / {data.get('n_test')} test) · vaekit {html.escape(str(info.get('vaekit_version')))} · "
            f"torch {html.escape(str(info.get('torch_version')))} · {html.escape(str(info.get('created')))}</p>")


def _warnings_section(ev: dict) -> str:
    """The evaluation's warnings, one highlighted box each ("none" without any)."""
    warnings = list(ev.get("warnings", []))
    return '<h2 id="warnings">Warnings</h2>' + ("".join(f'<div class="warn">{html.escape(w)}</div>' for w in warnings)
                                               if warnings else "<p>none</p>")


def _image_sections(inp: ReportInputs, ev: dict) -> list[str]:
    """The image-only sections: samples, reconstructions, interpolations, traversals and (2-D latent) the
    decoded manifold."""
    model, x, c = inp.model, inp.x, inp.c
    dev = next(model.parameters()).device
    parts = [_samples_section(inp, dev)]
    n = min(32, len(x))
    if n:
        with torch.no_grad():
            rec = model.reconstruct(x[:n].to(dev), None if c is None else c[0:n].to(dev)).cpu()
        imgs, ncol = pairs(x[:n], rec)
        parts.append('<h2 id="reconstructions">Reconstructions</h2>'
                     + _figure(grid_png(imgs, ncol), "test inputs (odd rows) above their reconstructions (even rows)",
                               "fig-reconstructions"))
    if len(x) >= 2:
        parts.append(_interpolations_section(inp))
    kl = ev.get("kl_per_dim")
    dims = sorted(range(model.latent_dim), key=lambda d: -kl[d])[:10] if kl else list(range(min(10, model.latent_dim)))
    parts.append('<h2 id="traversals">Traversals</h2>'
                 + _figure(grid_png(traversal(model, dims=dims, steps=9, c=None if c is None else c[0]), 9),
                           f"latent dimensions {dims} (by KL, most informative first), each swept over ±3 prior "
                           "standard deviations with the others at 0", "fig-traversals"))
    if model.latent_dim == 2:
        m = manifold(model, 15, c=None if c is None else c[0])
        parts.append('<h2 id="manifold">Decoded manifold</h2>'
                     + _figure(grid_png(m, 15), "decoder means on a 15×15 grid of prior quantiles", "fig-manifold"))
    return parts


def _samples_section(inp: ReportInputs, dev: torch.device) -> str:
    """Samples from the prior: one row per class for a label-conditional run, else up to 64."""
    model, c = inp.model, inp.c
    cond = inp.info.get("condition") or {}
    if cond.get("kind") == "label":
        grid, ncol = class_grid(model, int(cond["dim"]))
        names = ", ".join(cond.get("classes") or [])
        return '<h2 id="samples">Samples by class</h2>' + _figure(
            grid_png(grid, ncol), f"one row per class ({names}); each column shares one z", "fig-samples")
    n_s = 64 if c is None else min(64, len(c))
    samples = model.sample(n_s, generator=torch.Generator().manual_seed(0),
                           c=None if c is None else c[0:n_s].to(dev)).cpu()
    return '<h2 id="samples">Samples</h2>' + _figure(grid_png(samples), f"{n_s} samples (means of p(x|z), z ~ N(0, I))",
                                                      "fig-samples")


def _interpolations_section(inp: ReportInputs) -> str:
    """Linear, then spherical, paths between the posterior means of up to three pairs of test examples."""
    model, x, c = inp.model, inp.x, inp.c
    paths = []
    pairs_idx = [(i, len(x) - 1 - i) for i in range(min(3, len(x) // 2))]
    for method in ("linear", "spherical"):
        for a, b in pairs_idx:
            ca, cb = (None, None) if c is None else (c[a], c[b])
            paths.append(interpolate(model, x[a], x[b], 10, method, ca, cb))
    return ('<h2 id="interpolations">Interpolations</h2>'
            + _figure(grid_png(torch.cat(paths), 10),
                      f"between posterior means of test pairs: {len(pairs_idx)} linear rows, then the same pairs "
                      "spherically", "fig-interpolations"))


def _latent_map_section(inp: ReportInputs) -> str:
    """The posterior means of the test split in 2-D, coloured by label when known."""
    from .metrics import posterior_stats

    mu, _ = posterior_stats(inp.model, inp.x, c=inp.c)
    return ('<h2 id="latent-map">Latent map</h2>'
            + _figure(latent_map(mu, inp.y, inp.info.get("data", {}).get("classes")),
                      "posterior means of the test split, by label" if inp.y is not None
                      else "posterior means of the test split", "fig-latent-map"))
