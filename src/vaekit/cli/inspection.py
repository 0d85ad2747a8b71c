"""Commands that look into a trained run: evaluate, report, interpolate, traverse, latent-map, probe, classify.

Registered on :data:`vaekit.cli.app` when ``vaekit.cli`` is imported (kept apart so each file stays one
screenful of concerns); the same conventions hold: one-line errors, exit code 2, torch imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import check_out_file, int_list, user_condition, user_errors, write_array, app
from .sequences import is_sequence_run, sequence_evaluate, sequence_interpolate
from ..errors import UsageError

def _stderr_is_terminal() -> bool:
    """Progress bars only for a person watching (not in pipes, logs or tests)."""
    import sys

    return sys.stderr.isatty()


@app.command()
@user_errors
def report(
    run: Path = typer.Argument(..., help="run directory"),
    data: Optional[str] = typer.Option(None, "--data", help="data to evaluate \\[default: the run's own data]"),
    split: str = typer.Option("test", "--split", help="test, validation or train"),
    iwae_k: int = typer.Option(100, "--iwae-k", help="importance samples of the IWAE bound (0 skips it)"),
) -> None:
    """Write RUN/report.html: one self-contained page with metrics, curves and pictures."""
    from .. import api

    path = api.report(run, data=data, split=split, iwae_k=iwae_k, progress=_stderr_is_terminal())
    typer.echo(f"wrote {path}")


def _index(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{flag} takes the index of an example (an integer), got {text!r}") from None


@app.command()
@user_errors
def interpolate(
    run: Path = typer.Argument(..., help="run directory"),
    data: Optional[str] = typer.Option(None, "--data", help="data holding the two examples (not for seq-vae runs)"),
    from_: str = typer.Option(..., "--from", help="index of the first example (audio runs: a clip; seq-vae: a string)"),
    to: str = typer.Option(..., "--to", help="index of the second example (audio runs: a clip; seq-vae: a string)"),
    steps: int = typer.Option(10, "--steps", help="points on the path, ends included"),
    method: str = typer.Option("linear", "--method", help="linear, or spherical (for Gaussian latents)"),
    out: Optional[Path] = typer.Option(None, "--out", help="FILE.png or FILE.npy (seq-vae: optional FILE.smi/.txt)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Decode the path between the latent codes (posterior means) of two examples (seq-vae: two strings; the
    decoded path is printed, each string once)."""
    if is_sequence_run(run):
        return sequence_interpolate(run, from_, to, steps, out, overwrite,
                                    **{"--data": data, "--method": None if method == "linear" else method})
    if out is None:
        raise UsageError("interpolate needs --out FILE for this run")
    from ..tasks.audio import is_audio_run

    if is_audio_run(run):  # two clips in, one .wav morphing from the first to the second
        from .audio import audio_interpolate

        return audio_interpolate(run, from_, to, out, overwrite)
    if data is None:
        raise UsageError("interpolate needs --data, the data holding the two examples")
    from_, to = _index(from_, "--from"), _index(to, "--to")
    check_out_file(out, overwrite, (".png", ".npy"))
    if method not in ("linear", "spherical"):
        raise UsageError(f"--method must be linear or spherical, got {method!r}")
    if not 2 <= steps <= 1000:
        raise UsageError(f"--steps must be between 2 and 1000, got {steps}")
    from ..api import load_vae as load
    from ..evaluation.latent import interpolate as _interpolate

    trained = load(run)
    ds = trained.load_data(data)
    for flag, i in (("--from", from_), ("--to", to)):
        if not 0 <= i < len(ds.x):
            raise UsageError(f"{flag} {i} is out of range: {data} has {len(ds.x)} examples (0..{len(ds.x) - 1})")
    x = trained.to_model_units(ds.x[[from_, to]])
    path = trained.to_data_units(_interpolate(trained.model, x[0], x[1], steps, method))
    if out.suffix.lower() == ".png" and trained.kind.pictures:
        import torch

        from ..evaluation.figures import save_image_grid

        save_image_grid(torch.cat([ds.x[[from_]], path, ds.x[[to]]]), out, ncol=steps + 2)
    else:
        write_array(path, out, ds.kind)
    typer.echo(f"wrote a {steps}-step {method} interpolation from example {from_} to {to} to {out}")


