"""Latent-space optimisation of a molecular property (Gómez-Bombarelli et al. 2018) over a trained seq-vae run.

1. The training split's molecules (at most ``fit_molecules``, drawn with the seed) are scored with RDKit and
   encoded (posterior means); a small MLP head z → property is fitted on 80% of them, its R² measured on the rest.
2. Gradient ascent on z (Adam) from ``starts`` training molecules at once, maximising the head; after each step
   z is projected back into the ball holding 95% of the training codes (the region the decoder was trained on:
   the head's maximum is otherwise far outside it, where the decoder gives no molecules).
3. The codes along each path (every fifth of the steps, and the last) are decoded greedily; the decoded strings
   RDKit parses are scored with the true property. Results: the best decoded molecules, the best training
   molecule, the decoding success rate (valid molecules among the final codes' strings) and the mean property of
   the starts against that of the valid molecules decoded from their final codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import UsageError

OPTIMIZED_PROPERTIES = ("qed", "logp", "penalized-logp")


def rdkit_property_values(name: str, smiles: list[str]) -> list[float]:
    """Property ``name`` (qed, logp, penalized-logp) of each SMILES; NaN where RDKit cannot parse it. Uses
    :mod:`vaekit.molecules.properties` (the MOSES-metrics module) where it is installed, else RDKit directly
    (QED and Crippen logP; penalized logP needs that module's SA score)."""
    if name not in OPTIMIZED_PROPERTIES:
        raise UsageError(f"--property must be one of {', '.join(OPTIMIZED_PROPERTIES)}, got {name!r}")
    try:
        from ..molecules.properties import compute  # type: ignore[import-not-found]
    except ImportError:
        compute = None
    if compute is not None:
        return compute(name, smiles)
    if name == "penalized-logp":
        raise UsageError("--property penalized-logp needs the SA score of vaekit.molecules.properties, which this "
                         "installation lacks; use --property qed or logp")
    try:
        from rdkit import Chem, rdBase
        from rdkit.Chem import QED, Crippen
    except ImportError:
        raise UsageError("vaekit optimize scores molecules with RDKit: pip install 'vaekit[molecules]'") from None
    fn = QED.qed if name == "qed" else Crippen.MolLogP
    out = []
    block = rdBase.BlockLogs()  # one parser message per invalid string otherwise
    for s in smiles:
        mol = Chem.MolFromSmiles(s) if s else None
        out.append(float(fn(mol)) if mol is not None else math.nan)
    del block
    return out


@dataclass
class OptimizeResult:
    """What :func:`optimize_property` found (property values in the property's own units)."""

    property: str
    best: list[tuple[str, float]]  # every distinct valid decoded string, best first
    training_best: tuple[str, float]
    success_rate: float  # valid molecules among the strings decoded from the final codes
    start_mean: float  # mean property of the starting molecules
    end_mean: float  # mean property of the valid molecules decoded from the final codes (NaN: none valid)
    head_r2: float  # the head's R² on held-out training molecules
    novel: list[bool] = field(default_factory=list)  # whether each of ``best`` is a string outside the training split


def _head(latent: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(latent, 64), nn.Tanh(), nn.Linear(64, 1))


def fit_head(z: torch.Tensor, y: torch.Tensor, seed: int = 0, steps: int = 500) -> tuple[nn.Module, float]:
    """(an MLP z → standardized property fitted on 80% of the rows, its R² on the other 20%)."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(z), generator=gen)
    n_fit = max(1, int(round(0.8 * len(z)))) if len(z) > 4 else len(z)
    fit, held = perm[:n_fit], perm[n_fit:]
    head = _head(z.shape[1], seed)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((head(z[fit]).squeeze(1) - y[fit]) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        if len(held) < 2:
            return head, math.nan
        pred = head(z[held]).squeeze(1)
        ss = float(((y[held] - y[held].mean()) ** 2).sum())
        return head, 1.0 - float(((pred - y[held]) ** 2).sum()) / ss if ss > 0 else math.nan


def optimize_property(trained: Any, prop: str = "qed", starts: int = 100, steps: int = 100, lr: float = 0.05,
                      fit_molecules: int = 5000, seed: int = 0) -> OptimizeResult:
    """Gradient ascent of a property head on the latent space of a seq-vae run of molecules (module docstring)."""
    from .sequences import check_sequence_run, decode_latent, encode_rows, vocabulary

    check_sequence_run(trained)
    if not 1 <= starts <= 100_000 or not 1 <= steps <= 100_000:
        raise UsageError(f"--starts and --steps must be between 1 and 100000, got {starts} and {steps}")
    if not 0 < lr <= 10:
        raise UsageError(f"--lr must be in (0, 10], got {lr}")
    with torch.random.fork_rng():  # the caller's global RNG stays as it was
        torch.manual_seed(seed)
        return _optimize(trained, prop, starts, steps, lr, fit_molecules, seed, vocabulary, encode_rows,
                         decode_latent)


def _optimize(trained, prop, starts, steps, lr, fit_molecules, seed, vocabulary, encode_rows, decode_latent):
    x = trained.kind.split(trained.load_data(trained.config.data), trained.config)[0].x
    gen = torch.Generator().manual_seed(seed)
    train_set = _canonical_set(vocabulary(trained).strings(x))  # novelty compares molecules, not spellings
    x = x[torch.randperm(len(x), generator=gen)[:fit_molecules]]
    strings = vocabulary(trained).strings(x)
    values = torch.tensor(rdkit_property_values(prop, strings), dtype=torch.float32)
    ok = torch.isfinite(values)
    if int(ok.sum()) < 5:
        raise UsageError(f"only {int(ok.sum())} of the {len(strings)} training strings scored are molecules RDKit "
                         f"reads; --property {prop} needs a run trained on molecules")
    x, values, strings = x[ok], values[ok], [s for s, k in zip(strings, ok.tolist()) if k]
    z = encode_rows(trained, x)
    mean, std = values.mean(), values.std().clamp(min=1e-6)
    head, r2 = fit_head(z, (values - mean) / std, seed)
    radius = float(torch.quantile(z.norm(dim=1), 0.95))
    first = torch.randperm(len(z), generator=gen)[:starts]
    zs = z[first].clone().requires_grad_(True)
    opt = torch.optim.Adam([zs], lr=lr)
    every = max(1, steps // 5)
    kept = []
    for k in range(1, steps + 1):
        opt.zero_grad()
        (-head(zs).sum()).backward()
        opt.step()
        with torch.no_grad():
            norm = zs.norm(dim=1, keepdim=True)
            zs.mul_(torch.clamp(radius / norm.clamp(min=1e-12), max=1.0))
        if k % every == 0 or k == steps:
            kept.append(zs.detach().clone())
    decoded = decode_latent(trained, torch.cat(kept))
    scores = rdkit_property_values(prop, decoded)
    final = scores[-len(first):]
    valid_final = [v for v in final if math.isfinite(v)]
    ranked = rank_molecules(decoded, scores)
    i_best = int(values.argmax())
    return OptimizeResult(prop, ranked, (strings[i_best], float(values[i_best])),
                          len(valid_final) / len(final), float(values[first].mean()),
                          sum(valid_final) / len(valid_final) if valid_final else math.nan, r2,
                          [_canonical_or_self(s) not in train_set for s, _ in ranked])


def rank_molecules(smiles: list[str], scores: list[float]) -> list[tuple[str, float]]:
    """(SMILES, score) of each distinct molecule that scored, best first: two spellings of one molecule (the
    same canonical SMILES) count once, under the first spelling decoded."""
    best: dict[str, tuple[str, float]] = {}
    for s, v in zip(smiles, scores):
        if math.isfinite(v):
            best.setdefault(_canonical_or_self(s), (s, v))
    return sorted(best.values(), key=lambda sv: -sv[1])


def _canonical_or_self(smiles: str) -> str:
    """RDKit's canonical SMILES of ``smiles`` (the string itself when RDKit cannot read it)."""
    from ..molecules.chem import canonical, quiet_rdkit

    with quiet_rdkit():
        return canonical(smiles) or smiles


def _canonical_set(smiles: list[str]) -> set[str]:
    """Canonical SMILES of the training strings, to tell a novel molecule from a training one spelled anew."""
    from ..molecules.chem import canonical, quiet_rdkit

    with quiet_rdkit():
        return {canonical(s) or s for s in smiles}
