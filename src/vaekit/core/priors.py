"""Learned priors p(z): the VampPrior (Tomczak & Welling 2018).

p(z) = (1/K) Σ_k q(z | u_k): a uniform mixture of the encoder's own posteriors at K learned pseudo-inputs
u_k (parameters of the shape of an example). The pseudo-inputs live in the VAE module (``vae.vamp``), so
they are saved in the weights file, trained by the one optimizer and restored on resume like any weight.
Pure torch maths: log-densities in nats, summed over the latent dimensions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LOG2PI = math.log(2 * math.pi)


class VampPrior(nn.Module):
    """K pseudo-inputs ``pseudo`` ``[K, *shape]``. For data in [0, 1] (``bounded``: a Bernoulli likelihood)
    they pass through hardtanh(0, 1) and start near 0.05, as the paper's MNIST code; otherwise they are used
    as they are (model units: a standardized table's columns) and start near 0."""

    def __init__(self, components: int, shape: tuple[int, ...], bounded: bool):
        super().__init__()
        self.components = int(components)
        self.bounded = bool(bounded)
        start = 0.05 if self.bounded else 0.0
        self.pseudo = nn.Parameter(start + 0.01 * torch.randn(self.components, *shape))

    def inputs(self) -> torch.Tensor:
        """The pseudo-inputs as the encoder sees them ``[K, *shape]``."""
        return nn.functional.hardtanh(self.pseudo, 0.0, 1.0) if self.bounded else self.pseudo

    def components_of(self, vae) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, log-variances) ``[K, latent]`` of the K mixture components: q(z | u_k) of ``vae``'s encoder."""
        return vae.posterior_params(self.inputs())


def mixture_log_prob(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    """log (1/K) Σ_k N(z; means_k, exp(logvars_k)) for z ``[..., latent]`` (nats, shape ``[...]``).

    Computed per component with a log-sum-exp over k; the component axis is added last, so memory is
    ``z.numel() × K`` (chunked over the leading rows to bound it)."""
    lead = z.shape[:-1]
    flat = z.reshape(-1, z.shape[-1])
    inv_var = (-logvars).exp()  # [K, d]
    const = -0.5 * (logvars + LOG2PI).sum(-1) - math.log(len(means))  # [K]
    out = []
    rows = max(1, (1 << 22) // max(1, means.numel()))
    for i in range(0, len(flat), rows):
        zb = flat[i: i + rows]
        diff = zb.unsqueeze(1) - means.unsqueeze(0)  # [b, K, d]
        out.append(torch.logsumexp(const - 0.5 * (diff * diff * inv_var).sum(-1), dim=1))
    return (torch.cat(out) if out else flat.new_empty(0)).reshape(lead)


def mixture_draw(means: torch.Tensor, logvars: torch.Tensor, n: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None, weights: torch.Tensor | None = None,
                 scale_tril: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` draws ``[n, latent]`` from a Gaussian mixture: a component k (uniform, or by ``weights``), then
    z = mean_k + temperature · L_k ε with L_k = diag(exp(logvars_k / 2)) or ``scale_tril[k]`` (full
    covariance: the GMM sampler). The draws come from ``generator`` on the CPU (the global RNG without one)
    and are returned on the CPU in float32: the same seed gives the same codes on any device."""
    means, d = means.detach().cpu().float(), means.shape[-1]
    w = torch.ones(len(means)) if weights is None else weights.detach().cpu().float()
    k = torch.multinomial(w / w.sum(), n, replacement=True, generator=generator)
    eps = torch.randn(n, d, generator=generator)
    if scale_tril is not None:
        step = torch.einsum("nij,nj->ni", scale_tril.detach().cpu().float()[k], eps)
    else:
        step = eps * (0.5 * logvars.detach().cpu().float()[k]).exp()
    return means[k] + temperature * step
