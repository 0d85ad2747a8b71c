"""The VAE: encoder → q(z|x) → reparameterised z → decoder → p(x|z), with a standard normal prior or a
VampPrior (``--prior vamp``: :mod:`.priors`).

Pure torch maths: no files, no progress bars, no CLI. All losses are in nats per example.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Distribution, Independent, Normal

from ..config import TrainConfig
from ..data.batch import Batch
from .objectives import LossOutput, elbo_loss, gaussian_kl, iwae_loss  # noqa: F401 (re-exported)
from .likelihoods import Likelihood, build_likelihood
from .priors import VampPrior, mixture_draw
from .networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, check_conv_shape, default_channels


class VAE(nn.Module):
    """A variational autoencoder with a diagonal Gaussian posterior and a N(0, I) prior."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood: Likelihood, latent_dim: int,
                 shape: tuple[int, ...], cond_dim: int = 0):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.latent_dim = latent_dim
        self.shape = tuple(shape)
        self.cond_dim = cond_dim  # > 0: a conditional VAE (Sohn et al. 2015); c joins encoder and decoder
        self.vamp: VampPrior | None = None  # --prior vamp: K learned pseudo-inputs (set by build_model)

    # -- the three steps -------------------------------------------------------------------------
    def _c(self, c: torch.Tensor | None, n: int) -> torch.Tensor | None:
        if self.cond_dim == 0:
            return None
        if c is None or c.shape != (n, self.cond_dim):
            got = "none" if c is None else list(c.shape)
            raise ValueError(f"this conditional VAE needs conditions of shape [{n}, {self.cond_dim}], got {got}")
        return c

    def posterior_params(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x[, c]), each ``[N, latent_dim]``."""
        h = self.encoder(x, self._c(c, len(x))) if self.cond_dim else self.encoder(x)
        return h[:, : self.latent_dim], h[:, self.latent_dim:]

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> Distribution:
        """q(z|x[, c]) as a distribution object (event shape ``[latent_dim]``)."""
        mu, logvar = self.posterior_params(x, c)
        return Independent(Normal(mu, (0.5 * logvar).exp()), 1)

    def decoder_params(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The likelihood's parameters for latent codes z (and conditions c)."""
        return self.decoder(z, self._c(c, len(z))) if self.cond_dim else self.decoder(z)

    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None) -> Distribution:
        """p(x|z[, c]) as a distribution object (event shape = example shape)."""
        return self.likelihood(self.decoder_params(z, c))

    def prior(self) -> Distribution:
        """p(z): N(0, I), or the VampPrior's mixture of the encoder's posteriors at its pseudo-inputs."""
        p = next(self.parameters())
        zeros = torch.zeros(self.latent_dim, device=p.device, dtype=p.dtype)
        if self.vamp is None:
            return Independent(Normal(zeros, torch.ones_like(zeros)), 1)
        from torch.distributions import Categorical, MixtureSameFamily

        means, logvars = self.vamp.components_of(self)
        comps = Independent(Normal(means, (0.5 * logvars).exp()), 1)
        return MixtureSameFamily(Categorical(logits=torch.zeros(len(means), device=p.device, dtype=p.dtype)), comps)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) summed over the latent axis (nats); :func:`vaekit.core.inference.prior_log_prob`."""
        from .inference import prior_log_prob

        return prior_log_prob(self, z)

    def prior_draw(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` codes from p(z) ``[n, latent_dim]`` on the model's device, drawn on the CPU (from
        ``generator``, or the global RNG): N(0, temperature² I), or for a VampPrior a uniform component and
        temperature-scaled noise around its mean."""
        p = next(self.parameters())
        if self.vamp is None:
            return torch.randn(n, self.latent_dim, generator=generator, device="cpu").to(p.device, p.dtype) * temperature
        means, logvars = self.vamp.components_of(self)
        return mixture_draw(means, logvars, n, temperature, generator).to(p.device, p.dtype)

    # -- objective (kept for callers of ``model(x)``; training uses :mod:`vaekit.core.objectives`) ---
    def forward(self, x: torch.Tensor, beta: float = 1.0, target: torch.Tensor | None = None,
                free_bits: float = 0.0, c: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, iw_samples: int = 1) -> LossOutput:
        """One-sample −ELBO (β-weighted KL) of a batch; ``target`` defaults to ``x``.

        With ``mask`` (1 = observed, 0 = missing, shape of x) the reconstruction term is the likelihood of
        the observed entries only (MIWAE, Mattei & Frellsen 2019); the encoder sees x as given, with its
        missing entries already filled (zeros in model units: the training mean for standardized tables).
        With ``iw_samples`` K > 1 the loss is −IWAE_K (Burda et al. 2015; β and free bits do not apply);
        ``recon`` is then the mean NLL over the K samples and ``kl`` the closed-form KL.

        With ``free_bits`` λ > 0 the objective's KL is Σ_u max(λ, mean over the batch of KL_u)
        (Kingma et al. 2016): a dimension whose KL is below λ nats gets no gradient from the KL term.
        ``recon`` and ``kl`` stay the true per-example values.
        """
        batch = Batch(x, target=target, condition=c, mask=mask)
        if iw_samples > 1:
            return iwae_loss(self, batch, iw_samples)
        return elbo_loss(self, batch, beta, free_bits)

    # -- uses ------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None,
               c: torch.Tensor | None = None) -> torch.Tensor:
        """Means of p(x|z[, c]) for ``n`` draws z ~ p(z) (N(0, temperature² I) for the normal prior, see
        :meth:`prior_draw`); ``c`` is ``[n, cond_dim]``."""
        p = next(self.parameters())
        z = self.prior_draw(n, temperature, generator)
        return self.decode(z, None if c is None else c.to(p.device)).mean

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, c: torch.Tensor | None = None,
                    c_out: torch.Tensor | None = None) -> torch.Tensor:
        """Mean of p(x|z, c_out) at the posterior mean z = E[q(z|x, c)]; ``c_out`` defaults to ``c``
        (another label there re-decodes each input's style under that label)."""
        mu, _ = self.posterior_params(x, c)
        return self.decode(mu, c if c_out is None else c_out).mean


