"""q(z|x), p(z) and importance log-weights: the one place IWAE training, evaluation, completion and anomaly
scores get them from.

For a diagonal Gaussian posterior q(z|x) = N(μ, σ²) and z = μ + σ ε, the log-weight of a draw is
log w = log p(x|z) + log p(z) − log q(z|x) (nats); IWAE_k = log mean_i w_i ≤ log p(x) (Burda et al. 2015).
Draws are batched as ``[s, b, latent]`` (samples × examples) so each decoder call is one large matmul.
"""

from __future__ import annotations

import functools
import math

import torch

LOG2PI = math.log(2 * math.pi)


def in_eval_mode(fn):
    """Run ``fn(model, ...)`` without gradients and without dropout, then restore the model's mode."""

    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return fn(model, *args, **kwargs)
        finally:
            model.train(was_training)
    return wrapper


def log_normal_std(eps: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, exp(logvar)) summed over the last axis, for z = μ + ε·σ (nats)."""
    return (-0.5 * eps * eps - 0.5 * logvar - 0.5 * LOG2PI).sum(-1)


def log_prior(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last axis (nats)."""
    return (-0.5 * z * z - 0.5 * LOG2PI).sum(-1)


def prior_log_prob(model, z: torch.Tensor) -> torch.Tensor:
    """log p(z) of ``model``'s prior summed over the last axis (nats): N(0, I), or its VampPrior's mixture
    (1/K) Σ_k q(z|u_k) (Tomczak & Welling 2018). The one place every bound, objective and sampler asks."""
    alpha = getattr(model, "spike_prior", None)
    if alpha is not None:  # sparse-vae: spike-and-slab (vaekit.core.sparse)
        from .sparse import spike_slab_log_prior

        return spike_slab_log_prior(z, alpha)
    vamp = getattr(model, "vamp", None)
    if vamp is None:
        return log_prior(z)
    from .priors import mixture_log_prob

    means, logvars = vamp.components_of(model)
    return mixture_log_prob(z, means, logvars)


def chunking(n: int, k: int, rows_per_chunk: int) -> tuple[int, int]:
    """(examples per batch, importance samples per chunk) so each decoder call sees about ``rows_per_chunk``
    rows (examples × samples) whatever k is: memory stays bounded."""
    n_ex = max(1, min(n, rows_per_chunk // min(k, rows_per_chunk)))
    return n_ex, max(1, rows_per_chunk // n_ex)


def draw(mu: torch.Tensor, logvar: torch.Tensor, s: int, noise: torch.Tensor | None = None,
         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``s`` reparameterised draws z = μ + σ ε per row of μ: (z ``[s, b, latent]``, log q(z|x) ``[s, b]``).

    ``noise`` (``[s, latent]``) gives every row the same ε (common random numbers); otherwise ε is fresh,
    from ``generator`` (drawn on the CPU, then moved) or torch's global RNG on μ's device."""
    b, d = mu.shape
    if noise is not None:
        eps = noise.to(mu.device, mu.dtype).unsqueeze(1).expand(s, b, d)
    elif generator is not None:
        eps = torch.randn((s, b, d), generator=generator).to(mu.device, mu.dtype)
    else:
        eps = torch.randn(s, b, d, device=mu.device, dtype=mu.dtype)
    z = mu + eps * (0.5 * logvar).exp()
    return z, log_normal_std(eps, logvar)


def posterior_draws(model, x: torch.Tensor, c: torch.Tensor | None = None):
    """A function ``(s, noise) -> (z [s, b, latent], log q(z|x) [s, b])`` drawing from ``model``'s posterior of
    the rows of ``x`` (encoded once): Gaussian, or spike-and-slab for a sparse VAE (exact spikes)."""
    if getattr(model, "spike_prior", None) is not None:
        from .sparse import spike_slab_draw

        mu, logvar, gamma = model.posterior_all(x, c)
        return lambda s, noise=None: spike_slab_draw(mu, logvar, gamma, s, noise)
    mu, logvar = model.posterior_params(x, c)
    return lambda s, noise=None: draw(mu, logvar, s, noise)


def log_weights(model, x: torch.Tensor, z: torch.Tensor, log_q: torch.Tensor, c: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log w, log p(x|z), each ``[s, b]``; the likelihood's parameters ``[s, b, *shape]``) for draws ``z``
    ``[s, b, latent]`` of ``x`` ``[b, *shape]`` with log q(z|x) ``log_q``; with ``mask`` (1 = observed)
    log p(x|z) counts the observed entries only."""
    s, b = z.shape[:2]
    params = model.decoder_params(z.reshape(s * b, -1), None if c is None else c.repeat(s, 1))
    params = params.view(s, b, *params.shape[1:])
    log_px = -model.likelihood.nll_samples(params, x, mask)
    return log_px + prior_log_prob(model, z) - log_q, log_px, params
