"""Commands that complete missing data with a trained run: ``impute`` (tables) and ``inpaint`` (images).

Registered on :data:`vaekit.cli.app` when ``vaekit.cli`` is imported; the same conventions hold: one-line
errors, exit code 2, torch imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import check_out_file, user_errors, app
from ..errors import DataError, UsageError

METHOD_HELP = "iw (importance-weighted conditional mean, MIWAE), gibbs (pseudo-Gibbs) or mwg (Metropolis-within-Gibbs)"


@app.command()
@user_errors
def impute(
    run: Path = typer.Argument(..., help="run directory (trained on a table, ideally with --missing mask)"),
    data: str = typer.Option(..., "--data", help="table (.csv/.parquet) with missing cells: empty, NA or NaN"),
    out: Path = typer.Option(..., "--out", help="FILE.csv: the table with its missing cells filled"),
    method: str = typer.Option("iw", "--method", help=METHOD_HELP),
    k: int = typer.Option(1000, "--k", help="importance samples of --method iw"),
    steps: int = typer.Option(500, "--steps", help="chain length of --method gibbs/mwg (the first half is burn-in)"),
    passes: int = typer.Option(1, "--passes", help="IW passes, each refilling the encoder's input with the last estimate (gibbs/mwg start from passes-1)"),
    seed: int = typer.Option(0, "--seed", help="seed of the sampling"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Fill the missing cells of a table; observed cells are copied through unchanged (their very text)."""
    check_out_file(out, overwrite, (".csv",))
    from .series import is_series_run, series_impute

    if is_series_run(run):  # a time series: fill its gaps (vaekit.cli.series)
        return series_impute(run, data, out, k, passes, seed, {"--method": method != "iw", "--steps": steps != 500})
    from ..data.tables import is_table_path

    if not is_table_path(Path(data)):
        raise UsageError(f"vaekit impute reads a .csv or .parquet table, not {data}; for images use vaekit inpaint")
    import torch

    from ..api import load_vae as load
    from ..runs import atomic_write_text

    trained = load(run)
    kind = trained.kind.name
    if not trained.kind.cells:
        raise UsageError(f"{run} was trained on {kind} data; vaekit impute completes tables (for images use "
                         "vaekit inpaint)")
    ds = trained.load_data(data, allow_missing=True)
    expected = list(trained.info["data"].get("columns") or [])
    _match_columns(trained, ds, run, data, expected)
    missing = torch.isnan(ds.x)
    filled = trained.impute(ds.x, method=method, k=k, steps=steps, seed=seed, passes=passes)
    missing, text = _completed_text(trained, Path(data), expected, filled, missing)
    atomic_write_text(out, text)
    n_rows = int(missing.any(1).sum())
    how = {"iw": f"importance-weighted conditional mean, k={k}", "gibbs": f"pseudo-Gibbs, {steps} steps",
           "mwg": f"Metropolis-within-Gibbs, {steps} steps"}[method]
    acc = f", acceptance {trained.last_acceptance:.2f}" if trained.last_acceptance is not None else ""
    typer.echo(f"filled {int(missing.sum())} missing cells in {n_rows} of {len(ds.x)} rows ({how}{acc}); "
               f"wrote {out}")


def _match_columns(trained: Any, ds: Any, run: Path, data: str, expected: list[str]) -> None:
    """Put the columns of ``ds`` in the order of the run's (``expected``), or refuse a table with other
    columns, named as the table's own columns (not one-hot features) when the run has a schema."""
    got = list(ds.columns or [])
    if got != expected:
        lacking = [c for c in expected if c not in got]
        extra = [c for c in got if c not in expected]
        if lacking or extra or len(got) != len(expected):
            names = [c["name"] for c in trained.schema] if trained.schema is not None else None
            if names is not None:  # say it in the table's own column names, not one-hot features
                file_cols = [c["name"] for c in ds.schema or []]
                lacking = [c for c in names if c not in file_cols]
                extra = [c for c in file_cols if c not in names]
            raise DataError(f"{data} has other columns than the table {run} was trained on (missing: "
                            f"{', '.join(lacking) or 'none'}; unexpected: {', '.join(extra) or 'none'}); "
                            f"give a table with the columns {', '.join(names or expected)}")
        ds.x = ds.x[:, [got.index(c) for c in expected]]  # same columns in another order: reorder