def resolve_channels(cfg: TrainConfig, shape: tuple[int, ...]) -> list[int]:
    if cfg.channels is not None:
        return list(cfg.channels)
    return default_channels(shape[1], shape[2]) if len(shape) == 3 else []


def architecture_error(cfg: TrainConfig, shape: tuple[int, ...]) -> str | None:
    """Why ``cfg`` cannot build a model for examples of ``shape`` (None when it can)."""
    if cfg.family == "vae-gan" and (len(shape) != 3 or min(shape[1:]) < 4):
        return (f"the vae-gan family's discriminator needs images [C, H, W] of at least 4×4, got examples of shape "
                f"{list(shape)}; use --family vae for this data")
    if cfg.model == "conv":
        return check_conv_shape(shape, resolve_channels(cfg, shape))
    return None


def build_model(cfg: TrainConfig, shape: tuple[int, ...], cond_dim: int = 0,
                schema: list[dict] | None = None) -> VAE:
    """The VAE that ``cfg`` describes for examples of ``shape`` (``cfg.likelihood`` must be resolved);
    ``cond_dim > 0`` makes it conditional on vectors of that size; ``schema`` (a table's column schema) is
    needed by the ``mixed`` likelihood."""
    shape = tuple(int(s) for s in shape)
    if cfg.family == "sparse-vae":
        from .sparse import build_sparse_vae

        return build_sparse_vae(cfg, shape, cond_dim, schema)
    if cfg.family == "vae-gan":
        err = architecture_error(cfg, shape)
        if err:
            raise ValueError(err)
        from .gan import build_vae_gan

        return build_vae_gan(cfg, shape, cond_dim, schema)
    err = architecture_error(cfg, shape)
    if err:
        raise ValueError(err)
    if cfg.model == "mlp":
        enc = MLPEncoder(shape, cfg.hidden, cfg.latent_dim, cfg.dropout, cond_dim)
        dec = MLPDecoder(shape, cfg.hidden, cfg.latent_dim, cfg.dropout, cond_dim)
    else:
        chans = resolve_channels(cfg, shape)
        enc = ConvEncoder(shape, chans, cfg.hidden, cfg.latent_dim, cfg.dropout, cond_dim)
        dec = ConvDecoder(shape, chans, cfg.hidden, cfg.latent_dim, cfg.dropout, cond_dim)
    lik = build_likelihood(cfg.likelihood, shape, cfg.gaussian_std, schema)
    vae = VAE(enc, dec, lik, cfg.latent_dim, shape, cond_dim)
    if cfg.prior == "vamp":  # built last: a normal-prior run's initial weights are what they were
        vae.vamp = VampPrior(cfg.vamp_components, shape, bounded=cfg.likelihood == "bernoulli")
    return vae
