"""The MOSES metrics of generated molecules (Polykovskiy et al. 2020), computed as ``moses.metrics`` computes them,
as plain functions over lists of SMILES (RDKit and fcd_torch imported inside the functions).

- ``valid``: the fraction of generated strings RDKit parses and sanitizes (the empty string is invalid).
  Every later metric is computed over the valid ones, as canonical SMILES, duplicates kept.
- ``unique@k``: distinct canonical SMILES among the first k valid ones, divided by how many there are (fewer
  than k valid: over all of them, with a warning, as MOSES does).
- ``Novelty``: the fraction of the distinct valid generated molecules that are not in the training set (both
  sides canonicalised by the same RDKit; MOSES compares with its training file as written).
- ``IntDiv`` / ``IntDiv2``: 1 − mean over pairs (self-pairs included) of the Tanimoto similarity of Morgan
  fingerprints (radius 2, 1024 bits); IntDiv2 = 1 − mean over x of sqrt(mean over y of T(x, y)²).
- ``SNN/Test``: mean over generated molecules of the largest Tanimoto similarity to a reference molecule.
- ``Frag/Test``, ``Scaf/Test``: cosine similarity of the count vectors of BRICS fragments and of Bemis-Murcko
  scaffolds (scaffolds with fewer than 2 rings are left out, as in MOSES; NaN when a side has none).
- ``FCD/Test``: the Fréchet distance between Gaussians fitted to ChemNet's penultimate activations (Preuer et
  al. 2018) of the generated and the reference molecules; ChemNet's weights ship in the fcd_torch wheel and
  are loaded with ``torch.load(weights_only=True)``, so FCD runs offline. CPU cost ≈ 20 ms per molecule.
- ``logP``, ``SA``, ``QED``, ``weight``: 1-D Wasserstein distance between the property's values in the
  generated and the reference sets.
MOSES's ``Filters`` (MCF and PAINS substructure lists shipped in molsets) are not computed.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..molecules.chem import canonical, quiet_rdkit, require, to_mol
from .frechet import frechet_distance

FP_RADIUS, FP_BITS = 2, 1024
MIN_SCAFFOLD_RINGS = 2
UNIQUE_AT = (1000, 10000)
FCD_BATCH = 512


# -- per molecule ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _morgan() -> Any:
    gen = require("rdkit.Chem.rdFingerprintGenerator")
    return gen.GetMorganGenerator(radius=FP_RADIUS, fpSize=FP_BITS)


def fingerprint(smiles_or_mol: Any) -> np.ndarray:
    """Morgan fingerprint (radius 2, 1024 bits) as a uint8 0/1 vector (MOSES's ``fingerprint(fp_type='morgan')``)."""
    return _morgan().GetFingerprintAsNumPy(_valid(smiles_or_mol)).astype(np.uint8)


def fragments(smiles_or_mol: Any) -> list[str]:
    """The BRICS fragments of a molecule as SMILES (with their dummy attachment atoms), one per fragment."""
    chem = require("rdkit.Chem")
    return chem.MolToSmiles(chem.FragmentOnBRICSBonds(_valid(smiles_or_mol))).split(".")


def scaffold(smiles_or_mol: Any, min_rings: int = MIN_SCAFFOLD_RINGS) -> str | None:
    """The Bemis-Murcko scaffold as canonical SMILES; None when it has fewer than ``min_rings`` rings
    (MOSES's default 2 leaves out benzene-only scaffolds) or cannot be computed."""
    chem = require("rdkit.Chem")
    murcko = require("rdkit.Chem.Scaffolds.MurckoScaffold")
    try:
        scaf = murcko.GetScaffoldForMol(_valid(smiles_or_mol))
    except (ValueError, RuntimeError):
        return None
    text = chem.MolToSmiles(scaf)
    if not text or scaf.GetRingInfo().NumRings() < min_rings:
        return None
    return text


def _valid(smiles_or_mol: Any) -> Any:
    mol = to_mol(smiles_or_mol)
    if mol is None:
        raise UsageError(f"not a valid molecule: {smiles_or_mol!r}")
    return mol


def _describe(smiles: str) -> tuple[np.ndarray, list[str], str | None] | None:
    """One parse, three descriptions: fingerprint, BRICS fragments, scaffold (what SNN/IntDiv/Frag/Scaf need);
    None for an invalid molecule."""
    with quiet_rdkit():
        mol = to_mol(smiles)
        return None if mol is None else (fingerprint(mol), fragments(mol), scaffold(mol))


def _map(fn: Callable[[Any], Any], items: Sequence[Any], n_jobs: int) -> list[Any]:
    """``[fn(x) for x in items]``, over ``n_jobs`` worker processes when n_jobs > 1 (``fn`` top-level)."""
    if n_jobs <= 1 or len(items) < 2 * n_jobs:
        return [fn(x) for x in items]
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(n_jobs) as pool:
        return pool.map(fn, items, chunksize=max(1, len(items) // (8 * n_jobs)))


# -- validity, uniqueness, novelty -------------------------------------------------------------------------
def _canonical_quiet(smiles: Any) -> str | None:
    with quiet_rdkit():
        return canonical(smiles)


def canonical_valid(smiles: Sequence[str], n_jobs: int = 1) -> list[str]:
    """The canonical SMILES of the valid strings, in order, duplicates kept (MOSES's ``remove_invalid``)."""
    return [c for c in _map(_canonical_quiet, list(smiles), n_jobs) if c is not None]


def fraction_valid(smiles: Sequence[str], n_jobs: int = 1) -> float:
    """The fraction of strings that are valid molecules (RDKit parses and sanitizes them; '' is invalid)."""
    if not len(smiles):
        raise UsageError("no generated molecules to score; sample some first")
    return len(canonical_valid(smiles, n_jobs)) / len(smiles)


def fraction_unique(valid_canonical: Sequence[str], k: int | None = None) -> float:
    """unique@k: distinct strings among the first ``k`` of ``valid_canonical`` (canonical SMILES of the valid
    molecules), divided by how many were looked at. Fewer than k: all of them, with a warning (as MOSES)."""
    items = list(valid_canonical)
    if k is not None:
        if len(items) < k:
            warnings.warn(f"unique@{k} computed over the {len(items)} valid molecules there are", stacklevel=2)
        items = items[:k]
    return len(set(items)) / len(items) if items else math.nan


def novelty(valid_canonical: Sequence[str], train: Iterable[str], n_jobs: int = 1,
            train_is_canonical: bool = False) -> float:
    """The fraction of the distinct generated molecules not in ``train`` (canonicalised unless
    ``train_is_canonical``; its invalid strings are ignored)."""
    gen = set(valid_canonical)
    if not gen:
        return math.nan
    train_set = set(train) if train_is_canonical else set(canonical_valid(list(train), n_jobs))
    return len(gen - train_set) / len(gen)


# -- similarity --------------------------------------------------------------------------------------------
def _tanimoto_blocks(a: np.ndarray, b: np.ndarray, block: int = 4096) -> Iterable[tuple[slice, np.ndarray]]:
    """(rows of b, Tanimoto(a, b[rows]).T) blocks: inter / (|x| + |y| − inter); two empty prints → 1."""
    fa = np.asarray(a, dtype=np.float32)
    na = fa.sum(1)
    for start in range(0, len(b), block):
        rows = slice(start, start + block)
        fb = np.asarray(b[rows], dtype=np.float32)
        inter = fb @ fa.T
        union = fb.sum(1)[:, None] + na[None, :] - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            sim = np.where(union > 0, inter / np.where(union > 0, union, 1), 1.0)
        yield rows, sim


def tanimoto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The (len(a), len(b)) Tanimoto similarities of two stacks of 0/1 fingerprints."""
    return np.concatenate([s for _, s in _tanimoto_blocks(a, b)], axis=0).T if len(b) else np.zeros((len(a), 0))


def snn(gen_fps: np.ndarray, ref_fps: np.ndarray) -> float:
    """Similarity to the nearest neighbour: mean over generated prints of the largest Tanimoto to a reference."""
    if not len(gen_fps) or not len(ref_fps):
        return math.nan
    best = np.zeros(len(gen_fps))
    for rows, sim in _tanimoto_blocks(ref_fps, gen_fps):
        best[rows] = sim.max(1)
    return float(best.mean())


def internal_diversity(fps: np.ndarray, p: int = 1) -> float:
    """IntDiv_p = 1 − mean over x of (mean over y of T(x, y)^p)^(1/p), all pairs of the set (self-pairs too)."""
    if not len(fps):
        return math.nan
    per = np.zeros(len(fps))
    for rows, sim in _tanimoto_blocks(fps, fps):
        per[rows] = (sim**p).mean(1)
    return float(1.0 - (per ** (1.0 / p)).mean())


def cosine_similarity(counts_a: Counter, counts_b: Counter) -> float:
    """Cosine similarity of two count dictionaries (missing keys count 0); NaN when one is empty (as MOSES)."""
    if not counts_a or not counts_b:
        return math.nan
    keys = sorted(set(counts_a) | set(counts_b))
    va = np.array([counts_a.get(k, 0) for k in keys], dtype=np.float64)
    vb = np.array([counts_b.get(k, 0) for k in keys], dtype=np.float64)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


def _all_valid(smiles: Sequence[str], what: str) -> list[str]:
    """``smiles`` as a list, or a one-line UsageError naming the first entry that is not a valid molecule."""
    smiles = list(smiles)
    with quiet_rdkit():
        bad = next((i for i, s in enumerate(smiles) if to_mol(s) is None), None)
    if bad is not None:
        raise _invalid(what, bad, smiles[bad])
    return smiles


def _invalid(what: str, index: int, smiles: str) -> UsageError:
    return UsageError(f"{what}: entry {index + 1} ({smiles!r}) is not a valid molecule; remove it")


def describe_set(smiles: Sequence[str], n_jobs: int = 1, what: str = "molecules") -> dict[str, Any]:
    """A set's fingerprints (n, 1024), fragment counts and scaffold counts: what SNN, IntDiv, Frag and Scaf
    compare. Precompute a reference set's once and pass it to :func:`molecule_metrics` as ``test``."""
    smiles = list(smiles)
    rows = _map(_describe, smiles, n_jobs)
    bad = next((i for i, r in enumerate(rows) if r is None), None)
    if bad is not None:
        raise _invalid(what, bad, smiles[bad])
    fps = np.stack([r[0] for r in rows]) if rows else np.zeros((0, FP_BITS), dtype=np.uint8)
    frags: Counter = Counter()
    for r in rows:
        frags.update(r[1])
    scafs = Counter(r[2] for r in rows if r[2] is not None)
    return {"smiles": smiles, "fps": fps, "frag": frags, "scaf": scafs}


# -- FCD ---------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _chemnet() -> Any:
    """fcd_torch's ChemNet on the CPU, its weights read with torch.load(weights_only=True)."""
    import torch

    utils = require("fcd_torch.utils")
    path = Path(utils.__file__).with_name("ChemNet_v0.13_pretrained.pt")
    if not path.is_file():
        raise UsageError(f"fcd_torch's ChemNet weights are missing ({path}); reinstall it: pip install fcd_torch")
    return utils.load_imported_model(torch.load(path, map_location="cpu", weights_only=True)).eval()


def chemnet_activations(smiles: Sequence[str], batch_size: int = FCD_BATCH) -> np.ndarray:
    """ChemNet's penultimate activations (n, 512) of valid SMILES, canonicalised and one-hot encoded by
    fcd_torch's own ``SmilesDataset`` (as ``fcd_torch.FCD.get_predictions``)."""
    import torch

    model = _chemnet()
    data = require("fcd_torch.utils").SmilesDataset(list(smiles), canonize=True)
    out = []
    with torch.no_grad(), quiet_rdkit():
        for start in range(0, len(data), batch_size):
            batch = np.stack([data[i] for i in range(start, min(start + batch_size, len(data)))])
            # a copy: ChemNet's output is a view into its LSTM's whole output sequence (≈ 180 MB a batch of
            # 512), which .numpy() alone would keep alive until the end (176k molecules: 60 GB)
            out.append(model(torch.from_numpy(batch).transpose(1, 2).float()).numpy().copy())
    return np.concatenate(out) if out else np.zeros((0, 512))


def fcd_stats(smiles: Sequence[str]) -> dict[str, np.ndarray]:
    """Mean and covariance of ChemNet's activations: a reference set's FCD statistics, computed once."""
    if len(smiles) < 2:
        raise UsageError(f"FCD needs at least 2 molecules on each side ({len(smiles)} given)")
    act = chemnet_activations(_all_valid(smiles, "FCD"))
    return {"mu": act.mean(0), "sigma": np.cov(act.T)}


def fcd(gen: Sequence[str] | dict, ref: Sequence[str] | dict) -> float:
    """Fréchet ChemNet Distance between two sets of valid SMILES (or their :func:`fcd_stats`)."""
    pg = gen if isinstance(gen, dict) else fcd_stats(gen)
    pr = ref if isinstance(ref, dict) else fcd_stats(ref)
    return frechet_distance(pr["mu"], pr["sigma"], pg["mu"], pg["sigma"])


# -- all of them -------------------------------------------------------------------------------------------
def wasserstein_1d(u: Sequence[float], v: Sequence[float]) -> float:
    """The 1-Wasserstein distance between two samples' empirical distributions: ∫ |F_u − F_v| (scipy.stats'
    ``wasserstein_distance``, without importing scipy.stats: seconds of start-up). NaNs are left out."""
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    u, v = np.sort(u[~np.isnan(u)]), np.sort(v[~np.isnan(v)])
    if not len(u) or not len(v):
        return math.nan
    grid = np.sort(np.concatenate([u, v]))
    cdf_u = np.searchsorted(u, grid[:-1], side="right") / len(u)
    cdf_v = np.searchsorted(v, grid[:-1], side="right") / len(v)
    return float(np.sum(np.abs(cdf_u - cdf_v) * np.diff(grid)))


def _property_values(smiles: Sequence[str]) -> dict[str, np.ndarray]:
    """logP, SA, QED and weight of each molecule (MOSES's names); NaN where RDKit cannot score one."""
    from ..molecules.properties import compute

    return {key: np.array(compute(name, smiles)) for key, name in
            (("logP", "logp"), ("SA", "sa"), ("QED", "qed"), ("weight", "weight"))}


def reference_stats(smiles: Sequence[str] | dict, *, fcd: bool = True, properties: bool = True, n_jobs: int = 1,
                    what: str = "the test set") -> dict[str, Any]:
    """Everything :func:`molecule_metrics` compares generated molecules with, for one reference set (SMILES, or
    an earlier result, completed with what it lacks); pass the result as ``test`` to score several generated
    sets against the same reference without recomputing it."""
    stats = dict(smiles) if isinstance(smiles, dict) else describe_set(smiles, n_jobs, what)
    if fcd and "fcd" not in stats:
        stats["fcd"] = fcd_stats(stats["smiles"])
    if properties and "properties" not in stats:
        stats["properties"] = _property_values(stats["smiles"])
    return stats


def molecule_metrics(gen: Sequence[str], train: Iterable[str] | None, test: Sequence[str] | dict, *,
                     fcd: bool = True, n_jobs: int = 1, test_scaffolds: Sequence[str] | dict | None = None,
                     properties: bool = True, k: Sequence[int] = UNIQUE_AT,
                     train_is_canonical: bool = False) -> dict[str, float]:
    """The MOSES metrics of generated SMILES ``gen`` against a reference set ``test`` (SMILES or
    :func:`reference_stats`) and the training SMILES ``train`` (None: no novelty), keyed as MOSES's
    ``get_all_metrics``: valid, unique@1000, unique@10000, FCD/Test, SNN/Test, Frag/Test, Scaf/Test (and the
    /TestSF ones for ``test_scaffolds``), IntDiv, IntDiv2, logP, SA, QED, weight (``properties``), Novelty.
    NaN where a metric has nothing to compare (no valid molecule, no scaffold)."""
    require("rdkit")
    if not len(gen):
        raise UsageError("no generated molecules to score; sample some first")
    valid = canonical_valid(gen, n_jobs)
    out: dict[str, float] = {"valid": len(valid) / len(gen)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unique@10000 over fewer molecules: MOSES's rule, said in the docs
        for kk in k:
            out[f"unique@{kk}"] = fraction_unique(valid, kk)
    refs = {name: reference_stats(r, fcd=fcd, properties=properties and name == "Test", n_jobs=n_jobs,
                                  what=f"the {name} set")
            for name, r in (("Test", test), ("TestSF", test_scaffolds)) if r is not None}
    mine = describe_set(valid, n_jobs) if valid else None
    gen_fcd = fcd_stats(valid) if fcd and len(valid) >= 2 else None
    for name, ref in refs.items():
        if fcd:
            out[f"FCD/{name}"] = (frechet_distance(ref["fcd"]["mu"], ref["fcd"]["sigma"], gen_fcd["mu"],
                                                   gen_fcd["sigma"]) if gen_fcd is not None else math.nan)
        out[f"SNN/{name}"] = snn(mine["fps"], ref["fps"]) if mine else math.nan
        out[f"Frag/{name}"] = cosine_similarity(ref["frag"], mine["frag"]) if mine else math.nan
        out[f"Scaf/{name}"] = cosine_similarity(ref["scaf"], mine["scaf"]) if mine else math.nan
    out["IntDiv"] = internal_diversity(mine["fps"], 1) if mine else math.nan
    out["IntDiv2"] = internal_diversity(mine["fps"], 2) if mine else math.nan
    if properties:
        gen_props = _property_values(valid) if valid else {}
        for key, ref_values in refs["Test"]["properties"].items():
            out[key] = float(wasserstein_1d(ref_values, gen_props[key])) if valid else math.nan
    if train is not None:
        out["Novelty"] = novelty(valid, train, n_jobs, train_is_canonical)
    return out
