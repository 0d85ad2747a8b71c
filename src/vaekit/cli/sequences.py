"""The string side of sample, reconstruct, encode and interpolate: each of those commands asks
:func:`is_sequence_run` first and hands a seq-vae run to the function here (the logic is in
:mod:`vaekit.tasks.sequences`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from .common import check_out_file, pick_split, write_array

#: what seq-vae outputs of strings are written as: one string per line
STRING_SUFFIXES = (".smi", ".txt")


def is_sequence_run(run: Path) -> bool:
    """Whether ``run`` is a run directory of a seq-vae (strings) run; False for anything else, whose own
    command then reports what is wrong with it."""
    from ..runs import read_run_info
    from ..tasks.sequences import is_sequence_info

    try:
        return is_sequence_info(read_run_info(run))
    except Exception:  # not a run, unreadable: the command's own path says so
        return False


def _refuse(flags: dict[str, object]) -> None:
    """Refuse options of the command that mean nothing for strings, naming them."""
    given = [f for f, v in flags.items() if v is not None and v is not False]
    if given:
        raise UsageError(f"{', '.join(given)} do{'es' if len(given) == 1 else ''} not apply to a seq-vae run "
                         f"(strings); drop {' '.join(given)}")


def _load(run: Path):
    from ..api import load

    return load(run)


def sequence_sample(run: Path, n: int, out: Path, temperature: float, seed: Optional[int], overwrite: bool,
                    **unused: object) -> None:
    """`vaekit sample` of a seq-vae run: ``n`` strings, one per line."""
    _refuse(unused)
    check_out_file(out, overwrite, STRING_SUFFIXES)
    trained = _load(run)
    strings = trained.sample_strings(n, temperature, seed)
    trained.kind.write(strings, out)
    how = "greedy" if temperature == 0 else f"temperature {temperature:g}"
    typer.echo(f"wrote {n} sampled strings to {out} ({how}; {len(set(strings))} distinct)")


def _strings_data(trained, data: str, split: str, n: Optional[int] = None):
    ds = pick_split(trained, trained.load_data(data), split, data)
    return ds.x[:n] if n else ds.x


def sequence_reconstruct(run: Path, data: str, out: Path, n: Optional[int], split: str, overwrite: bool,
                         **unused: object) -> None:
    """`vaekit reconstruct` of a seq-vae run: greedy decoding of each string's posterior mean; .smi/.txt hold the
    reconstructions one per line, .csv the input, its reconstruction and whether they are equal."""
    _refuse(unused)
    check_out_file(out, overwrite, STRING_SUFFIXES + (".csv",))
    from ..tasks.sequences import reconstruct_rows, vocabulary

    trained = _load(run)
    x = _strings_data(trained, data, split, n)
    inputs, rec = vocabulary(trained).strings(x), reconstruct_rows(trained, x)
    same = sum(a == b for a, b in zip(inputs, rec))
    if out.suffix.lower() == ".csv":
        import csv
        import io

        from ..runs import atomic_write_text

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["input", "reconstruction", "exact"])
        w.writerows([a, b, int(a == b)] for a, b in zip(inputs, rec))
        atomic_write_text(out, buf.getvalue())
    else:
        trained.kind.write(rec, out)
    typer.echo(f"wrote {len(rec)} reconstructions to {out} ({same} of {len(rec)} exactly the input)")


def sequence_encode(run: Path, data: str, out: Path, draw: bool, seed: Optional[int], split: str,
                    overwrite: bool, **unused: object) -> None:
    """`vaekit encode` of a seq-vae run: one latent code per string."""
    _refuse(unused)
    check_out_file(out, overwrite, (".npy", ".csv"))
    import torch

    from ..tasks.sequences import encode_rows

    trained = _load(run)
    x = _strings_data(trained, data, split)
    z = encode_rows(trained, x, draw, torch.Generator().manual_seed(seed) if seed is not None else None)
    write_array(z, out, "latent", [f"z{i}" for i in range(z.shape[1])])
    typer.echo(f"wrote {len(z)}×{z.shape[1]} latent codes to {out}")


def sequence_evaluate(run: Path, data: Optional[str], split: str, seed: int, as_json: bool, unsaved_note,
                      save_or_say, samples: int = 0, fcd: bool = False) -> None:
    """`vaekit evaluate` of a seq-vae run: −ELBO per string and exact reconstructions of ``split``, and for a run of
    molecules (SMILES/SELFIES) the MOSES metrics of ``samples`` sampled molecules (``fcd``: with FCD/Test), saved
    to RUN/evaluation.json (``unsaved_note``/``save_or_say``: the command's own helpers for that file)."""
    from .. import api
    from ..runs import json_text

    if samples < 0:
        raise UsageError(f"--samples must be 0 (no MOSES metrics) or more, got {samples}")
    unsaved = unsaved_note(run, "evaluation.json")
    trained = _load(run)
    res = api.evaluate(trained, data, split=split, seed=seed)
    note = None
    from ..tasks.molecule_eval import is_molecule_info, metrics_line, molecule_evaluation

    if samples and is_molecule_info(trained.info):
        try:
            res["molecules"] = molecule_evaluation(trained, samples, fcd, seed, data=data)
        except UsageError as err:  # RDKit / fcd_torch missing: the −ELBO still stands, the metrics are named
            if "vaekit[molecules]" not in str(err):
                raise
            note = f"MOSES metrics skipped: {err}"
    save_or_say(run, "evaluation.json", res, unsaved)
    if note:
        typer.echo(note, err=True)
    if as_json:
        typer.echo(json_text(res, indent=2))
        return
    typer.echo(f"{res['split']} strings of {res['data']} ({res['strings']}): -ELBO {res['elbo']:.2f} nats per string "
               f"(recon {res['recon']:.2f} + KL {res['kl']:.2f}); greedy reconstruction exact for "
               f"{res['reconstructed_exactly']:.1%} of {res['reconstruction_strings']}")
    if "molecules" in res:
        typer.echo(metrics_line(res["molecules"]))


def sequence_interpolate(run: Path, start: str, end: str, steps: int, out: Optional[Path], overwrite: bool,
                         **unused: object) -> None:
    """`vaekit interpolate` of a seq-vae run: the decoded path between two strings, each string once; printed,
    and written one per line to ``out`` when given."""
    _refuse(unused)
    if out is not None:
        check_out_file(out, overwrite, STRING_SUFFIXES)
    from ..tasks.sequences import interpolate_strings

    trained = _load(run)
    path = interpolate_strings(trained, start, end, steps)
    for t, s in path:
        typer.echo(f"{t:.3f}\t{s}")
    if out is not None:
        trained.kind.write([s for _, s in path], out)
        typer.echo(f"wrote {len(path)} distinct strings of a {steps}-step path to {out}")
