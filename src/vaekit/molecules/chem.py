"""RDKit, imported on demand: one-line refusal when it is missing, SMILES → molecule the MOSES way, canonical
SMILES, and RDKit's log silenced while thousands of generated strings are parsed."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

from ..errors import UsageError

INSTALL_HINT = "pip install 'vaekit[molecules]'"


def require(module: str = "rdkit") -> Any:
    """Import ``module`` (rdkit, fcd_torch, selfies) or raise a one-line UsageError (exit 2) naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        raise UsageError(f"vaekit's molecule support needs the {top} package, which is not installed ({err}); "
                         f"install it with: {INSTALL_HINT}") from None


@contextlib.contextmanager
def quiet_rdkit() -> Iterator[None]:
    """Silence RDKit's parser messages (one line per invalid SMILES otherwise) for the duration; the caller's
    own log settings come back afterwards (RDKit's ``BlockLogs``)."""
    block = require("rdkit.rdBase").BlockLogs()
    try:
        yield
    finally:
        del block


def to_mol(smiles: Any) -> Any:
    """An RDKit molecule, or None when ``smiles`` does not parse or sanitize (MOSES's ``get_mol``: the empty
    string is invalid). A molecule passes through unchanged."""
    if not isinstance(smiles, str):
        return smiles
    if not smiles:
        return None
    chem = require("rdkit.Chem")
    mol = chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    try:
        chem.SanitizeMol(mol)
    except ValueError:
        return None
    return mol


def canonical(smiles: Any) -> str | None:
    """RDKit's canonical SMILES of a SMILES string or molecule; None when it is not a valid molecule."""
    mol = to_mol(smiles)
    if mol is None:
        return None
    return require("rdkit.Chem").MolToSmiles(mol)
