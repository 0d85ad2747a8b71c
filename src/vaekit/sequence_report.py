"""``report.html`` and the model card of a seq-vae run (:mod:`vaekit.evaluation.sequence_card` writes them): the
things that need the model are made here: sampled strings, for molecules a grid of RDKit drawings of samples
and the property distributions (QED, logP, weight) of samples against the training molecules, and the decoded
path between two test strings.

Training writes them at the end (``evaluation.json`` with the MOSES metrics of a few samples, no FCD, unless
``report=False``: then the card only); ``vaekit report RUN`` re-evaluates (more samples) and writes all three
again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .trained import TrainedVAE

#: sampled strings shown as text, drawn as molecules; steps of the interpolation path; training molecules whose
#: properties the histograms show beside the samples' (RDKit's QED: ≈ 2-5 ms per molecule)
SHOWN_SAMPLES, DRAWN_MOLECULES, PATH_STEPS, HISTOGRAM_MOLECULES = 30, 24, 10, 500


def sequence_evaluation(trained: TrainedVAE, data: Any = None, split: str = "test", seed: int = 0,
                        samples: int = 1000, fcd: bool = False,
                        max_reference: int | None = None) -> tuple[dict, list[str]]:
    """``evaluation.json`` of a seq-vae run (−ELBO per string, exact reconstructions and, for molecules with
    RDKit installed, the MOSES metrics of ``samples`` samples) and notes of what was left out."""
    from .errors import UsageError
    from .tasks.molecule_eval import is_molecule_info, molecule_evaluation
    from .tasks.sequences import evaluate_strings

    ev, notes = evaluate_strings(trained, data, split, seed), []
    if samples and is_molecule_info(trained.info):
        try:
            ev["molecules"] = molecule_evaluation(trained, samples, fcd, seed, data=data, max_reference=max_reference)
        except UsageError as err:
            if "vaekit[molecules]" not in str(err):
                raise
            notes.append(f"MOSES metrics and molecule drawings skipped: {err}")
    return ev, notes


def sequence_figures(trained: TrainedVAE, ev: dict, seed: int = 0) -> tuple[dict, dict, list[str]]:
    """(figures id → (caption, PNG), texts id → (caption, strings), notes) of the report."""
    from .errors import UsageError
    from .tasks.molecule_eval import is_molecule_info, split_strings
    from .tasks.sequences import interpolate_strings

    figures: dict[str, tuple[str, bytes]] = {}
    notes: list[str] = []
    n = max(SHOWN_SAMPLES, int((ev.get("molecules") or {}).get("samples", 0)))
    samples = trained.sample_strings(n, 1.0, seed)
    train, test = split_strings(trained)
    texts = {"samples": (f"Sampled strings (first {SHOWN_SAMPLES} of {n}, temperature 1, seed {seed})",
                         samples[:SHOWN_SAMPLES])}
    if len(test) >= 2:
        path = interpolate_strings(trained, test[0], test[1], PATH_STEPS)
        texts["interpolation"] = (f"Interpolation between two test strings ({PATH_STEPS} steps, greedy; t, string)",
                                  [f"{t:.3f}\t{s}" for t, s in path])
    if is_molecule_info(trained.info) and "molecules" in ev:
        from .evaluation.molecule_figures import molecule_grid_png, property_histograms_png

        try:
            figures["molecules"] = (f"Sampled molecules: the first {DRAWN_MOLECULES} valid ones of {n} samples "
                                    "(RDKit drawings)", molecule_grid_png(samples, DRAWN_MOLECULES))
        except UsageError as err:  # no valid molecule among the samples: said, not drawn
            notes.append(f"no molecule drawings: {err}")
        figures["properties"] = ("Property distributions: QED, logP and molecular weight of the valid samples "
                                 f"against (up to {HISTOGRAM_MOLECULES}) training molecules",
                                 property_histograms_png(samples, train[:HISTOGRAM_MOLECULES]))
    return figures, texts, notes


def write_sequence_outputs(trained: TrainedVAE, ev: dict | None, notes: list[str], seed: int = 0) -> Path:
    """report.html and the model card (lock held by the caller); the report's path."""
    from .evaluation.sequence_card import write_sequence_report
    from .finish import write_card

    figures, texts, more = sequence_figures(trained, ev or {}, seed)
    path = write_sequence_report(trained.run_dir, trained.info, ev, figures, texts, notes + more)
    write_card(trained)
    return path


def report_sequences(trained: TrainedVAE, data: Any = None, split: str = "test", seed: int = 0,
                     samples: int = 1000, fcd: bool = False) -> Path:
    """``vaekit report`` of a seq-vae run: ``evaluation.json``, ``report.html`` and the model card."""
    from .runs import EVALUATION, lock_run, write_json

    run = trained.run_dir
    with lock_run(run, "report"):  # taken before computing: a read-only or busy run fails now
        ev, notes = sequence_evaluation(trained, data, split, seed, samples, fcd)
        write_json(run / EVALUATION, ev)
        return write_sequence_outputs(trained, ev, notes, seed)


def end_of_sequence_run(trained: TrainedVAE, report: bool, samples: int, max_reference: int | None = None) -> None:
    """As a seq-vae run ends: evaluation.json (MOSES metrics of ``samples`` samples against at most
    ``max_reference`` test molecules, no FCD) and report.html (``report``), and the model card always."""
    from .finish import write_card
    from .runs import EVALUATION, write_json

    if not report:
        write_card(trained)
        return
    seed = trained.config.seed
    ev, notes = sequence_evaluation(trained, None, "test", seed, samples, False, max_reference)
    write_json(trained.run_dir / EVALUATION, ev)
    write_sequence_outputs(trained, ev, notes, seed)