def _completed_text(trained: Any, path: Path, expected: list[str], filled: Any, missing: Any) -> tuple[Any, str]:
    """The completed table's CSV text and the missing-cell mask per written cell: per original column for a
    mixed-type table (categories by name), else per feature."""
    from ..data.tables import completed_table_text

    if trained.schema is not None:  # mixed-type table: cells per original column, categories by name
        import torch

        from ..data.tables import missing_cells, table_cells

        schema = trained.schema
        missing = torch.from_numpy(missing_cells(schema, missing.numpy()))
        text = completed_table_text(path, [c["name"] for c in schema],
                                    table_cells(schema, filled.numpy()), missing.numpy())
    else:
        text = completed_table_text(path, expected, filled.numpy(), missing.numpy())
    return missing, text


@app.command()
@user_errors
def inpaint(
    run: Path = typer.Argument(..., help="run directory (trained on images)"),
    data: str = typer.Option(..., "--data", help="images (its test split when it has one, else the first -n)"),
    mask: str = typer.Option(..., "--mask", help="center, left, right, top, bottom, random:P or MASK.png (white = fill)"),
    out: Path = typer.Option(..., "--out", help="FILE.png: rows of masked input | completion | original"),
    n: int = typer.Option(8, "-n", "--n", help="number of images"),
    method: str = typer.Option("mwg", "--method", help=METHOD_HELP),
    steps: int = typer.Option(500, "--steps", help="chain length of --method gibbs/mwg (the first half is burn-in)"),
    k: int = typer.Option(1000, "--k", help="importance samples of --method iw and of the --passes"),
    passes: int = typer.Option(3, "--passes", help="IW passes, each refilling the encoder's input with the last estimate (gibbs/mwg start from passes-1) [3: a zero-filled hole misleads the encoder]"),
    draw: bool = typer.Option(False, "--draw", help="show the chain's last sample instead of the conditional mean"),
    seed: int = typer.Option(0, "--seed", help="seed of random masks and of the sampling"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="resize images \\[default: as in training]"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Fill the hidden region of images by conditional sampling given the observed pixels (Mattei & Frellsen
    2018); writes masked input, completion and original side by side."""
    check_out_file(out, overwrite, (".png",))
    if n < 1:
        raise UsageError(f"-n must be at least 1, got {n}")
    import torch

    from ..api import load_vae as load
    from ..data.kinds import kind_of
    from ..data.masks import observed_mask
    from ..evaluation.figures import save_image_grid

    trained = load(run)
    kind = trained.kind.name
    if not trained.kind.pictures:
        raise UsageError(f"{run} was trained on {kind} data; vaekit inpaint completes images (for tables use "
                         "vaekit impute)")
    ds = trained.load_data(data, **({"image_size": image_size} if image_size else {}))
    if not kind_of(ds.kind).pictures:
        raise UsageError(f"--data {data} holds {ds.kind} data; give images like the training data")
    pool = ds.test_x if ds.test_x is not None else ds.x
    x = pool[:n]
    if tuple(x.shape[1:]) != trained.shape:
        raise UsageError(f"the images are {list(x.shape[1:])} but {run} was trained on {list(trained.shape)}; "
                         "pass --image-size or images like the training data")
    observed = observed_mask(mask, len(x), tuple(x.shape[1:]), seed)
    completed = trained.impute(x, mask=observed, method=method, k=k, steps=steps, seed=seed, draw=draw,
                               passes=passes).clamp(0, 1)
    shown = torch.where(observed, x, torch.full_like(x, 0.5))  # hidden pixels in mid grey
    save_image_grid(torch.stack([shown, completed, x], 1).flatten(0, 1), out, ncol=3)
    hidden = ~observed
    mse = float(((completed - x)[hidden] ** 2).mean()) if hidden.any() else 0.0
    fill = (x * observed).flatten(1).sum(1) / observed.flatten(1).sum(1).clamp_min(1)
    base = torch.where(observed, x, fill.view(-1, 1, 1, 1).expand_as(x))
    mse_base = float(((base - x)[hidden] ** 2).mean()) if hidden.any() else 0.0
    acc = f", acceptance {trained.last_acceptance:.2f}" if trained.last_acceptance is not None else ""
    typer.echo(f"wrote {len(x)} completions to {out} (masked | completion | original; {method}{acc}); "
               f"MSE on the hidden pixels {mse:.4f} (filling with each image's mean visible pixel: {mse_base:.4f})")
