"""Objectives: a :class:`~vaekit.data.batch.Batch` in, a loss out, and the validation metric that early
stopping, the plateau schedule and tuning watch.

An objective owns how a family is trained (ELBO with β and free bits, IWAE_K, M2's ELBO + classification);
the model owns only its pieces (q(z|x), p(z), p(x|z)). All numbers are nats per example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..data.batch import Batch
from ..data.mapped_reads import row_chunks
from .inference import draw, in_eval_mode, log_normal_std, log_weights, prior_log_prob


@dataclass
class LossOutput:
    """The objective of one batch: ``loss`` (the scalar to minimise), per-example parts."""

    loss: torch.Tensor  # scalar: mean over the batch of recon + beta * kl
    recon: torch.Tensor  # [N] reconstruction NLL, nats per example
    kl: torch.Tensor  # [N] KL(q(z|x) || p(z)), nats per example


@dataclass
class StepOutput:
    """One training step: the scalar ``loss`` to minimise and ``sums``, the epoch accumulators (on the device)."""

    loss: torch.Tensor
    sums: torch.Tensor


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per latent dimension, closed form (nats)."""
    return 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar)


class Objective:
    """What a family minimises. ``metric`` names the validation number (lower is better) that early stopping,
    the plateau LR schedule and tuning's pruner watch; ``metric_label`` is how progress bars show it.
    The rows it returns go to ``metrics.jsonl`` and always include ``train_loss`` and ``val_loss``."""

    metric: str = "val_loss"
    #: whether a higher ``metric`` is better (NDCG@100); early stopping, the plateau schedule and tune's
    #: pruner then watch −metric
    maximize: bool = False
    metric_label: str = "−ELBO"
    metric_unit: str = " nats"  # after the metric's value in progress bars
    loss_label: str = "−ELBO"  # how progress shows the training loss (``train_loss``)
    #: how a distributed run combines the ranks' epoch ``sums``: "sum" (per-example sums and counts: added)
    #: or "mean" (per-step means: averaged with the ranks' loss weights)
    sums_reduce: str = "sum"

    def step(self, model, batch, beta: float) -> StepOutput:  # pragma: no cover - interface
        """The loss of one training batch at KL weight ``beta``, and what to add to the epoch's sums."""
        raise NotImplementedError

    def epoch_row(self, sums: torch.Tensor, n: int, steps: int) -> dict[str, float]:  # pragma: no cover
        """The epoch's training numbers (``train_*`` keys of metrics.jsonl) from the accumulated sums."""
        raise NotImplementedError

    def validate(self, model, split, batch_size: int) -> dict[str, float]:  # pragma: no cover - interface
        """Validation numbers (``val_*`` keys), including :attr:`metric`."""
        raise NotImplementedError


def elbo_loss(model, batch: Batch, beta: float = 1.0, free_bits: float = 0.0) -> LossOutput:
    """One-sample −ELBO of a batch with KL weight β (nats per example). The KL is in closed form against
    N(0, I) and a one-sample Monte-Carlo estimate against a VampPrior (free bits are refused for it).

    The reconstruction term scores ``batch.scored`` (the clean target of a denoising VAE), counting only
    observed entries where ``batch.mask`` is given (MIWAE). With ``free_bits`` λ > 0 the objective's KL is
    Σ_u max(λ, batch-mean KL_u) (Kingma et al. 2016); ``recon`` and ``kl`` stay the true values.
    """
    if getattr(model, "spike_prior", None) is not None:  # sparse-vae: spike-and-slab, closed-form KL
        from .sparse import sparse_elbo_loss

        return sparse_elbo_loss(model, batch, beta)
    mu, logvar = model.posterior_params(batch.x, batch.condition)
    eps = torch.randn_like(mu)
    z = mu + eps * (0.5 * logvar).exp()
    recon = model.likelihood.nll(model.decoder_params(z, batch.condition), batch.scored, batch.mask)
    if getattr(model, "vamp", None) is not None:  # no closed form: the one-sample log q(z|x) − log p(z)
        kl = log_normal_std(eps, logvar) - prior_log_prob(model, z)
        return LossOutput(loss=(recon + beta * kl).mean(), recon=recon, kl=kl)
    kl_dims = gaussian_kl(mu, logvar)
    kl = kl_dims.sum(1)
    if free_bits > 0:
        loss = recon.mean() + beta * kl_dims.mean(0).clamp(min=free_bits).sum()
    else:
        loss = (recon + beta * kl).mean()
    return LossOutput(loss=loss, recon=recon, kl=kl)


