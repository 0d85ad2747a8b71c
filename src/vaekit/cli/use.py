"""Commands that use a trained run on data: sample, reconstruct, encode, denoise."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import SPLIT_HELP, app, check_out_file, pick_split, user_condition, user_errors, write_array
from .sequences import is_sequence_run, sequence_encode, sequence_reconstruct, sequence_sample


@app.command()
@user_errors


def sample(
    run: Path = typer.Argument(..., help="run directory"),
    n: int = typer.Option(64, "-n", "--n", help="number of samples"),
    out: Path = typer.Option(..., "--out",
                             help="FILE.png, FILE.npy or FILE.csv (audio runs: a folder, or FILE.wav; seq-vae: "
                                  "FILE.smi or FILE.txt)"),
    temperature: float = typer.Option(1.0, "--temperature",
                                      help="scale of the prior draws (seq-vae: softmax temperature of each token, "
                                           "0 = greedy)"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    label: Optional[str] = typer.Option(None, "--label", help="class to generate (conditional runs)"),
    attributes: Optional[str] = typer.Option(None, "--attributes", help='attribute values, e.g. "a=0.5,b=1" (conditional runs)'),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="audio runs: length of each sample \\[default: 2]"),
    sampler: str = typer.Option("prior", "--sampler", help="where z comes from: prior, vamp (a --prior vamp run) or "
                                "gmm:K (a K-component Gaussian mixture on the training codes, fitted on first use "
                                "and saved in the run)"),
) -> None:
    """Draw new examples from a trained model (means of p(x|z), z from the prior or an ex-post sampler; seq-vae runs:
    strings)."""
    if is_sequence_run(run):
        return sequence_sample(run, n, out, temperature, seed, overwrite,
                               **{"--label": label, "--attributes": attributes, "--seconds": seconds,
                                  "--sampler": None if sampler == "prior" else sampler})
    from ..tasks.audio import is_audio_run

    if is_audio_run(run):
        from .audio import audio_sample

        if sampler.strip().lower() != "prior":
            from ..errors import UsageError

            raise UsageError("--sampler applies to image, table and array runs; drop it for this audio run")
        return audio_sample(run, n, out, seconds, temperature, seed, label, overwrite)
    if seconds is not None:
        from ..errors import UsageError

        raise UsageError("--seconds applies to audio runs only; drop it")
    check_out_file(out, overwrite, (".png", ".npy", ".csv"))
    from ..api import load_vae as load

    if sampler.strip().lower() != "prior":
        from ..samplers import parse_sampler

        parse_sampler(sampler)  # a bad spec is refused before the run is loaded
    trained = load(run)
    if sampler.strip().lower() != "prior":
        from ..samplers import sample_with

        x, note = sample_with(trained, sampler, n, temperature, seed)
        write_array(x, out, trained.info["data"]["kind"], trained.info["data"].get("columns"), trained.schema)
        typer.echo(f"{note}\nwrote {n} samples ({sampler}) to {out}")
        return
    c = user_condition(trained, label, attributes, n)
    x = trained.sample(n, temperature=temperature, seed=seed, c=c)
    write_array(x, out, trained.info["data"]["kind"], trained.info["data"].get("columns"), trained.schema)
    typer.echo(f"wrote {n} samples to {out}")


@app.command()
@user_errors


def reconstruct(
    run: Path = typer.Argument(..., help="run directory"),
    data: str = typer.Option(..., "--data", help="data to reconstruct (same kind as the training data)"),
    out: Path = typer.Option(..., "--out", help="FILE.png (inputs above reconstructions), FILE.npy or FILE.csv"),
    n: Optional[int] = typer.Option(None, "-n", "--n", help="only the first N examples [PNG default: 32]"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="resize images \\[default: as in training]"),
    split: str = typer.Option("all", "--split", help=SPLIT_HELP),
    label: Optional[str] = typer.Option(None, "--label", help="re-decode every input under this class (conditional runs)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Reconstruct data through a trained model (mean of p(x|z) at the posterior mean)."""
    if is_sequence_run(run):
        return sequence_reconstruct(run, data, out, n, split, overwrite, **{"--image-size": image_size, "--label": label})
    from ..tasks.audio import is_audio_run

    if is_audio_run(run):  # a clip in, its reconstruction as a .wav out
        from .audio import audio_reconstruct

        return audio_reconstruct(run, data, out, label, overwrite)
    check_out_file(out, overwrite, (".png", ".npy", ".csv"))
    from ..api import load_vae as load

    trained = load(run)
    ds = trained.load_data(data, **({"image_size": image_size} if image_size else {}), mapped=split != "all")
    ds = pick_split(trained, ds, split, data)
    keep = n or (32 if out.suffix.lower() == ".png" else len(ds.x))
    ds.x, ds.y = ds.x[:keep], (ds.y[:keep] if ds.y is not None else None)
    xm, c = trained.dataset_inputs(ds)
    x = trained.to_data_units(xm)
    c_out = user_condition(trained, label, None, len(x)) if label is not None else None
    rec = trained.reconstruct(x, c=c, c_out=c_out)
    from ..data.kinds import kind_of

    kind_of(ds.kind).write_pairs(x, rec, out, ds.columns, trained.schema)
    typer.echo(f"wrote {len(rec)} reconstructions to {out}")


@app.command()
@user_errors


