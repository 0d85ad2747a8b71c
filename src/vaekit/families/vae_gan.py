"""The ``vae-gan`` family: a VAE whose decoder is also trained against an image discriminator (Larsen et al.
2016), with the adaptive adversarial weight of latent diffusion's autoencoder loss (Rombach et al. 2022,
``taming``/``ldm`` ``LPIPSWithDiscriminator``).

Generator step (encoder + decoder, one optimizer): −ELBO's parts (the likelihood's NLL and β·KL, so the run
keeps an honest −ELBO/IWAE), plus, once the discriminator has started (after ``--gan-start-epoch`` epochs):
- a reconstruction term in the discriminator's feature space, ``--gan-feature-weight`` × ||D_f(x) − D_f(x̃)||²
  per example (x̃ the reconstruction's mean);
- the adversarial term −mean D(x̃') over reconstructions and prior samples (hinge generator loss), weighted
  by λ = ||∇_w L_rec|| / (||∇_w L_adv|| + 1e-4) (clamped to [0, 1e4], not differentiated) × ``--gan-weight``,
  with w the decoder's last weight: the adversarial gradient at the decoder's output is kept at the scale of
  the reconstruction's, so no weight needs hand-tuning per dataset.
Discriminator step (its own optimizer): the hinge loss on real images vs reconstructions and prior samples
(half each). Each training batch is a discriminator step then a generator step (``phase`` batches: the
Trainer steps the optimizer of :meth:`VAEGANFamily.param_groups` of that name). Validation: the −ELBO.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig
from ..core.objectives import ELBO, Objective, StepOutput, gaussian_kl
from ..data.batch import Batch
from ..data.dataset import Split
from .base import BatchSource
from .vae import VAEBatches, VAEFamily

LAMBDA_MAX, DELTA = 1e4, 1e-4


@dataclass
class GANBatch(Batch):
    """A batch of one phase: ``disc`` (the discriminator's step) or ``gen`` (encoder and decoder)."""

    phase: str = "gen"


class GANBatches(BatchSource):
    """The ``vae`` family's batches (binarization, corruptions, masks), each yielded twice: a discriminator
    step, then a generator step on the same examples."""

    def __init__(self, train: Split, cfg: TrainConfig):
        super().__init__(train, cfg.batch_size)
        self.inner = VAEBatches(train, cfg)

    @property
    def steps(self) -> int:
        return 2 * self.inner.steps

    def epoch(self, perm: torch.Tensor, gen: torch.Generator) -> Iterator[GANBatch]:
        for b in self.inner.epoch(perm, gen):
            fields = dict(x=b.x, target=b.target, condition=b.condition, mask=b.mask)
            yield GANBatch(**fields, phase="disc")
            yield GANBatch(**fields, phase="gen")


def adaptive_weight(rec: torch.Tensor, adv: torch.Tensor, last: nn.Parameter) -> torch.Tensor:
    """λ = ||∇_last rec|| / (||∇_last adv|| + δ), clamped to [0, 1e4] and detached (LDM's adaptive weight)."""
    g_rec = torch.autograd.grad(rec, last, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv, last, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + DELTA)).clamp(0.0, LAMBDA_MAX).detach()


