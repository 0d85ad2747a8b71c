"""The MOSES metrics of a seq-vae run of molecules: ``n`` strings sampled from the prior, scored by
:func:`vaekit.evaluation.molecules.molecule_metrics` against the run's own test split (SNN, Frag, Scaf, FCD, the
property distances) and its training split (novelty). Used by ``vaekit evaluate``, ``vaekit report`` and the end
of training; RDKit (and fcd_torch for FCD) come from the ``vaekit[molecules]`` extra."""

from __future__ import annotations

from typing import Any

#: tokenizers whose strings are SMILES (SELFIES runs decode back to SMILES)
MOLECULE_TOKENIZERS = ("smiles", "selfies")
#: default number of sampled molecules ``vaekit evaluate`` scores
DEFAULT_SAMPLES = 1000
#: sampled molecules scored when a training run ends, against at most this many test molecules (no FCD there:
#: RDKit's properties cost ≈ 2-5 ms per molecule, so the end of a run stays seconds however large the test split)
END_OF_TRAINING_SAMPLES, END_OF_TRAINING_REFERENCE = 200, 1000

#: one-line definitions of the metrics (for the printout, the report and the model card)
DEFINITIONS = {
    "valid": "fraction of sampled strings RDKit parses and sanitizes",
    "unique@1000": "distinct canonical SMILES among the first 1000 valid ones (fewer: among all of them)",
    "unique@10000": "distinct canonical SMILES among the first 10000 valid ones (fewer: among all of them)",
    "Novelty": "fraction of the distinct valid molecules not in the run's training split",
    "IntDiv": "1 − mean Tanimoto similarity (Morgan r=2, 1024 bits) over pairs of valid samples",
    "IntDiv2": "1 − mean over x of sqrt(mean over y of Tanimoto(x, y)²)",
    "SNN/Test": "mean over samples of the largest Tanimoto similarity to a test molecule",
    "Frag/Test": "cosine similarity of BRICS-fragment counts, samples vs test",
    "Scaf/Test": "cosine similarity of Bemis-Murcko scaffold counts (≥2 rings), samples vs test",
    "FCD/Test": "Fréchet ChemNet Distance, samples vs test (lower is closer)",
    "logP": "1-D Wasserstein distance of logP, samples vs test",
    "SA": "1-D Wasserstein distance of the synthetic-accessibility score, samples vs test",
    "QED": "1-D Wasserstein distance of QED (drug-likeness), samples vs test",
    "weight": "1-D Wasserstein distance of molecular weight (Da), samples vs test",
}


def is_molecule_info(info: dict) -> bool:
    """Whether a run's ``config.json`` describes a seq-vae run of molecules (SMILES or SELFIES tokenizer)."""
    from .sequences import is_sequence_info

    return is_sequence_info(info) and info["data"].get("tokenizer") in MOLECULE_TOKENIZERS


def split_strings(trained: Any, data: str | None = None) -> tuple[list[str], list[str]]:
    """The training and test strings (as SMILES) of the run's own data (or ``data``), split as in training."""
    from .sequences import vocabulary

    voc = vocabulary(trained)
    ds = trained.load_data(trained.config.data if data is None else str(data))
    tr, _, te = trained.kind.split(ds, trained.config)
    return voc.strings(tr.x), voc.strings(te.x)


def molecule_evaluation(trained: Any, samples: int = DEFAULT_SAMPLES, fcd: bool = True, seed: int = 0,
                        temperature: float = 1.0, data: str | None = None,
                        generated: list[str] | None = None, max_reference: int | None = None) -> dict[str, Any]:
    """The MOSES metrics of ``samples`` strings drawn from the prior (seeded, ``temperature``) against the run's
    test split, novelty against its training split; ``fcd`` adds FCD/Test (≈20 ms per molecule on a CPU).
    ``generated`` scores given strings instead of sampling; ``max_reference`` keeps the first that many test
    strings (the split is random, so a random subset). Returns ``{"samples", "temperature", "seed",
    "metrics": {...}, "definitions": {...}}``; a one-line UsageError when RDKit (or fcd_torch) is missing."""
    import math

    from ..errors import UsageError
    from ..evaluation.molecules import molecule_metrics
    from ..molecules.chem import quiet_rdkit, require, to_mol

    require("rdkit")
    if fcd:
        require("fcd_torch")
    if generated is None:
        if not 1 <= samples <= 1_000_000:
            raise UsageError(f"--samples must be between 1 and 1000000, got {samples}")
        generated = trained.sample_strings(samples, temperature, seed)
    train, test_all = split_strings(trained, data)
    test_all = test_all[:max_reference] if max_reference else test_all
    with quiet_rdkit():
        test = [s for s in test_all if to_mol(s) is not None]  # a reference RDKit cannot read is left out
    if not test:
        raise UsageError("the run's test split has no molecule RDKit can read; the MOSES metrics need reference "
                         "molecules")
    metrics = molecule_metrics(generated, train, test, fcd=fcd and len(test) >= 2)
    metrics = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
    return {"samples": len(generated), "temperature": temperature, "seed": seed, "fcd": bool(fcd),
            "reference": f"test split ({len(test)} of {len(test_all)} strings valid); novelty against the training "
                         f"split ({len(train)})",
            "metrics": metrics, "definitions": {k: DEFINITIONS[k] for k in metrics if k in DEFINITIONS}}


def metrics_line(res: dict[str, Any]) -> str:
    """One printable line of the headline metrics of :func:`molecule_evaluation`."""
    m = res["metrics"]
    keys = ["valid", "unique@1000", "Novelty", "IntDiv", "SNN/Test", "Frag/Test", "Scaf/Test", "FCD/Test"]
    parts = [f"{k} {m[k]:.3f}" if m.get(k) is not None else f"{k} n/a" for k in keys if k in m]
    return f"MOSES metrics of {res['samples']} samples (temperature {res['temperature']:g}): " + ", ".join(parts)
