"""``vaekit score``: anomaly scores of data under a trained run: the numbers of :class:`vaekit.AnomalyDetector`,
through ``TrainedVAE.anomaly_scores`` (without importing scikit-learn). Registered on :data:`vaekit.cli.app`;
torch is imported lazily.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from .common import check_out_file, user_errors, app
from ..errors import DataError, UsageError

if TYPE_CHECKING:
    import numpy as np


@app.command()
@user_errors
def score(
    run: Path = typer.Argument(..., help="run directory"),
    data: str = typer.Option(..., "--data", help="data to score (same kind and columns as the training data)"),
    split: str = typer.Option("all", "--split", help="all examples of --data, or its train, validation or test split (split like the run's data)"),
    out: Path = typer.Option(..., "--out", help="FILE.csv: index, score, is_anomaly (and label when known)"),
    method: str = typer.Option("iwae", "--score", help="iwae (log-likelihood), elbo, or recon (reconstruction error)"),
    iwae_k: int = typer.Option(100, "--iwae-k", help="importance samples of the iwae/elbo scores"),
    threshold_quantile: Optional[float] = typer.Option(None, "--threshold-quantile", help="flag what scores below this quantile of the run's validation scores [0.01]"),
    contamination: Optional[float] = typer.Option(None, "--contamination", help="instead: flag this fraction of --data, in (0, 0.5]"),
    normal_label: Optional[str] = typer.Option(None, "--normal-label", help="the class that is normal (others are anomalies) for AUROC/AP"),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="table column holding labels \\[the run's]"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="resize images \\[default: as in training]"),
    seed: int = typer.Option(0, "--seed", help="seed of the shared importance samples"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Anomaly scores of --data (higher = more normal) and a threshold; AUROC and AP when labelled."""
    check_out_file(out, overwrite, (".csv",))
    from .series import is_series_run, series_score

    if is_series_run(run):  # a time series: a score per timestamp (vaekit.cli.series)
        return series_score(run, data, out, iwae_k, threshold_quantile, contamination, label_column, seed,
                            {"--score": method != "iwae", "--split": split != "all",
                             "--normal-label": normal_label is not None, "--image-size": image_size is not None})
    from ..tasks.anomaly import check_score_settings, describe

    check_score_settings(method, iwae_k, "auto" if contamination is None else contamination, threshold_quantile)
    if seed < 0:
        raise UsageError(f"--seed must be 0 or more, got {seed}")
    from ..api import load_vae as load
    from ..errors import RunError
    from ..runs import atomic_write_text

    trained = load(run)  # not the estimator: scikit-learn would add about 1 s to every start (bench/startup.py)
    if trained.model.cond_dim:
        raise RunError(f"{run} is a conditional run; vaekit score takes unconditional runs only")
    kw = {k: v for k, v in (("image_size", image_size), ("label_column", label_column)) if v is not None}
    if split not in ("all", "train", "validation", "test"):
        raise UsageError(f"--split must be all, train, validation or test, got {split!r}")
    ds = _scored_data(trained, data, split, kw)
    x, y, names, flags = _scored_arrays(trained, ds, run, data, method, normal_label)
    scores = trained.anomaly_scores(x, method, iwae_k, seed)  # the same numbers as AnomalyDetector's
    offset, where = _threshold(trained, run, data, scores, method, iwae_k, seed, contamination, threshold_quantile,
                               image_size)
    flagged = scores < offset
    atomic_write_text(out, _scores_csv(scores, flagged, y, names))
    what = data if split == "all" else f"the {split} split of {data}"
    typer.echo(f"scored {len(scores)} examples of {what}: {describe(method, iwae_k, trained.scaler is not None)}")
    typer.echo(f"threshold {offset:.4f} ({where}): {int(flagged.sum())} flagged as anomalies "
               f"({flagged.mean():.1%})")
    if y is not None:
        _echo_ranking(scores, y, flags, names, normal_label)
    typer.echo(f"wrote {out}")


def _scored_data(trained: Any, data: str, split: str, kw: dict) -> Any:
    """``--data`` loaded like the run's data, cut to ``--split`` ("all" joins a built-in's official test set),
    its columns checked against the run's."""
    import torch

    from ..data.kinds import kind_of

    ds = trained.load_data(data, **kw, mapped=split != "all")  # a --mmap run's own data: its cache
    if split != "all":
        part = kind_of(ds.kind).split(ds, trained.config)[("train", "validation", "test").index(split)]
        ds.x, ds.y, ds.test_x, ds.test_y = part.x, part.y, None, None
    elif ds.test_x is not None:  # a built-in's official test set is part of "all"
        ds.x = torch.cat([ds.x, ds.test_x])
        ds.y = None if ds.y is None or ds.test_y is None else torch.cat([ds.y, ds.test_y])
        ds.test_x = ds.test_y = None
    if kind_of(ds.kind).cells:
        trained.check_columns(ds.columns, data)
    return ds