class VAEGANObjective(ELBO):
    """The two steps of the module docstring; ``start_steps`` = generator steps before the discriminator joins."""

    loss_label = "−ELBO (gen)"

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int):
        super().__init__()
        self.start_steps = cfg.gan_start_epoch * steps_per_epoch
        self.gan_weight, self.feature_weight = cfg.gan_weight, cfg.gan_feature_weight

    def step(self, model, batch: GANBatch, beta: float) -> StepOutput:
        active = int(model.gan_step) >= self.start_steps
        if batch.phase == "disc":
            return self._disc_step(model, batch, active)
        return self._gen_step(model, batch, beta, active)

    def _fakes(self, model, batch: Batch, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean reconstructions of ``z``, means of prior samples as many)."""
        rec = model.decode(z, batch.condition).mean
        zp = torch.randn_like(z)
        return rec, model.decode(zp, batch.condition).mean

    def _disc_step(self, model, batch: GANBatch, active: bool) -> StepOutput:
        disc = model.discriminator
        zero = torch.zeros((), device=batch.x.device)
        if not active:  # not started: a zero loss (zero gradients: the discriminator does not move)
            loss = sum((p.sum() for p in disc.parameters()), zero) * 0.0
            return StepOutput(loss, torch.zeros(9, device=batch.x.device))
        with torch.no_grad():
            mu, logvar = model.posterior_params(batch.x, batch.condition)
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            rec, prior = self._fakes(model, batch, z)
        real = disc(batch.scored)[1]
        fake = disc(torch.cat([rec, prior]))[1]
        loss = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        n = float(len(batch))
        with torch.no_grad():
            sums = torch.stack([zero, zero, zero, zero, zero, zero, zero, loss.detach() * n, zero + n])
        return StepOutput(loss, sums)

    def _gen_step(self, model, batch: GANBatch, beta: float, active: bool) -> StepOutput:
        mu, logvar = model.posterior_params(batch.x, batch.condition)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        params = model.decoder_params(z, batch.condition)
        nll = model.likelihood.nll(params, batch.scored, batch.mask)
        kl = gaussian_kl(mu, logvar).sum(1)
        zero = torch.zeros((), device=batch.x.device)
        feat, adv, lam = torch.zeros_like(nll), zero, zero
        if active:
            disc = model.discriminator
            rec = model.likelihood(params).mean
            prior = model.decode(torch.randn_like(z), batch.condition).mean
            with torch.no_grad():
                f_real = disc(batch.scored)[0]
            f_rec, logit_rec = disc(rec)
            logit_prior = disc(prior)[1]
            feat = ((f_rec - f_real) ** 2).sum(1)
            rec_loss = (nll + self.feature_weight * feat).mean()
            adv = -0.5 * (logit_rec.mean() + logit_prior.mean())
            lam = adaptive_weight(rec_loss, adv, model.last_decoder_weight()) * self.gan_weight
            loss = rec_loss + beta * kl.mean() + lam * adv
        else:
            loss = (nll + beta * kl).mean()
        model.gan_step += 1
        n = float(len(batch))
        with torch.no_grad():
            sums = torch.stack([(nll + kl).sum(), nll.sum(), kl.sum(), feat.sum(), adv.detach() * n,
                                lam * n, zero + n, zero, zero])
        return StepOutput(loss, sums)

    def epoch_row(self, sums: torch.Tensor, n: int, steps: int) -> dict[str, float]:
        elbo, nll, kl, feat, adv, lam, n_gen, d_loss, n_disc = sums.tolist()
        g, d = max(n_gen, 1.0), max(n_disc, 1.0)
        return {"train_loss": elbo / g, "train_recon": nll / g, "train_kl": kl / g, "train_feature": feat / g,
                "train_adv": adv / g, "train_gan_lambda": lam / g,
                "train_disc_loss": d_loss / d}  # 0 before the discriminator starts


class VAEGANFamily(VAEFamily):
    name = "vae-gan"
    unsupported = {
        "iw_samples": (1, "its generator step is the one-sample ELBO plus the adversarial terms"),
        "free_bits": (0.0, "its KL term is the plain one"),
        "conditional": (False, "its discriminator is unconditional"),
        "condition_columns": (None, "its discriminator is unconditional"),
        "missing": ("error", "its discriminator needs complete images"),
        "lr_schedule": ("none", "its encoder/decoder and discriminator have their own optimizers"),
    }

    def param_groups(self, model) -> dict[str, list[nn.Parameter]]:
        disc = {id(p) for p in model.discriminator.parameters()}
        return {"gen": [p for p in model.parameters() if id(p) not in disc],
                "disc": list(model.discriminator.parameters())}

    def objective(self, cfg: TrainConfig, train: Split) -> Objective:
        return VAEGANObjective(cfg, math.ceil(len(train) / cfg.batch_size))

    def batch_source(self, cfg: TrainConfig, train: Split) -> BatchSource:
        return GANBatches(train, cfg)
