"""Figures of generated molecules for a report: a grid of RDKit drawings and the property distributions
(QED, logP, molecular weight) of generated against training molecules, as PNG bytes (RDKit and matplotlib
imported inside the functions). Not wired into ``report.html`` yet: the seq-vae report calls them."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from ..errors import UsageError
from ..molecules.chem import quiet_rdkit, require, to_mol
from .report import fig_png, pyplot

LABELS = {"qed": "QED", "logp": "logP (Crippen)", "sa": "SA score", "penalized-logp": "penalized logP",
          "weight": "molecular weight (Da)"}


def molecule_grid_png(smiles: Sequence[str], n: int = 24, ncol: int = 6, tile: int = 200,
                      legend_chars: int = 32) -> bytes:
    """The first ``n`` valid molecules of ``smiles`` drawn by RDKit, ``ncol`` per row, each ``tile`` pixels
    square and captioned with its SMILES (cut at ``legend_chars``); invalid strings are skipped."""
    draw = require("rdkit.Chem.Draw")
    with quiet_rdkit():
        picked = [(s, m) for s, m in ((s, to_mol(s)) for s in smiles) if m is not None][:n]
    if not picked:
        raise UsageError("no valid molecule to draw among the strings given")
    legends = [s if len(s) <= legend_chars else s[: legend_chars - 1] + "…" for s, _ in picked]
    image = draw.MolsToGridImage([m for _, m in picked], molsPerRow=min(ncol, len(picked)),
                                 subImgSize=(tile, tile), legends=legends)
    if isinstance(image, bytes):  # IPython-style PNG data in some RDKit builds
        return image
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def property_histograms_png(generated: Sequence[str], training: Sequence[str],
                            names: Sequence[str] = ("qed", "logp", "weight"), bins: int = 40) -> bytes:
    """One panel per property: densities of the valid generated and training molecules on shared bins, with
    the means in the legend."""
    from ..molecules.properties import compute, property_function

    for name in names:
        property_function(name)  # an unknown name: one line, before any work
    plt = pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        sets = [(label, np.array(compute(name, mols), dtype=np.float64)) for label, mols in
                (("training", training), ("generated", generated))]
        sets = [(label, v[np.isfinite(v)]) for label, v in sets]
        both = np.concatenate([v for _, v in sets])
        edges = np.histogram_bin_edges(both, bins=bins) if len(both) else np.linspace(0, 1, bins + 1)
        for (label, v), colour in zip(sets, ("#999999", "#1f77b4")):
            if len(v):
                ax.hist(v, bins=edges, density=True, alpha=0.55, color=colour,
                        label=f"{label} (n={len(v)}, mean {v.mean():.2f})")
        ax.set_xlabel(LABELS.get(name, name))
        ax.set_yticks([])
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig_png(fig)
