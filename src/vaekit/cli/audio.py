"""Audio runs on the command line: ``vaekit convert``, and the audio branches of reconstruct, sample and
interpolate (each existing command hands an audio run to a function here). The work is in
:mod:`vaekit.tasks.audio`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from .common import app, user_errors


def _check_wav(out: Path, overwrite: bool) -> None:
    if out.suffix.lower() != ".wav":
        raise UsageError(f"--out {out}: an audio run writes sound; use a .wav file")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; pass --overwrite to replace it or choose another --out")


def _load(run: Path):
    from ..api import load_vae

    return load_vae(run)


def audio_reconstruct(run: Path, data: str, out: Path, label: Optional[str], overwrite: bool) -> None:
    """`vaekit reconstruct RUN --data clip.wav --out clip_recon.wav [--label L]` for an audio run."""
    from ..tasks.audio import read_clip, reconstruct_clip, settings_of, write_wav

    _check_wav(out, overwrite)
    trained = _load(run)
    clip = read_clip(trained, data)
    y, _ = reconstruct_clip(trained, clip, label=label)
    rate = settings_of(trained)["sample_rate"]
    write_wav(out, y, rate)
    typer.echo(f"wrote {len(y) / rate:.2f} s ({len(clip.starts)} patches, {rate} Hz) to {out}")


def audio_sample(run: Path, n: int, out: Path, seconds: Optional[float], temperature: float, seed: Optional[int],
                 label: Optional[str], overwrite: bool) -> None:
    """`vaekit sample RUN -n 4 --seconds 2 --out DIR/`: DIR/sample_000.wav …"""
    from ..tasks.audio import label_row, sample_clip, settings_of, write_wav

    if out.suffix.lower() == ".wav":
        if n != 1:
            raise UsageError(f"--out {out} is one .wav file but -n is {n}; pass a folder (--out DIR/) or -n 1")
        targets = [out]
    elif out.suffix:
        raise UsageError(f"--out {out}: an audio run writes sound; give a folder (--out DIR/) or a .wav file with -n 1")
    else:
        if not 1 <= n <= 10_000:
            raise UsageError(f"-n must be between 1 and 10000, got {n}")
        targets = [out / f"sample_{i:03d}.wav" for i in range(n)]
    clash = [t for t in targets if t.exists()]
    if clash and not overwrite:
        raise UsageError(f"{clash[0]} already exists; pass --overwrite to replace it or choose another --out")
    secs = 2.0 if seconds is None else seconds
    if not 0 < secs <= 3600:
        raise UsageError(f"--seconds must be between 0 and 3600, got {secs:g}")
    trained = _load(run)
    c = label_row(trained, label)
    rate = settings_of(trained)["sample_rate"]
    if out.suffix.lower() != ".wav":
        out.mkdir(parents=True, exist_ok=True)
    base = 0 if seed is None else seed
    for i, target in enumerate(targets):
        y, _ = sample_clip(trained, secs, c, temperature=temperature, seed=base + i)
        write_wav(target, y, rate)
    typer.echo(f"wrote {len(targets)} sample(s) of {secs:g} s ({rate} Hz) to {out}")


def audio_interpolate(run: Path, from_: str, to: str, out: Path, overwrite: bool) -> None:
    """`vaekit interpolate RUN --from a.wav --to b.wav --out morph.wav`: the codes of a's patches move to b's."""
    from ..tasks.audio import interpolate_clips, read_clip, settings_of, write_wav

    _check_wav(out, overwrite)
    trained = _load(run)
    y, _ = interpolate_clips(trained, read_clip(trained, from_, "--from"), read_clip(trained, to, "--to"))
    rate = settings_of(trained)["sample_rate"]
    write_wav(out, y, rate)
    typer.echo(f"wrote a {len(y) / rate:.2f} s interpolation from {from_} to {to} to {out}")


@app.command()
@user_errors
def convert(
    run: Path = typer.Argument(..., help="run directory (a label-conditional audio run: --conditional)"),
    data: Path = typer.Option(..., "--data", help="the clip to convert (.wav/.flac/.ogg)"),
    label: str = typer.Option(..., "--label", help="the label (e.g. speaker) to decode it as"),
    out: Path = typer.Option(..., "--out", help="FILE.wav"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Voice conversion: encode a clip under its own label, decode it under --label, write the sound."""
    from ..tasks.audio import is_audio_run, read_clip, reconstruct_clip, settings_of, write_wav

    _check_wav(out, overwrite)
    if not is_audio_run(run):
        trained = _load(run)  # a missing or damaged run is reported here in its own words
        raise UsageError(f"{run} was not trained on audio; convert takes a conditional audio run")
    trained = _load(run)
    if trained.conditioning is None:
        raise UsageError(f"{run} is not conditional; train it with --conditional on a folder with one subfolder per "
                         "speaker to convert voices")
    clip = read_clip(trained, data)
    y, _ = reconstruct_clip(trained, clip, label=label)
    rate = settings_of(trained)["sample_rate"]
    write_wav(out, y, rate)
    typer.echo(f"wrote {data} converted to {label!r} ({len(y) / rate:.2f} s, {rate} Hz) to {out}")
