"""``vaekit export``: a run's networks as ONNX graphs plus ``model.json`` (see :mod:`vaekit.export`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UsageError
from .common import app, user_errors


@app.command("export")
@user_errors


def export_command(
    run: Path = typer.Argument(..., help="run directory"),
    fmt: str = typer.Option("onnx", "--format", help="onnx (encoder.onnx, decoder.onnx, model.json)"),
    out: Path = typer.Option(..., "--out", help="folder to write (must not exist unless --overwrite)"),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an earlier export in --out"),
) -> None:
    """Export the encoder and decoder as ONNX graphs (dynamic batch axis; sampling left to the caller)."""
    from ..export import FORMATS

    if fmt not in FORMATS:
        raise UsageError(f"--format must be {', '.join(FORMATS)}, got {fmt!r}")
    from ..export import export_onnx

    spec = export_onnx(run, out, overwrite=overwrite, opset=opset)
    typer.echo(f"wrote {', '.join(g['file'] for g in spec['graphs'].values())} and model.json to {out}")
    check = spec["check"]
    if check.get("onnxruntime"):
        diffs = ", ".join(f"{n} {d:.1e}" for n, d in check["max_abs_diff"].items())
        typer.echo(f"checked with onnxruntime {check['onnxruntime']} on a batch of {check['batch']}: "
                   f"max abs difference from PyTorch {diffs}")
    else:
        typer.echo("not checked: onnxruntime is not installed (pip install 'vaekit[onnx]')")
