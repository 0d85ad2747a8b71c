"""Anomaly scores from a VAE: higher is more normal (scikit-learn's ``score_samples`` convention).

- ``iwae``: the IWAE_k estimate of log p(x) (nats per example; a lower bound in expectation);
- ``elbo``: the k-sample ELBO (nats per example; ≤ IWAE_k);
- ``recon``: minus the squared error of the mean reconstruction at the posterior mean (sum over features).

Sampled scores use common random numbers: every example shares the same k standard-normal draws ε_i
(seeded), so an example's score is a deterministic function of the example (the same alone, in any batch,
in any order) and score differences between examples are not noise between their draws.

Tables are standardized before the model sees them; a density of standardized values differs from the
density of the raw values by the constant log-Jacobian −Σ_j log σ_j. :func:`score_examples` adds it
(``log_det``), so ``iwae``/``elbo`` scores are log-densities of the data in its own units.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import Standardizer
from ..errors import UsageError
from ..evaluation.metrics import importance_bounds, reconstruction_errors
from ..core.vae import VAE

SCORES = ("iwae", "elbo", "recon")
ROWS_PER_CHUNK = 2048  # decoder rows per call (examples × importance samples), as in evaluation.iwae_bound
RECON_BATCH = 256
DEFAULT_QUANTILE = 0.01  # contamination "auto": flag what scores below 1% of held-out normal data


def check_score_settings(score: str, iwae_k: int, contamination: object = "auto",
                         threshold_quantile: float | None = None) -> None:
    """One-line errors for bad anomaly settings (names as in the CLI flags and estimator parameters)."""
    if score not in SCORES:
        raise UsageError(f"score method must be one of {', '.join(SCORES)}, got {score!r}")
    if isinstance(iwae_k, bool) or not isinstance(iwae_k, (int, np.integer)) or not 1 <= iwae_k <= 100_000:
        raise UsageError(f"iwae_k must be an integer between 1 and 100000, got {iwae_k!r}")
    if not (isinstance(contamination, str) and contamination == "auto"):
        if isinstance(contamination, bool) or not isinstance(contamination, (int, float, np.floating)) \
                or not 0.0 < float(contamination) <= 0.5:
            raise UsageError(f"contamination must be 'auto' or a fraction in (0, 0.5], got {contamination!r}")
    if threshold_quantile is not None:
        if isinstance(threshold_quantile, bool) or not isinstance(threshold_quantile, (int, float, np.floating)) \
                or not 0.0 < float(threshold_quantile) < 1.0:
            raise UsageError(f"threshold_quantile must be a fraction in (0, 1), got {threshold_quantile!r}")
        if contamination != "auto":
            raise UsageError("give contamination or threshold_quantile, not both (contamination thresholds "
                             "the fitted data, threshold_quantile the held-out validation scores)")


def log_det(scaler: Standardizer | None, mask: torch.Tensor | None = None) -> float | np.ndarray:
    """log |d x_std / d x| = −Σ_j log σ_j of a table's standardization (0 without one); with ``mask``
    (1 = observed, ``[n, D]``) per row over the observed columns only."""
    if scaler is None:
        return 0.0
    logs = scaler.std.double().log()
    if mask is None:
        return -float(logs.sum())
    return -(mask.double() * logs).sum(1).numpy()


def common_noise(k: int, latent_dim: int, seed: int) -> torch.Tensor:
    """``[k, latent_dim]`` standard-normal draws shared by every scored example."""
    return torch.randn(k, latent_dim, generator=torch.Generator().manual_seed(int(seed)))


def score_examples(model: VAE, x: torch.Tensor, score: str = "iwae", k: int = 100, seed: int = 0,
                   log_det: float | np.ndarray = 0.0, c: torch.Tensor | None = None,
                   mask: torch.Tensor | None = None) -> np.ndarray:
    """Per-example scores (float64, higher = more normal) of ``x`` in model units; see the module doc.

    With ``mask`` (1 = observed; a ``--missing mask`` run's incomplete rows) the iwae/elbo scores estimate
    log p(x_obs), the density of the observed cells: rows with fewer observed cells are not penalised for
    the missing ones, so compare like with like.

    The rows are padded to whole blocks, so every network call has the same number of rows whatever
    ``len(x)`` is: BLAS picks its kernel by matrix size, and a float32 score would otherwise differ in the
    6th digit between scoring an example alone and in a large batch.
    """
    check_score_settings(score, k)
    if mask is not None and score == "recon":
        raise UsageError("rows with missing cells can be scored by iwae or elbo (the density of the observed "
                         "cells), not recon; use --score iwae or impute the rows first")
    n = len(x)
    rows = ROWS_PER_CHUNK if score != "recon" else RECON_BATCH
    block = max(1, rows // min(k, rows)) if score != "recon" else rows
    whole, pad = n - n % block, (-n) % block
    parts = [[_rows(t, 0, whole) for t in (x, c, mask)]] if whole or not pad else []
    if pad:  # the last block alone, padded: the whole blocks are scored in place (a mapped split: no copy)
        parts.append([None if t is None else torch.cat([t[whole:], t[:1].expand(pad, *t.shape[1:])])
                      for t in (x, c, mask)])
    if score == "recon":
        return -torch.cat([reconstruction_errors(model, xp, batch_size=rows, c=cp)
                           for xp, cp, _ in parts])[:n].double().numpy()
    noise = common_noise(k, model.latent_dim, seed)
    bounds = [importance_bounds(model, xp, k, rows_per_chunk=rows, c=cp, noise=noise, mask=mp)
              for xp, cp, mp in parts]
    return torch.cat([b[0 if score == "iwae" else 1] for b in bounds])[:n].double().numpy() + log_det


def _rows(t: torch.Tensor | None, a: int, b: int) -> torch.Tensor | None:
    return None if t is None else t[a:b]


def describe(score: str, k: int, standardized: bool) -> str:
    """What the numbers are, for CSV headers and messages."""
    if score == "recon":
        unit = "standardized columns" if standardized else "data units"
        return f"minus squared reconstruction error ({unit}, summed over features)"
    what = f"IWAE (k={k}) estimate of log p(x)" if score == "iwae" else f"ELBO (k={k} samples)"
    return f"{what}, nats per example" + (" (raw units: log-Jacobian of the standardization added)"
                                          if standardized else "")


def threshold(scores: np.ndarray, fraction: float) -> float:
    """The score below which ``fraction`` of ``scores`` lie (linear interpolation, like sklearn's offset_)."""
    return float(np.percentile(np.asarray(scores, dtype=np.float64), 100.0 * fraction))


def rows_for_quantile(q: float) -> int:
    """Fewest rows whose empirical q-quantile lies among them: with fewer than 1/min(q, 1−q) rows the
    q-quantile falls beyond every row (np.percentile then returns about the smallest or largest score), so a
    threshold from it says more about those few rows than about the data (10 validation rows at q = 0.01
    flagged 42% of a table)."""
    return int(np.ceil(1.0 / min(q, 1.0 - q) - 1e-9))


def quantile_warning(n: int, q: float, what: str = "held-out",
                     remedy: str = "use more validation rows (--val-fraction when training), a larger "
                                   "--threshold-quantile, or --contamination") -> str | None:
    """A warning when a q-quantile threshold comes from too few rows (None when ``n`` is enough).

    Below :func:`rows_for_quantile` (q) rows the threshold is about the most extreme of those few scores, and
    it flags an unpredictable share of new data. The threshold is kept (results of existing runs do not
    change); the warning says how many rows there were, how many are needed, and what to do instead.
    """
    need = rows_for_quantile(q)
    if n >= need:
        return None
    return (f"the anomaly threshold is the {q:g}-quantile of only {n} {what} rows, fewer than the {need} it needs "
            f"(with fewer it lies beyond all of them), so the share of data it flags is unreliable; {remedy}")


def ranking_metrics(scores: np.ndarray, is_anomaly: np.ndarray) -> dict[str, float]:
    """AUROC and average precision of ranking anomalies first (lowest score first).

    Computed here (the same definitions as scikit-learn's ``roc_auc_score`` and ``average_precision_score``,
    ties included; a test compares them) so that ``vaekit score`` does not import scikit-learn (~1 s).
    """
    a = np.asarray(is_anomaly, dtype=bool)
    if a.all() or not a.any():
        raise UsageError("AUROC needs both normal and anomalous examples among the labelled ones; "
                         "check the labels (or --normal-label)")
    s = -np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(a.sum()), int((~a).sum())
    # AUROC = Mann-Whitney U / (n_pos n_neg), from ranks with ties averaged
    order = np.argsort(s, kind="mergesort")
    ranked = s[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ranked)) + 1]
    ends = np.r_[starts[1:], len(s)]
    ranks = np.empty(len(s))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    auroc = (ranks[a].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    # AP = Σ (R_k − R_{k−1}) P_k over the distinct thresholds, highest first
    desc = order[::-1]
    hits = a[desc]
    last = np.r_[np.flatnonzero(np.diff(s[desc])), len(s) - 1]
    tps = np.cumsum(hits)[last]
    precision = tps / (last + 1.0)
    recall = tps / n_pos
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return {"auroc": float(auroc), "average_precision": ap, "n_anomalies": n_pos, "n": int(len(a))}


def anomaly_labels(y: np.ndarray, classes: list[str] | None, normal_label: str | None) -> np.ndarray | None:
    """Boolean anomaly flags from class labels, or None when the labels do not say which class is normal.

    With ``normal_label`` (a class name, or an integer index into ``classes``), every other class is an
    anomaly. Without it, two-class labels named 0/1 or False/True mean 1/True = anomaly; anything else
    returns None. Labels of −1 (unknown) come back as flags of the −1 rows too: callers drop them.
    """
    names = list(classes or [])
    if normal_label is not None:
        if normal_label in names:
            idx = names.index(normal_label)
        else:
            try:
                idx = int(normal_label)
            except ValueError:
                idx = -1
            if not 0 <= idx < len(names):
                raise UsageError(f"--normal-label {normal_label!r} is not a class of the data "
                                 f"(classes: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''})")
        return np.asarray(y) != idx
    if sorted(names) in (["0", "1"], ["False", "True"], ["false", "true"]):
        return np.asarray(y) == names.index(sorted(names)[1])
    return None


__all__ = ["SCORES", "DEFAULT_QUANTILE", "check_score_settings", "log_det", "common_noise", "score_examples",
           "describe", "threshold", "ranking_metrics", "anomaly_labels", "rows_for_quantile", "quantile_warning"]