def _scored_arrays(trained: Any, ds: Any, run: Path, data: str, method: str, normal_label: Optional[str]
                   ) -> tuple[np.ndarray, Optional[np.ndarray], list[str], Optional[np.ndarray]]:
    """The flat ``[N, D]`` examples to score, their labels, class names and anomaly flags (None when
    unlabelled or no ``--normal-label``), refusing what cannot be scored before any scoring starts."""
    import torch

    from ..tasks.anomaly import anomaly_labels

    if method == "recon" and any(bool(torch.isnan(ds.x[i: i + 4096]).any()) for i in range(0, len(ds.x), 4096)):
        raise UsageError(f"{data} has {int(torch.isnan(ds.x).any(1).sum())} row(s) with missing cells: score them "
                         f"with --score iwae or elbo (the density of the observed cells), or fill them first "
                         f"(vaekit impute {run} --data {data} --out completed.csv)")
    y = ds.y.numpy() if ds.y is not None else None
    names = ds.classes or []
    if y is None and normal_label is not None:
        raise UsageError(f"--normal-label needs labelled data and {data} has no labels "
                         "(tables: --label-column NAME)")
    flags = anomaly_labels(y, names, normal_label) if y is not None else None  # bad --normal-label: fail now
    x = ds.x.reshape(len(ds.x), -1).numpy()
    if x.shape[1] != math.prod(trained.shape):
        raise DataError(f"{data} has examples of shape {list(ds.x.shape[1:])} but {run} was trained on "
                        f"{list(trained.shape)}; score data like the training data (same --image-size)")
    return x, y, names, flags


def _threshold(trained: Any, run: Path, data: str, scores: np.ndarray, method: str, iwae_k: int, seed: int,
               contamination: Optional[float], threshold_quantile: Optional[float],
               image_size: Optional[int]) -> tuple[float, str]:
    """The score below which an example is flagged, and a phrase saying where it comes from: the
    ``contamination`` quantile of ``scores``, else a quantile of the run's own validation scores."""
    from ..data.kinds import kind_of
    from ..tasks.anomaly import quantile_warning, threshold

    if contamination is not None:
        return threshold(scores, contamination), f"{contamination:g} of the scored examples below it"
    cfg = trained.config
    try:
        ref = trained.load_data(cfg.data, **({"image_size": image_size} if image_size else {}), mapped=True)
    except DataError as err:
        raise DataError(f"the threshold is a quantile of the validation split of the run's data {cfg.data!r}, "
                        f"which cannot be loaded ({str(err).rstrip('.')}); pass --contamination C to "
                        f"threshold on {data} itself") from None
    val = kind_of(ref.kind).split(ref, cfg)[1]
    q = 0.01 if threshold_quantile is None else threshold_quantile
    offset = threshold(trained.anomaly_scores(val.x.reshape(len(val.x), -1).numpy(), method, iwae_k, seed), q)
    where = f"the {q:g}-quantile of the scores of {run}'s {len(val.x)} validation examples"
    note = quantile_warning(len(val.x), q, "validation")
    if note:
        typer.echo(f"warning: {note}", err=True)
    return offset, where


def _scores_csv(scores: np.ndarray, flagged: np.ndarray, y: Optional[np.ndarray], names: list[str]) -> str:
    """The text of the ``--out`` CSV: index, score, is_anomaly (and label when ``y`` is known)."""
    header = ["index", "score", "is_anomaly"] + (["label"] if y is not None else [])
    rows = [",".join(header)]
    for i, s in enumerate(scores):
        row = f"{i},{s:.6f},{int(flagged[i])}"
        if y is not None:
            lab = names[y[i]] if 0 <= y[i] < len(names) else ""
            row += "," + lab.replace(",", ";").replace('"', "'")
        rows.append(row)
    return "\n".join(rows) + "\n"


def _echo_ranking(scores: np.ndarray, y: np.ndarray, flags: Optional[np.ndarray], names: list[str],
                  normal_label: Optional[str]) -> None:
    """Print AUROC and average precision over the labelled examples, or how to get them."""
    from ..tasks.anomaly import ranking_metrics

    known = y >= 0
    if flags is None:
        typer.echo(f"labels have {len(names)} classes; pass --normal-label NAME for AUROC and average precision")
    else:
        m = ranking_metrics(scores[known], flags[known])
        which = f"labels other than {normal_label!r}" if normal_label is not None else "label 1/True"
        typer.echo(f"AUROC {m['auroc']:.4f}, average precision {m['average_precision']:.4f} "
                   f"(anomalies: {which}, {m['n_anomalies']} of {m['n']})")
