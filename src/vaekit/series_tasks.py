"""What a ``series-vae`` run does with a series: per-timestamp anomaly scores and gap filling.

- **Scores** (:func:`step_scores`): every window of ``context`` steps (stride 1) is encoded; for each step t
  of the window, log p(x_t | window) ≈ log mean_k p(x_t | z_k) with z_k ~ q(z | window) (the reconstruction
  probability of An & Cho 2015, as Donut scores a point), summed over the observed targets, plus the scaler's
  log-Jacobian so it is a log-density in the data's units. A step lies in up to ``context`` windows; its score
  is the mean of theirs. Higher = more normal; missing steps get no score. The k draws of ε are shared by
  every window (common random numbers), so a score does not depend on which other steps were scored.
- **Gaps** (:func:`impute_series`): each window holding a missing step gets the importance-weighted
  conditional mean of its missing entries (weights p(x_obs | z) p(z) / q(z | x̃), as completion does for
  tables; ``passes`` refill the encoder's input with the last estimate); a step's estimate is the mean over
  the windows holding it. Observed values are kept as they are.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from .families.series import gaussian_nll
from .series_api import series_scalers
from .series_prep import covariates, model_units


def sub_series(sd: Any, a: int, b: int) -> Any:
    """Steps [a, b) of a series (a period)."""
    lab = None if sd.labels is None else sd.labels[a:b]
    return replace(sd, times=sd.times[a:b], values=sd.values[a:b], known=sd.known[a:b], calendar=sd.calendar[a:b],
                   labels=lab)


def _batch(k: int, length: int) -> int:
    """Windows per decoder call: k × windows × steps at most 2¹⁸ (the conv activations: ~32 MB per channel 32)."""
    return max(1, min(256, (1 << 18) // (k * length)))


def _windows(trained: Any, sd: Any):
    scaler, cov_scaler = series_scalers(trained)
    x, mask = model_units(sd, scaler)
    c = covariates(sd, cov_scaler)
    L = trained.config.context
    if len(x) < L:
        from .errors import DataError

        raise DataError(f"the series has {len(x)} steps, fewer than the run's --context of {L}; give a longer series")
    unf = lambda t: None if t is None else t.unfold(0, L, 1).transpose(1, 2)  # noqa: E731
    return unf(x), unf(mask), unf(c), scaler


@torch.no_grad()
def step_scores(trained: Any, sd: Any, k: int = 100, seed: int = 0, batch: int | None = None) -> np.ndarray:
    """[T] per-step log-densities (nats, data units; NaN where every target is missing): see the module."""
    model, dev = trained.model, trained.device
    xw, mw, cw, scaler = _windows(trained, sd)
    n, L = xw.shape[0], xw.shape[1]
    batch = batch or _batch(k, L)
    eps = torch.randn((k, model.latent_dim), generator=torch.Generator().manual_seed(seed)).to(dev)
    total = torch.zeros(len(sd.times), dtype=torch.float64)
    count = torch.zeros(len(sd.times), dtype=torch.float64)
    log_jac = -torch.log(scaler.std).to(dev)  # per target
    for i in range(0, n, batch):
        x, m = xw[i:i + batch].to(dev), mw[i:i + batch].to(dev)
        c = None if cw is None else cw[i:i + batch].to(dev)
        B = len(x)
        mu, logvar = model.posterior(x, m, c)
        z = (mu[None] + eps[:, None] * (0.5 * logvar).exp()[None]).reshape(k * B, -1)
        rep = None if c is None else c.repeat(k, 1, 1)
        mean, lv = model.decoder(z, rep)
        logp = -gaussian_nll(x.repeat(k, 1, 1), mean, lv, None).view(k, B, L, -1)
        logp = ((logp + log_jac) * m[None]).sum(-1)  # [k, B, L]: observed targets of each step
        s = (torch.logsumexp(logp, 0) - math.log(k)).double().cpu()  # [B, L]
        steps = (torch.arange(i, i + B)[:, None] + torch.arange(L)[None]).reshape(-1)
        total.index_add_(0, steps, s.reshape(-1))
        count.index_add_(0, steps, torch.ones(B * L, dtype=torch.float64))
    out = (total / count.clamp(min=1)).numpy()
    out[np.isnan(sd.values).all(1)] = np.nan
    return out


@torch.no_grad()
def impute_series(trained: Any, sd: Any, k: int = 100, passes: int = 1, seed: int = 0,
                  batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(values [T, D] with missing entries filled (data units), the missing mask [T, D]): see the module."""
    model, dev = trained.model, trained.device
    xw, mw, cw, scaler = _windows(trained, sd)
    L, D = xw.shape[1], xw.shape[2]
    batch = batch or _batch(k, L)
    missing = np.isnan(sd.values)
    has = torch.from_numpy(missing.any(1))
    idx = torch.nonzero(has.unfold(0, L, 1).any(1)).flatten()  # windows holding a missing step
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(len(sd.times), D, dtype=torch.float64)
    count = torch.zeros(len(sd.times), 1, dtype=torch.float64)
    for i in range(0, len(idx), batch):
        w = idx[i:i + batch]
        x, m = xw[w].to(dev), mw[w].to(dev)
        c = None if cw is None else cw[w].to(dev)
        B = len(x)
        rep = None if c is None else c.repeat(k, 1, 1)
        est = x
        for _ in range(max(passes, 1)):
            mu, logvar = model.posterior(est, m, c)
            std = (0.5 * logvar).exp()
            e = torch.randn((k, B, mu.shape[1]), generator=gen).to(dev)
            z = mu[None] + e * std[None]
            mean, lv = model.decoder(z.reshape(k * B, -1), rep)
            mean, lv = mean.view(k, B, L, D), lv.view(k, B, L, D)
            logpx = -gaussian_nll(x[None], mean, lv, m[None]).sum((2, 3))
            logpz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
            logq = -0.5 * (e.pow(2) + math.log(2 * math.pi)).sum(-1) - torch.log(std).sum(-1)[None]
            wts = torch.softmax(logpx + logpz - logq, 0)  # [k, B]
            fill = (wts[..., None, None] * mean).sum(0)
            est = torch.where(m > 0, x, fill)
        steps = (w[:, None] + torch.arange(L)[None]).reshape(-1)
        total.index_add_(0, steps, est.double().cpu().reshape(-1, D))
        count.index_add_(0, steps, torch.ones(B * L, 1, dtype=torch.float64))
    filled = scaler.inverse_transform((total / count.clamp(min=1)).float()).double().numpy()
    return np.where(missing, filled, sd.values), missing
