"""VAE-GAN's modules (Larsen et al. 2016): the VAE plus an image discriminator.

The discriminator is two stride-2 4×4 convolutions (LeakyReLU 0.2) whose flattened output is its feature
layer (the space of the feature-matching reconstruction term), then a linear layer to one logit; with
``--gan-spectral-norm`` (the default since its measurement, README "Sharper samples") each of the three layers
is spectrally normalized (Miyato et al. 2018: a 1-Lipschitz layer, power iteration state in buffers). It lives
inside the module (``vae.discriminator``), so its weights are saved with the run and restored on resume;
``gan_step`` (a buffer) counts the generator steps taken, which tells the objective whether the
discriminator has started, so resume is exact without any trainer state of its own.
"""

from __future__ import annotations

import torch
from torch import nn

from .vae import VAE


def _halved(n: int) -> int:
    return (n + 2 - 4) // 2 + 1  # a 4×4 convolution, stride 2, padding 1


class Discriminator(nn.Module):
    """Images ``[N, C, H, W]`` → (features ``[N, F]``, logits ``[N]``)."""

    def __init__(self, shape: tuple[int, ...], width: int = 32, spectral_norm: bool = False):
        super().__init__()
        c, h, w = shape
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        self.body = nn.Sequential(
            sn(nn.Conv2d(c, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2), nn.Flatten())
        self.head = sn(nn.Linear(2 * width * _halved(_halved(h)) * _halved(_halved(w)), 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        return f, self.head(f).squeeze(1)


class VAEGAN(VAE):
    """A VAE with ``discriminator`` and the ``gan_step`` counter; everything else (q, p, p(x|z), the bounds,
    sampling) is the VAE's, so its −ELBO and IWAE are comparable with a plain VAE's."""

    def __init__(self, *args, spectral_norm: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.discriminator = Discriminator(self.shape, spectral_norm=spectral_norm)
        self.register_buffer("gan_step", torch.zeros((), dtype=torch.int64))

    def last_decoder_weight(self) -> nn.Parameter:
        """The decoder's last weight matrix/kernel: where the adaptive adversarial weight compares gradients."""
        return [p for p in self.decoder.parameters() if p.dim() > 1][-1]


def build_vae_gan(cfg, shape: tuple[int, ...], cond_dim: int = 0, schema: list[dict] | None = None) -> VAEGAN:
    """The ``vae-gan`` family's model: the VAE ``cfg`` describes (MLP or conv), plus the discriminator."""
    from .vae import build_model

    base = build_model(cfg.model_copy(update={"family": None}), shape, cond_dim, schema)
    return VAEGAN(base.encoder, base.decoder, base.likelihood, base.latent_dim, base.shape, base.cond_dim,
                  spectral_norm=cfg.gan_spectral_norm)
