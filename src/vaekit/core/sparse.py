"""Variational sparse coding (Tonolini, Jensen & Murray-Smith 2020): spike-and-slab posterior and prior.

Per latent dimension j:
  q(z_j|x) = γ_j N(z_j; μ_j, σ_j²) + (1 − γ_j) δ(z_j),   p(z_j) = α N(z_j; 0, 1) + (1 − α) δ(z_j),
with α the sparsity target (the prior probability that a dimension is active). Against the base measure
counting measure at 0 plus Lebesgue measure elsewhere, the KL has the closed form
  KL_j = γ_j [KL(N(μ_j, σ_j²) || N(0, 1)) + log(γ_j / α)] + (1 − γ_j) log((1 − γ_j) / (1 − α)),
and log-densities are ``log(1 − α)`` at exactly 0 and ``log α + log N(z; 0, 1)`` elsewhere, so importance
weights (IWAE) are well defined with exact Bernoulli spikes. Training draws relaxed spikes
s = sigmoid(c (η + γ − 1)), η ~ U(0, 1), c = 50 (the paper's relaxation), z = s (μ + σ ε); evaluation
(eval mode) draws exact ones. ``posterior_params`` returns (γ μ, log σ²): γ μ is the posterior mean of z,
the code that encode/probe/reconstruct use. Nats throughout.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import nn

from .vae import VAE

RELAX_C = 50.0
EPS = 1e-6
LOG2PI = math.log(2 * math.pi)


def spike_slab_kl(mu: torch.Tensor, logvar: torch.Tensor, gamma: torch.Tensor, alpha: float) -> torch.Tensor:
    """KL(q || p) per latent dimension (nats), closed form (module docstring)."""
    g = gamma.clamp(EPS, 1 - EPS)
    gauss = 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar)
    return g * (gauss + torch.log(g / alpha)) + (1 - g) * torch.log((1 - g) / (1 - alpha))


def spike_slab_log_prior(z: torch.Tensor, alpha: float) -> torch.Tensor:
    """log p(z) summed over the last axis: log(1 − α) where z is exactly 0, log α + log N(z; 0, 1) elsewhere."""
    slab = math.log(alpha) - 0.5 * z * z - 0.5 * LOG2PI
    return torch.where(z == 0, torch.full_like(z, math.log(1 - alpha)), slab).sum(-1)


def spike_slab_log_q(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """log q(z|x) summed over the last axis for exact spike-and-slab draws (z = 0 exactly: the spike)."""
    g = gamma.clamp(EPS, 1 - EPS)
    slab = torch.log(g) - 0.5 * (z - mu) ** 2 * (-logvar).exp() - 0.5 * logvar - 0.5 * LOG2PI
    return torch.where(z == 0, torch.log(1 - g).expand_as(z), slab).sum(-1)


def spike_slab_draw(mu: torch.Tensor, logvar: torch.Tensor, gamma: torch.Tensor, s: int,
                    noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``s`` exact draws per row ``[s, b, latent]`` and their log q ``[s, b]``. With ``noise`` ``[s, latent]``
    every row gets the same slab noise ε and the same spike uniforms (drawn from a generator seeded by the
    noise's bytes): common random numbers, so a bound is a deterministic function of the example, as for a
    Gaussian posterior. Without it both come from the global RNG."""
    b, d = mu.shape
    if noise is not None:
        eps = noise.to(mu.device, mu.dtype).unsqueeze(1).expand(s, b, d)
        seed = int.from_bytes(hashlib.sha256(noise.detach().cpu().float().numpy().tobytes()).digest()[:8], "little")
        u = torch.rand(s, 1, d, generator=torch.Generator().manual_seed(seed)).to(mu.device, mu.dtype)
    else:
        eps = torch.randn(s, b, d, device=mu.device, dtype=mu.dtype)
        u = torch.rand(s, b, d, device=mu.device, dtype=mu.dtype)
    on = u < gamma
    z = torch.where(on, mu + eps * (0.5 * logvar).exp(), torch.zeros_like(eps))
    z = torch.where(on & (z == 0), torch.full_like(z, 1e-30), z)  # a slab draw of exactly 0 stays a slab draw
    return z, spike_slab_log_q(z, mu, logvar, gamma)