def iwae_loss(model, batch: Batch, k: int) -> LossOutput:
    """−IWAE_K of a batch (Burda et al. 2015; with a mask, MIWAE's bound): ``recon`` is the mean NLL over
    the K samples and ``kl`` the closed-form KL (nats per example)."""
    mu, logvar = model.posterior_params(batch.x, batch.condition)
    z, log_q = draw(mu, logvar, k)
    log_w, log_px, _ = log_weights(model, batch.scored, z, log_q, batch.condition, batch.mask)
    bound = torch.logsumexp(log_w, 0) - math.log(k)
    # KL: closed form against N(0, I); a VampPrior's is the K-sample mean of log q − log p = log p(x|z) − log w
    kl = (log_px - log_w).mean(0) if getattr(model, "vamp", None) is not None else gaussian_kl(mu, logvar).sum(1)
    return LossOutput(loss=-bound.mean(), recon=-log_px.mean(0), kl=kl)


class ELBO(Objective):
    """−ELBO with KL weight β (the trainer's schedule) and free bits; validated as the true −ELBO (β = 1),
    so early stopping sees the same quantity whatever β's warm-up is doing."""

    def __init__(self, free_bits: float = 0.0):
        self.free_bits = free_bits

    def loss(self, model, batch: Batch, beta: float) -> LossOutput:
        return elbo_loss(model, batch, beta, self.free_bits)

    def step(self, model, batch: Batch, beta: float) -> StepOutput:
        out = self.loss(model, batch, beta)
        with torch.no_grad():
            sums = torch.stack([(out.recon + out.kl).sum(), out.recon.sum(), out.kl.sum()])
        return StepOutput(out.loss, sums)

    def epoch_row(self, sums: torch.Tensor, n: int, steps: int) -> dict[str, float]:
        loss, recon, kl = (sums / n).tolist()
        return {"train_loss": loss, "train_recon": recon, "train_kl": kl}

    def validate(self, model, split, batch_size: int) -> dict[str, float]:
        val = evaluate_elbo(model, split.x, batch_size=batch_size, c=split.c, mask=split.mask)
        return {"val_loss": val["elbo"], "val_recon": val["recon"], "val_kl": val["kl"]}


class IWAE(ELBO):
    """−IWAE_K as the training loss (β and free bits do not apply); validated like :class:`ELBO`."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def loss(self, model, batch: Batch, beta: float) -> LossOutput:
        return iwae_loss(model, batch, self.k)


@torch.no_grad()
def evaluate_elbo(model, x: torch.Tensor, batch_size: int = 1024, c: torch.Tensor | None = None,
                  mask: torch.Tensor | None = None) -> dict[str, float]:
    """Mean −ELBO, reconstruction NLL and KL over ``x`` (nats per example, one posterior sample, β = 1);
    with ``mask`` (1 = observed) the likelihood is of the observed entries only."""
    return elbo_summary(*elbo_parts(model, x, batch_size, c, mask))


def elbo_summary(recon: torch.Tensor, kl: torch.Tensor) -> dict[str, float]:
    """Means (in float64) of per-example reconstruction NLL and KL from :func:`elbo_parts`, and their sum."""
    if len(recon) == 0:
        return {"elbo": 0.0, "recon": 0.0, "kl": 0.0}
    recon, kl = recon.double(), kl.double()
    return {"elbo": float((recon + kl).mean()), "recon": float(recon.mean()), "kl": float(kl.mean())}


@in_eval_mode
def elbo_parts(model, x: torch.Tensor, batch_size: int = 1024, c: torch.Tensor | None = None,
               mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example reconstruction NLL and KL (nats), one posterior sample each, β = 1, dropout off
    (observed entries only where ``mask`` is given)."""
    dev = next(model.parameters()).device
    recon, kl = [], []
    for i in row_chunks(x, batch_size):  # range(); a memory-mapped x is read ahead in large requests
        rows = slice(i, i + batch_size)
        b = Batch(x[rows], condition=None if c is None else c[rows], mask=None if mask is None else mask[rows])
        out = elbo_loss(model, b.to(dev))
        recon.append(out.recon.cpu())
        kl.append(out.kl.cpu())
    if not recon:
        return torch.empty(0), torch.empty(0)
    return torch.cat(recon), torch.cat(kl)
