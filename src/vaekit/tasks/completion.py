"""Completing missing entries with a trained VAE: tables (imputation) and images (inpainting) alike.

All functions take a :class:`~vaekit.model.VAE`, data ``x`` in model units (standardized tables, images in
[0, 1]) with a finite fill value in its missing entries (what the encoder sees), and ``mask`` of the same
shape, 1 = observed, 0 = missing. They return x with the missing entries completed; observed entries are
returned as given.

- :func:`iw_conditional_mean`: E[x_miss | x_obs] by self-normalised importance sampling (MIWAE, Mattei &
  Frellsen 2019): z_k ~ q(z|x̃), w_k ∝ p(x_obs|z_k) p(z_k) / q(z_k|x̃), E ≈ Σ_k w_k E[x_miss|z_k].
- :func:`pseudo_gibbs`: Rezende et al. (2014): alternate z ~ q(z|x̃), x_miss ~ p(x_miss|z).
- :func:`metropolis_within_gibbs`: Mattei & Frellsen (2018): as pseudo-Gibbs, but the draw of z is a
  Metropolis–Hastings step with q(z|x̃) as the proposal, so the chain targets p(z, x_miss | x_obs) exactly.

The Gibbs samplers return the average of E[x_miss|z_t] over the kept steps (a Rao–Blackwellised estimate of
the conditional mean) and, with ``return_draw``, also the last draw of x_miss: a sample, not an average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.inference import chunking, draw, in_eval_mode, log_normal_std, log_weights, prior_log_prob
from ..core.vae import VAE


@dataclass
class Completion:
    """A completed batch: ``mean`` (the conditional-mean estimate), optionally ``draw`` (one sample of the
    missing entries), and the Metropolis acceptance rate (MwG only)."""

    mean: torch.Tensor
    draw: torch.Tensor | None = None
    acceptance: float | None = None


def _check(model: VAE, x: torch.Tensor, mask: torch.Tensor) -> None:
    if model.cond_dim:
        raise ValueError("completion needs an unconditional VAE")
    if tuple(x.shape[1:]) != model.shape or mask.shape != x.shape:
        raise ValueError(f"x and mask must both have shape [N, {', '.join(map(str, model.shape))}]; "
                         f"got {list(x.shape)} and {list(mask.shape)}")


def _randn(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator).to(like.device, like.dtype)


@in_eval_mode
def iw_conditional_mean(model: VAE, x: torch.Tensor, mask: torch.Tensor, k: int = 1000,
                        rows_per_chunk: int = 4096, generator: torch.Generator | None = None,
                        passes: int = 1) -> Completion:
    """E[x_miss | x_obs] ≈ Σ_k w_k E[x_miss | z_k], w ∝ p(x_obs|z_k) p(z_k) / q(z_k | x̃) (self-normalised).

    Examples and importance samples are chunked together (about ``rows_per_chunk`` decoder rows per call),
    so memory is bounded for any ``k``. With ``passes`` > 1 the estimate is refined: each pass fills x̃'s
    missing entries with the previous estimate, so the proposal q(z | x̃) no longer sees an arbitrary fill
    (a zero-filled hole in an image pulls q towards dark images). Every pass is a valid importance-sampling
    estimate, since the weights use the density of the proposal actually drawn from.
    """
    _check(model, x, mask)
    if k < 1 or passes < 1:
        raise ValueError(f"k and passes must be at least 1, got {k} and {passes}")
    current = x
    for _ in range(passes):
        current = _iw_pass(model, current, mask, k, rows_per_chunk, generator)
    return Completion(mean=current)


def _iw_pass(model: VAE, x: torch.Tensor, mask: torch.Tensor, k: int, rows_per_chunk: int,
             generator: torch.Generator | None) -> torch.Tensor:
    dev = next(model.parameters()).device
    n_ex, s_chunk = chunking(len(x), k, rows_per_chunk)
    out = []
    for i in range(0, len(x), n_ex):
        xb, mb = x[i: i + n_ex].to(dev), mask[i: i + n_ex].to(dev, x.dtype)
        b = len(xb)
        mu, logvar = model.posterior_params(xb)
        top = torch.full((b,), -math.inf, device=dev)  # running max of log w
        total = torch.zeros(b, device=dev)  # Σ exp(log w - top)
        acc = torch.zeros_like(xb)  # Σ exp(log w - top) E[x|z]
        for j in range(0, k, s_chunk):
            s = min(s_chunk, k - j)
            z, log_q = draw(mu, logvar, s, generator=generator)
            log_w, _, params = log_weights(model, xb, z, log_q, None, mb)
            new_top = torch.maximum(top, log_w.max(0).values)
            scale = torch.exp(top - new_top)
            w = torch.exp(log_w - new_top)  # [s, b]
            means = model.likelihood.mean(params)
            shape = (s, b) + (1,) * (xb.dim() - 1)
            acc = acc * scale.view(b, *shape[2:]) + (w.view(shape) * means).sum(0)
            total = total * scale + w.sum(0)
            top = new_top
        est = acc / total.view(b, *((1,) * (xb.dim() - 1)))
        out.append(torch.where(mb.bool(), xb, est).cpu())
    return torch.cat(out)


def _chain(model: VAE, x: torch.Tensor, mask: torch.Tensor, steps: int, burn_in: int | None,
           generator: torch.Generator | None, metropolis: bool, batch_size: int,
           init: torch.Tensor | None = None) -> Completion:
    _check(model, x, mask)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    burn = steps // 2 if burn_in is None else burn_in
    if not 0 <= burn < steps:
        raise ValueError(f"burn_in must be between 0 and steps - 1, got {burn_in}")
    dev = next(model.parameters()).device
    lik = model.likelihood
    means, draws, accepted, proposed = [], [], 0.0, 0
    for i in range(0, len(x), batch_size):
        xo, mb = x[i: i + batch_size].to(dev), mask[i: i + batch_size].to(dev, x.dtype)
        obs = mb.bool()
        cur = xo.clone() if init is None else torch.where(obs, xo, init[i: i + batch_size].to(dev))
        z_cur = params_cur = log_joint_cur = None
        total = torch.zeros_like(xo)
        for t in range(steps):
            mu, logvar = model.posterior_params(cur)
            eps = _randn(mu.shape, generator, mu)
            z_new = mu + eps * (0.5 * logvar).exp()
            params_new = model.decoder_params(z_new)
            if metropolis and z_cur is not None:
                # independence MH step for z given the current x̃ = (x_obs, x_miss), proposal q(z | x̃)
                log_q_new = log_normal_std(eps, logvar)
                eps_cur = (z_cur - mu) * (-0.5 * logvar).exp()
                log_q_cur = log_normal_std(eps_cur, logvar)
                log_joint_new = -lik.nll(params_new, cur) + prior_log_prob(model, z_new)
                log_joint_cur = -lik.nll(params_cur, cur) + prior_log_prob(model, z_cur)
                log_rho = (log_joint_new - log_q_new) - (log_joint_cur - log_q_cur)
                u = torch.rand(len(xo), generator=generator).to(dev)
                accept = torch.log(u.clamp_min(1e-30)) < log_rho
                accepted += float(accept.sum())
                proposed += len(xo)
                z_cur = torch.where(accept.unsqueeze(1), z_new, z_cur)
                params_cur = torch.where(accept.view(-1, *((1,) * (xo.dim() - 1))), params_new, params_cur)
            else:
                z_cur, params_cur = z_new, params_new
            draw = lik.sample(params_cur, generator)
            cur = torch.where(obs, xo, draw)
            if t >= burn:
                total += lik.mean(params_cur)
        est = total / (steps - burn)
        means.append(torch.where(obs, xo, est).cpu())
        draws.append(cur.cpu())
    rate = accepted / proposed if metropolis and proposed else None
    return Completion(mean=torch.cat(means), draw=torch.cat(draws), acceptance=rate)


@in_eval_mode
def pseudo_gibbs(model: VAE, x: torch.Tensor, mask: torch.Tensor, steps: int = 200, burn_in: int | None = None,
                 generator: torch.Generator | None = None, batch_size: int = 4096,
                 init: torch.Tensor | None = None) -> Completion:
    """Pseudo-Gibbs sampling (Rezende et al. 2014): z ~ q(z | x̃), x_miss ~ p(x_miss | z), ``steps`` times;
    the estimate averages E[x_miss | z_t] over the steps after ``burn_in`` (default: the first half).
    The chain starts from x as given, or with its missing entries taken from ``init``."""
    return _chain(model, x, mask, steps, burn_in, generator, False, batch_size, init)


@in_eval_mode
def metropolis_within_gibbs(model: VAE, x: torch.Tensor, mask: torch.Tensor, steps: int = 200,
                            burn_in: int | None = None, generator: torch.Generator | None = None,
                            batch_size: int = 4096, init: torch.Tensor | None = None) -> Completion:
    """Metropolis-within-Gibbs (Mattei & Frellsen 2018): propose z' ~ q(z | x̃), accept with probability
    min(1, p(x̃|z') p(z') q(z|x̃) / (p(x̃|z) p(z) q(z'|x̃))), then x_miss ~ p(x_miss | z). Asymptotically
    exact draws from p(x_miss | x_obs) for any trained VAE (it need not have seen missing data).
    The chain starts from x as given, or with its missing entries taken from ``init``."""
    return _chain(model, x, mask, steps, burn_in, generator, True, batch_size, init)


METHODS = ("iw", "gibbs", "mwg")


def complete(model: VAE, x: torch.Tensor, mask: torch.Tensor, method: str = "iw", k: int = 1000,
             steps: int = 200, burn_in: int | None = None, generator: torch.Generator | None = None,
             passes: int = 1) -> Completion:
    """Dispatch to :func:`iw_conditional_mean` (``iw``, ``passes`` refinements), :func:`pseudo_gibbs`
    (``gibbs``) or :func:`metropolis_within_gibbs` (``mwg``). With ``passes`` > 1 the chains start from
    the IW estimate of ``passes - 1`` passes (``k`` samples) instead of x's fill."""
    if method == "iw":
        return iw_conditional_mean(model, x, mask, k=k, generator=generator, passes=passes)
    init = iw_conditional_mean(model, x, mask, k=k, generator=generator, passes=passes - 1).mean \
        if passes > 1 else None
    if method == "gibbs":
        return pseudo_gibbs(model, x, mask, steps=steps, burn_in=burn_in, generator=generator, init=init)
    if method == "mwg":
        return metropolis_within_gibbs(model, x, mask, steps=steps, burn_in=burn_in, generator=generator,
                                       init=init)
    raise ValueError(f"unknown completion method {method!r}; choose one of {', '.join(METHODS)}")