def encode(
    run: Path = typer.Argument(..., help="run directory"),
    data: str = typer.Option(..., "--data", help="data to encode"),
    out: Path = typer.Option(..., "--out", help="FILE.npy or FILE.csv"),
    draw: bool = typer.Option(False, "--sample", help="one draw from q(z|x) instead of its mean"),
    seed: Optional[int] = typer.Option(None, "--seed", help="seed of --sample draws"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="resize images \\[default: as in training]"),
    split: str = typer.Option("all", "--split", help=SPLIT_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Latent codes of data: posterior means (or draws with --sample), one row per example."""
    if is_sequence_run(run):
        return sequence_encode(run, data, out, draw, seed, split, overwrite, **{"--image-size": image_size})
    check_out_file(out, overwrite, (".npy", ".csv"))
    import torch

    from ..api import load_vae as load

    trained = load(run)
    ds = trained.load_data(data, **({"image_size": image_size} if image_size else {}), mapped=split != "all")
    ds = pick_split(trained, ds, split, data)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    xm, c = trained.dataset_inputs(ds)
    z = trained.encode(trained.to_data_units(xm), sample=draw, generator=gen, c=c)
    write_array(z, out, "latent", [f"z{i}" for i in range(z.shape[1])])
    typer.echo(f"wrote {len(z)}×{z.shape[1]} latent codes to {out}")


@app.command()
@user_errors


def denoise(
    run: Path = typer.Argument(..., help="run directory (best: one trained with --corruption)"),
    data: str = typer.Option(..., "--data", help="noisy data (same kind as the training data)"),
    out: Path = typer.Option(..., "--out", help="FILE.png (noisy above denoised), FILE.npy or FILE.csv"),
    add_noise: Optional[str] = typer.Option(None, "--add-noise", help="corrupt clean data first, e.g. gaussian:0.3, and report the MSE against it"),
    seed: int = typer.Option(0, "--seed", help="seed of --add-noise"),
    n: Optional[int] = typer.Option(None, "-n", "--n", help="only the first N examples [PNG default: 32]"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="resize images \\[default: as in training]"),
    split: str = typer.Option("all", "--split", help=SPLIT_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Denoise data: the mean of p(x|z) at the posterior mean of each noisy input."""
    check_out_file(out, overwrite, (".png", ".npy", ".csv"))
    if add_noise is not None:
        from ..data.noise import parse_corruption

        parse_corruption(add_noise, "--add-noise")
    from ..api import load_vae as load

    trained = load(run)
    ds = trained.load_data(data, **({"image_size": image_size} if image_size else {}), mapped=split != "all")
    ds = pick_split(trained, ds, split, data)
    from ..data.kinds import kind_of

    kind_of(ds.kind).check_png(out)
    keep = n or (32 if out.suffix.lower() == ".png" else len(ds.x))
    ds.x, ds.y = ds.x[:keep], (ds.y[:keep] if ds.y is not None else None)
    xm, c = trained.dataset_inputs(ds)
    clean = trained.to_data_units(xm)
    noisy = trained.corrupt(clean, add_noise, seed) if add_noise is not None else clean
    den = trained.denoise(noisy, c=c)
    if out.suffix.lower() == ".png":
        from ..evaluation.figures import save_stacked

        save_stacked([noisy, den, clean] if add_noise is not None else [noisy, den], out)
    else:
        write_array(den, out, ds.kind, ds.columns, trained.schema)
    typer.echo(f"wrote {len(den)} denoised examples to {out}")
    if add_noise is not None:
        for line in denoise_lines(trained, clean, noisy, den, ds.columns):
            typer.echo(line)


def denoise_lines(trained, clean, noisy, den, columns: list[str] | None, show: int = 30) -> list[str]:
    """The errors of `denoise --add-noise`: for tables per column in standardized units (error / the column's
    training std, so one large column does not dominate) and their mean; for images and arrays per feature
    in data units. Says plainly when the denoised output is not closer to the clean data than its input."""
    if trained.scaler is not None:
        std = trained.scaler.std.reshape(1, -1).to(clean.device)
        per = lambda a: (((a - clean) / std) ** 2).mean(0)  # noqa: E731
        cor, dn = per(noisy), per(den)
        d = cor.numel()
        names = columns if columns and len(columns) == d else [f"x{i}" for i in range(d)]
        width = max(8, *(len(n) for n in names[:show]))
        lines = ["MSE against the clean data, per column in standardized units (squared error / the column's "
                 "training variance):", f"  {'column':<{width}}  corrupted   denoised"]
        lines += [f"  {n:<{width}}  {c:9.5f}  {v:9.5f}" + ("   (worse)" if v >= c else "")
                  for n, c, v in zip(names[:show], cor.tolist(), dn.tolist())]
        if d > show:
            lines.append(f"  ... and {d - show} more columns")
        mc, md = float(cor.mean()), float(dn.mean())
        lines.append(f"  {'mean':<{width}}  {mc:9.5f}  {md:9.5f}")
        worse = [n for n, c, v in zip(names, cor.tolist(), dn.tolist()) if v >= c]
    else:
        mc, md = float(((noisy - clean) ** 2).mean()), float(((den - clean) ** 2).mean())
        lines = [f"MSE per feature against the clean data (data units): corrupted {mc:.5f}, denoised {md:.5f}"]
        worse = []
    if md >= mc:
        lines.append(f"denoising did not help: the denoised output is further from the clean data ({md:.5f}) than "
                     f"the corrupted input ({mc:.5f}): its reconstruction error exceeds this noise; train longer or with "
                     "--corruption matching this noise")
    elif worse:
        lines.append(f"denoising helped on average but not for {len(worse)} column(s): {', '.join(worse[:8])}"
                     + (" ..." if len(worse) > 8 else ""))
    return lines
