"""Molecular properties of SMILES strings: QED, Crippen logP, synthetic accessibility (SA), penalized logP and
molecular weight (RDKit; imported inside the functions).

Penalized logP is Gómez-Bombarelli et al.'s (2018) objective as JT-VAE's molecule optimisation computes it,
without normalisation: logP − SA − max(0, largest ring size − 6), rings from RDKit's ring perception.

SA is Ertl & Schuffenhauer's score in RDKit's own ``Contrib/SA_Score/sascorer.py``. Its fragment contributions
ship with RDKit as ``fpscores.pkl.gz``, a pickle; vaekit never unpickles, so that file is read with an unpickler
that refuses every global (it holds only lists of ints and floats) and handed to ``sascorer`` as its table.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import io
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .chem import quiet_rdkit, require, to_mol

PROPERTIES = ("qed", "logp", "sa", "penalized-logp", "weight")


class _PlainDataUnpickler(pickle.Unpickler):
    """Loads lists, ints, floats and strings; refuses any class or function (so no code can run)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing {module}.{name}: only plain data may be loaded")


@functools.lru_cache(maxsize=1)
def _sascorer() -> Any:
    """RDKit's sascorer module, its fragment-score table loaded safely (see the module docstring)."""
    rdconfig = require("rdkit.RDConfig")
    folder = Path(rdconfig.RDContribDir) / "SA_Score"
    source, table = folder / "sascorer.py", folder / "fpscores.pkl.gz"
    if not source.is_file() or not table.is_file():
        raise UsageError(f"RDKit's SA score files are missing from {folder} (an RDKit build without Contrib); "
                         "reinstall RDKit from PyPI: pip install 'vaekit[molecules]'")
    spec = importlib.util.spec_from_file_location("vaekit_rdkit_sascorer", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = _PlainDataUnpickler(io.BytesIO(gzip.decompress(table.read_bytes()))).load()
    module._fscores = {bit: float(row[0]) for row in data for bit in row[1:]}
    return module


def _mol(smiles_or_mol: Any) -> Any:
    mol = to_mol(smiles_or_mol)
    if mol is None:
        raise UsageError(f"not a valid molecule: {smiles_or_mol!r}; give a SMILES string RDKit can parse")
    return mol


def qed(smiles_or_mol: Any) -> float:
    """Quantitative estimate of drug-likeness (Bickerton et al. 2012), in [0, 1]; RDKit's ``QED.qed``."""
    return float(require("rdkit.Chem.QED").qed(_mol(smiles_or_mol)))


def logp(smiles_or_mol: Any) -> float:
    """Octanol-water partition coefficient, Wildman-Crippen estimate (RDKit's ``Crippen.MolLogP``)."""
    return float(require("rdkit.Chem.Crippen").MolLogP(_mol(smiles_or_mol)))


def sa(smiles_or_mol: Any) -> float:
    """Synthetic accessibility score (Ertl & Schuffenhauer 2009): 1 (easy) to 10 (hard); NaN for no atoms."""
    score = _sascorer().calculateScore(_mol(smiles_or_mol))
    return float("nan") if score is None else float(score)


def ring_penalty(smiles_or_mol: Any) -> int:
    """max(0, size of the largest ring − 6): the cycle term of penalized logP (0 without rings)."""
    mol = _mol(smiles_or_mol)  # kept alive: RingInfo points into the molecule
    rings = mol.GetRingInfo().AtomRings()
    return max([len(r) - 6 for r in rings] + [0])


def penalized_logp(smiles_or_mol: Any) -> float:
    """logP − SA − ring penalty (Gómez-Bombarelli et al. 2018; JT-VAE's unnormalised form)."""
    mol = _mol(smiles_or_mol)
    return logp(mol) - sa(mol) - ring_penalty(mol)


def weight(smiles_or_mol: Any) -> float:
    """Average molecular weight in daltons (g/mol; RDKit's ``Descriptors.MolWt``)."""
    return float(require("rdkit.Chem.Descriptors").MolWt(_mol(smiles_or_mol)))


FUNCTIONS: dict[str, Callable[[Any], float]] = {
    "qed": qed, "logp": logp, "sa": sa, "penalized-logp": penalized_logp, "weight": weight}


def property_function(name: str) -> Callable[[Any], float]:
    """The function computing property ``name`` (one of PROPERTIES); a one-line UsageError otherwise."""
    if name not in FUNCTIONS:
        raise UsageError(f"unknown molecular property {name!r}; choose one of {', '.join(PROPERTIES)}")
    return FUNCTIONS[name]


def compute(name: str, molecules: Sequence[Any]) -> list[float]:
    """Property ``name`` of each molecule (SMILES or RDKit molecule); NaN for an invalid one, or one RDKit
    cannot score (generated molecules can be exotic), without RDKit's log lines."""
    fn = property_function(name)
    out = []
    with quiet_rdkit():
        for m in molecules:
            mol = to_mol(m)
            try:
                out.append(float("nan") if mol is None else fn(mol))
            except (ValueError, RuntimeError):
                out.append(float("nan"))
    return out