class SparseVAE(VAE):
    """A VAE whose encoder also gives each dimension's spike probability γ (its head has 3 × latent outputs:
    mean, log-variance, logit γ), with the spike-and-slab prior of sparsity ``alpha``."""

    def __init__(self, *args, alpha: float = 0.2, **kwargs):
        super().__init__(*args, **kwargs)
        self.spike_prior = float(alpha)
        head = self.encoder.head
        self.encoder.head = nn.Linear(head.in_features, 3 * self.latent_dim)

    def posterior_all(self, x: torch.Tensor, c: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(μ, log σ², γ) of the slab and the spike probability, each ``[N, latent]``."""
        h = self.encoder(x, self._c(c, len(x))) if self.cond_dim else self.encoder(x)
        L = self.latent_dim
        return h[:, :L], h[:, L:2 * L], torch.sigmoid(h[:, 2 * L:])

    def posterior_params(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(E[z|x] = γ μ, the slab's log-variance): the code encode, probe and reconstruct use."""
        mu, logvar, gamma = self.posterior_all(x, c)
        return gamma * mu, logvar

    def prior_draw(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` codes from the spike-and-slab prior (slab scaled by ``temperature``), drawn on the CPU."""
        p = next(self.parameters())
        slab = torch.randn(n, self.latent_dim, generator=generator) * temperature
        on = torch.rand(n, self.latent_dim, generator=generator) < self.spike_prior
        return (slab * on).to(p.device, p.dtype)

    def prior(self):  # pragma: no cover - a mixed discrete/continuous law has no torch Distribution here
        raise NotImplementedError("the spike-and-slab prior: use log_prior / prior_draw")


def sparse_elbo_loss(model: SparseVAE, batch, beta: float = 1.0):
    """One-sample −ELBO of a batch (closed-form spike-and-slab KL, β-weighted): relaxed spikes when training,
    exact ones in eval mode. Returns :class:`~vaekit.core.objectives.LossOutput`."""
    from .objectives import LossOutput

    mu, logvar, gamma = model.posterior_all(batch.x, batch.condition)
    eps = torch.randn_like(mu)
    u = torch.rand_like(mu)
    spike = torch.sigmoid(RELAX_C * (u + gamma - 1)) if model.training else (u < gamma).to(mu.dtype)
    z = spike * (mu + eps * (0.5 * logvar).exp())
    recon = model.likelihood.nll(model.decoder_params(z, batch.condition), batch.scored, batch.mask)
    kl = spike_slab_kl(mu, logvar, gamma, model.spike_prior).sum(1)
    return LossOutput(loss=(recon + beta * kl).mean(), recon=recon, kl=kl)


@torch.no_grad()
def active_fraction(model: SparseVAE, x: torch.Tensor, batch_size: int = 1024, threshold: float = 0.5) -> torch.Tensor:
    """Per example, the fraction of latent dimensions whose spike probability γ exceeds ``threshold``."""
    was = model.training
    model.eval()
    try:
        dev = next(model.parameters()).device
        out = [(model.posterior_all(x[i: i + batch_size].to(dev))[2] > threshold).float().mean(1).cpu()
               for i in range(0, len(x), batch_size)]
    finally:
        model.train(was)
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def sparse_summary(model: SparseVAE, x: torch.Tensor, batch_size: int = 1024) -> dict:
    """``evaluate``'s numbers of a sparse VAE: the spike-and-slab KL per dimension (replacing the Gaussian
    one), the mean fraction of active dimensions per example (γ > 0.5) and the sparsity target α."""
    was = model.training
    model.eval()
    try:
        dev = next(model.parameters()).device
        kl, frac = [], []
        for i in range(0, len(x), batch_size):
            mu, logvar, gamma = model.posterior_all(x[i: i + batch_size].to(dev))
            kl.append(spike_slab_kl(mu, logvar, gamma, model.spike_prior).cpu())
            frac.append((gamma > 0.5).float().mean(1).cpu())
    finally:
        model.train(was)
    kl_t, frac_t = torch.cat(kl), torch.cat(frac)
    return {"kl_per_dim": kl_t.mean(0).tolist(), "active_fraction_per_example": float(frac_t.mean()),
            "sparsity_alpha": model.spike_prior,
            "sparsity_note": "active = spike probability γ > 0.5; kl_per_dim is the spike-and-slab KL"}


def build_sparse_vae(cfg, shape: tuple[int, ...], cond_dim: int = 0, schema: list[dict] | None = None) -> SparseVAE:
    """The ``sparse-vae`` family's model: the VAE ``cfg`` describes, with a 3 × latent encoder head and the
    spike-and-slab prior of sparsity ``cfg.sparse_alpha``."""
    from .vae import build_model

    base = build_model(cfg.model_copy(update={"family": None}), shape, cond_dim, schema)
    model = SparseVAE(base.encoder, base.decoder, base.likelihood, base.latent_dim, base.shape, base.cond_dim,
                      alpha=cfg.sparse_alpha)
    return model