@app.command()
@user_errors
def traverse(
    run: Path = typer.Argument(..., help="run directory"),
    out: Path = typer.Option(..., "--out", help="FILE.png or FILE.npy"),
    dims: Optional[str] = typer.Option(None, "--dims", help="latent dimensions to sweep, e.g. 0,3,5 \\[all, at most 32]"),
    steps: int = typer.Option(9, "--steps", help="points per sweep"),
    span: float = typer.Option(3.0, "--span", help="sweep over ±span prior standard deviations"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
    label: Optional[str] = typer.Option(None, "--label", help="class to decode under (conditional runs)"),
    attributes: Optional[str] = typer.Option(None, "--attributes", help='attribute values, e.g. "a=0.5,b=1" (conditional runs)'),
) -> None:
    """Sweep each latent dimension with the others at 0: one row of decoded means per dimension (conditional runs:
    under the --label or --attributes given)."""
    check_out_file(out, overwrite, (".png", ".npy"))
    from ..api import load_vae as load
    from ..evaluation.latent import traversal

    trained = load(run)
    L = trained.latent_dim
    chosen = int_list(dims, "--dims") if dims else list(range(min(L, 32)))
    bad = [d for d in chosen if not 0 <= d < L]
    if bad or not chosen:
        raise UsageError(f"--dims must name latent dimensions between 0 and {L - 1}, got {dims!r}")
    if not 2 <= steps <= 100 or not 0 < span <= 100:
        raise UsageError("--steps must be between 2 and 100 and --span between 0 and 100")
    c = user_condition(trained, label, attributes, 1)
    grid = trained.to_data_units(traversal(trained.model, dims=chosen, steps=steps, span=span, c=c))
    if out.suffix.lower() == ".png":
        from ..evaluation.figures import save_image_grid

        if not trained.kind.pictures:
            raise UsageError("PNG output needs image data; use .npy")
        save_image_grid(grid, out, ncol=steps)
    else:
        write_array(grid, out, "array")
    typer.echo(f"wrote traversals of dimensions {chosen} to {out}")


@app.command("latent-map")
@user_errors
def latent_map(
    run: Path = typer.Argument(..., help="run directory"),
    data: str = typer.Option(..., "--data", help="data to map"),
    out: Path = typer.Option(..., "--out", help="FILE.png"),
    method: str = typer.Option("pca", "--method", help="pca or tsne (ignored for 2-D latents)"),
    limit: int = typer.Option(5000, "--limit", help="map at most this many examples"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Scatter plot of the latent means of data in 2-D, coloured by label when there are labels."""
    check_out_file(out, overwrite, (".png",))
    if method not in ("pca", "tsne"):
        raise UsageError(f"--method must be pca or tsne, got {method!r}")
    if limit < 3:
        raise UsageError(f"--limit must be at least 3, got {limit}")
    from ..api import load_vae as load
    from ..evaluation.report import latent_map as _latent_map
    from ..runs import atomic_write_bytes

    trained = load(run)
    ds = trained.load_data(data)
    x, y = ds.x[:limit], (ds.y[:limit] if ds.y is not None else None)
    png = _latent_map(trained.encode(x), y, ds.classes, method)
    atomic_write_bytes(out, png)
    typer.echo(f"wrote the latent map of {len(x)} examples to {out}")


@app.command()
@user_errors
def classify(
    run: Path = typer.Argument(..., help="run directory of a --semi-supervised run"),
    data: str = typer.Option(..., "--data", help="data to classify"),
    out: Path = typer.Option(..., "--out", help="predictions.csv"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Predicted class and class probabilities q(y|x) for every example (semi-supervised runs)."""
    check_out_file(out, overwrite, (".csv",))
    import torch

    from ..api import load_vae as load
    from ..runs import atomic_write_text

    trained = load(run)
    ds = trained.load_data(data)
    probs = trained.predict_proba(ds.x)
    classes = trained.conditioning.classes
    pred = probs.argmax(1)
    lines = ["index,predicted," + ",".join(f"p_{c}" for c in classes)]
    lines += [f"{i},{classes[int(p)]}," + ",".join(f"{v:.6g}" for v in row)
              for i, (p, row) in enumerate(zip(pred.tolist(), probs.tolist()))]
    atomic_write_text(out, "\n".join(lines) + "\n")
    msg = f"wrote predictions for {len(pred)} examples to {out}"
    if ds.y is not None and ds.classes and bool((ds.y >= 0).any()):
        known = ds.y >= 0  # -1 marks an unknown label
        truth = torch.tensor([classes.index(ds.classes[v]) if ds.classes[v] in classes else -1
                              for v in ds.y[known].tolist()])
        msg += f"; accuracy {float((truth == pred[known]).float().mean()):.4f} on {int(known.sum())} labelled examples"
    typer.echo(msg)


@app.command()
@user_errors
def probe(
    run: Path = typer.Argument(..., help="run directory (an unconditional VAE)"),
    data: Optional[str] = typer.Option(None, "--data", help="labelled data \\[default: the run's own data]"),
    labeled: int = typer.Option(..., "--labeled", help="number of labelled training examples the classifiers get"),
    seed: int = typer.Option(0, "--seed", help="which labelled examples are drawn"),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
) -> None:
    """Logistic regression on latent means vs on raw inputs, with the same N labels: test accuracy."""
    from ..api import load_vae as load
    from ..tasks.probe import linear_probe
    from ..runs import json_text

    trained = load(run)
    unsaved = _unsaved_note(run, "probe.json")
    res = linear_probe(trained, trained.load_data(data or trained.config.data), labeled, seed)
    _save_or_say(run, "probe.json", res, unsaved)
    if as_json:
        typer.echo(json_text(res, indent=2))
        return
    typer.echo(f"linear probe with {res['labeled']} labels, {res['n_test']} test examples, {res['classes']} classes:")
    typer.echo(f"  latent means ({res['latent_dim']} dims): accuracy {res['accuracy_latent']:.3f}")
    typer.echo(f"  raw inputs:                  accuracy {res['accuracy_raw']:.3f}")


@app.command()
@user_errors
def evaluate(
    run: Path = typer.Argument(..., help="run directory"),
    data: Optional[str] = typer.Option(None, "--data", help="data to evaluate \\[default: the run's own data]"),
    split: str = typer.Option("test", "--split", help="test, validation or train"),
    iwae_k: int = typer.Option(100, "--iwae-k", help="importance samples of the IWAE bound (0 skips it)"),
    seed: int = typer.Option(0, "--seed", help="seed of the Monte-Carlo estimates"),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    quality: bool = typer.Option(True, "--quality/--no-quality", help="image runs: FD and precision/recall of "
                                 "samples in the features of vaekit's classifier for the dataset (trained once, cached)"),
    sampler: str = typer.Option("prior", "--sampler", help="sampler of --quality's samples: prior, vamp or gmm:K"),
    samples: int = typer.Option(1000, "--samples", help="seq-vae runs of molecules: molecules sampled for the "
                                "MOSES metrics (0 skips them)"),
    fcd: bool = typer.Option(False, "--fcd/--no-fcd", help="seq-vae runs of molecules: add FCD/Test (about 20 ms "
                             "per molecule on a CPU)"),
) -> None:
    """Honest numbers for a trained model: -ELBO, IWAE log-likelihood bound, bits/dim, active units, sample quality."""
    from .. import api
    from ..runs import json_text
    from .series import is_series_run, series_evaluate

    if is_series_run(run):  # a time series: rolling-origin forecast metrics or −ELBO per window (cli/series.py)
        return series_evaluate(run, data, split, seed, as_json)
    if is_sequence_run(run):
        return sequence_evaluate(run, data, split, seed, as_json, _unsaved_note, _save_or_say, samples, fcd)
    trained = api.load(run)
    from ..families import FAMILIES, family_name

    if not FAMILIES[family_name(trained.config)].example_model:  # recommendation: ranking metrics
        unsaved = _unsaved_note(run, "evaluation.json")
        res = api.evaluate(trained, data, split=split)
        _save_or_say(run, "evaluation.json", res, unsaved)
        typer.echo(json_text(res, indent=2) if as_json else
                   f"{res['split']} users of {res['data']} ({res['users']} scored): NDCG@100 {res['ndcg@100']:.4f}, "
                   f"Recall@20 {res['recall@20']:.4f}, Recall@50 {res['recall@50']:.4f}, coverage of the top 20 "
                   f"{res['coverage@20']:.3f}")
        return
    trained = api.load_vae(run)
    unsaved = _unsaved_note(run, "evaluation.json")  # said before computing, printed whatever happens
    if sampler.strip().lower() != "prior":
        from ..samplers import parse_sampler

        parse_sampler(sampler)
    res = api.evaluate(trained, data, split=split, iwae_k=iwae_k, seed=seed, progress=_stderr_is_terminal())
    if quality:  # image runs (vaekit.quality_api); None for others
        from ..quality_api import run_quality

        q = run_quality(trained, data, split, sampler, seed)
        if q is not None:
            res["sample_quality"] = q
    _save_or_say(run, "evaluation.json", res, unsaved)
    if as_json:
        typer.echo(json_text(res, indent=2))
        return
    _print_evaluation(res)
    if "sample_quality" in res:
        from ..quality_api import quality_lines

        typer.echo("\n".join(quality_lines(res["sample_quality"])))


def _unsaved_note(run: Path, name: str) -> str | None:
    """Checked before a long computation: why RUN/NAME cannot be saved (said at once on stderr), or None.
    The results are printed either way, so a read-only or busy run loses nothing."""
    from ..runs import write_problem

    problem = write_problem(run)
    if problem is not None:
        problem = f"note: {name} will not be saved ({problem}); the results are printed only"
        typer.echo(problem, err=True)
    return problem


def _save_or_say(run: Path, name: str, res: dict, unsaved: str | None) -> None:
    """Save RUN/NAME under the run's lock unless :func:`_unsaved_note` said it cannot be; say when a late
    failure (a disk that filled up, a writer that started meanwhile) keeps it from being saved."""
    from ..runs import save_json_into_run

    if unsaved is None:
        problem = save_json_into_run(run, name, res)
        if problem is not None:
            typer.echo(f"note: {name} was not saved ({problem}); the results are printed only", err=True)


def _print_evaluation(res: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"{res['data']} ({res['split']} split, {res['n']} examples)", show_header=True)
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("unit / estimator")
    of = res.get("likelihood_of", "p(x)")  # p(x|y) for conditional runs: the bounds are of the label-given density
    given = f" given {of[4:-1]}" if "|" in of else ""
    t.add_row(f"-ELBO{given}", f"{res['neg_elbo']:.3f}",
              f"nats per example, {res.get('elbo_estimator', 'ELBO (1 posterior sample)')}")
    t.add_row("  reconstruction NLL", f"{res['recon_nll']:.3f}", "nats per example")
    t.add_row("  KL(q(z|x) || p(z))", f"{res['kl']:.3f}", "nats per example")
    if "neg_iwae" in res:
        part = f", {res['iwae_n']} of {res['n']} examples" if res.get("iwae_n", res["n"]) != res["n"] else ""
        t.add_row(f"-log {of} <= -IWAE", f"{res['neg_iwae']:.3f}", f"nats per example, IWAE k={res['iwae_k']}{part}")
    t.add_row(f"bits/dim{given}", f"{res['bits_per_dim']:.4f}", f"from {res['bound']}, {res['features']} dims")
    if "neg_iwae_marginal" in res:
        t.add_row("-log p(x) <= (unconditional)", f"{res['neg_iwae_marginal']:.3f}",
                  f"nats per example, {res['marginal_estimator']}")
        t.add_row("bits/dim (unconditional)", f"{res['bits_per_dim_marginal']:.4f}", "from the bound above")
    t.add_row("active units", f"{res['active_units']} / {res['latent_dim']}", escape("Var_x E[z_u|x] > 0.01"))
    t.add_row("reconstruction MSE", f"{res['mse']:.5f}", "per feature")
    if "bce" in res:
        t.add_row("reconstruction BCE", f"{res['bce']:.3f}", "nats per example")
    con = Console()
    con.print(t)
    kl = ", ".join(f"{v:.2f}" for v in res["kl_per_dim"])
    con.print(f"KL per latent dimension (nats): {kl}", highlight=False)
    for w in res["warnings"]:
        con.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)
