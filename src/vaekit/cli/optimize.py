"""``vaekit optimize``: molecules with a better property, found by gradient ascent in a seq-vae run's latent space
(:mod:`vaekit.tasks.optimize`)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import app, check_out_file, user_errors


@app.command()
@user_errors
def optimize(
    run: Path = typer.Argument(..., help="run directory of a seq-vae run trained on SMILES (smiles or selfies tokens)"),
    prop: str = typer.Option("qed", "--property", help="qed, logp or penalized-logp (RDKit)"),
    out: Path = typer.Option(..., "--out", help="FILE.smi (SMILES<TAB>value, best first) or FILE.csv"),
    starts: int = typer.Option(100, "--starts", help="training molecules whose codes start the ascent"),
    steps: int = typer.Option(100, "--steps", help="gradient steps per start"),
    lr: float = typer.Option(0.05, "--lr", help="Adam's step size on z"),
    fit_molecules: int = typer.Option(5000, "--fit-molecules",
                                      help="training molecules the property head is fitted on"),
    seed: int = typer.Option(0, "--seed", help="seed of the draws of molecules and of the head's initialisation"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Fit a property head on the latent means of training molecules, climb it from many starts, decode the codes
    along the way and score the decoded molecules with RDKit; prints the top 3 against the training set's best."""
    check_out_file(out, overwrite, (".smi", ".csv"))
    from ..api import load
    from ..tasks.optimize import optimize_property

    trained = load(run)
    res = optimize_property(trained, prop, starts, steps, lr, fit_molecules, seed)
    for line in optimize_lines(res, starts):
        typer.echo(line)
    write_molecules(res, out)
    typer.echo(f"wrote {len(res.best)} distinct valid molecules to {out}")


def optimize_lines(res, starts: int) -> list[str]:
    """What `vaekit optimize` prints: the head's fit, the decoding success, the mean property before and after,
    the top 3 found and the training set's best."""
    lines = [f"{res.property} head: R² {res.head_r2:.3f} on held-out training molecules",
             f"decoding success: {res.success_rate:.1%} of the {starts} optimised codes decode to a valid molecule",
             f"mean {res.property}: {res.start_mean:.3f} (starting molecules) -> {res.end_mean:.3f} (valid molecules "
             "decoded from the optimised codes)", "top 3 found:"]
    lines += [f"  {i}. {s}  {v:.3f}{'' if new else '  (in the training set)'}"
              for i, ((s, v), new) in enumerate(zip(res.best[:3], res.novel[:3]), 1)] or ["  (no valid molecule)"]
    lines.append(f"best of the training molecules scored: {res.training_best[0]}  {res.training_best[1]:.3f}")
    return lines


def write_molecules(res, out: Path) -> None:
    """Every distinct valid decoded molecule, best first: .smi as SMILES<TAB>value, .csv with a novelty column."""
    from ..runs import atomic_write_text

    if out.suffix.lower() == ".csv":
        text = f"smiles,{res.property},novel\n" + "".join(f"{s},{v:.6g},{int(n)}\n"
                                                           for (s, v), n in zip(res.best, res.novel))
    else:
        text = "".join(f"{s}\t{v:.6g}\n" for s, v in res.best)
    atomic_write_text(out, text)
