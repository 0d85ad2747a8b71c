"""The ``recvae`` family (Shenbin et al. 2020, "RecVAE: a new variational autoencoder for Top-N
recommendations with implicit feedback"): Mult-VAE with a stronger encoder, a composite prior, a
user-specific β and alternating updates.

- Encoder: the user's row, L2-normalised, input dropout (encoder phase only), then densely connected layers
  h_k = LayerNorm(swish(W_k h_{k-1} + h_1 + … + h_{k-1})) of equal width (``hidden``; the paper: 5 × 600,
  layer-norm ε 0.1 as the reference code), then linear heads for the mean and log-variance of q(z|x).
- Decoder: one linear layer, latent → item logits; multinomial likelihood.
- Composite prior, per latent dimension as the reference code: p(z) = 3/20 N(0, 1) + 3/4 q_old(z|x) +
  1/10 N(0, e^10), with q_old the encoder as it was at the end of the previous encoder phase (the "old
  encoder", a frozen copy inside the module, so checkpoints and resume hold it).
- KL weight β' = γ · (the user's item count) per user (``gamma``, 0.005), a one-sample estimate of
  log q(z|x) − log p(z), as the paper.
- One trainer epoch = ``n_enc_epochs`` passes updating the encoder (with dropout), then the old encoder is
  refreshed, then ``n_dec_epochs`` passes updating the decoder (no dropout); each phase has its own Adam
  (:meth:`RecVAEFamily.param_groups`, batches carry their ``phase``).
Validation is NDCG@100 of the validation users, as Mult-VAE (:class:`~.mult_vae.MultObjective`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig
from ..core.objectives import Objective, StepOutput
from ..data.batch import Batch
from ..data.dataset import Split
from ..errors import UsageError
from .base import BatchSource
from .mult_vae import MultObjective, MultVAEFamily, multinomial_nll

#: the paper's settings (Shenbin et al. 2020 and the reference code's run.py / README), where the user set none
PAPER_DEFAULTS: dict[str, Any] = {"hidden": [600] * 5, "latent_dim": 200, "dropout": 0.5, "batch_size": 500,
                                  "lr": 5e-4, "epochs": 50}
#: the composite prior's weights: standard normal, old encoder's posterior, wide normal (log-variance 10)
MIXTURE_WEIGHTS = (3 / 20, 3 / 4, 1 / 10)
WIDE_LOGVAR = 10.0
_LOG_2PI = math.log(2 * math.pi)


def log_normal(z: torch.Tensor, mu: torch.Tensor | float, logvar: torch.Tensor | float) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) per element (nats)."""
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    return -0.5 * (logvar + _LOG_2PI + (z - mu) ** 2 / logvar.exp())


def composite_log_prior(z: torch.Tensor, old_mu: torch.Tensor, old_logvar: torch.Tensor) -> torch.Tensor:
    """log p(z) per row, summed over dimensions, of the composite prior (each dimension a three-part mixture:
    :data:`MIXTURE_WEIGHTS` of N(0, 1), N(old_mu, exp(old_logvar)) and N(0, e^10))."""
    parts = [log_normal(z, 0.0, 0.0), log_normal(z, old_mu, old_logvar), log_normal(z, 0.0, WIDE_LOGVAR)]
    stacked = torch.stack([p + math.log(w) for p, w in zip(parts, MIXTURE_WEIGHTS)], dim=-1)
    return torch.logsumexp(stacked, dim=-1).sum(-1)


class RecVAEEncoder(nn.Module):
    """Normalise, drop out (``p``), densely connected swish + layer-norm layers, mean and log-variance heads."""

    def __init__(self, n_items: int, hidden: list[int], latent_dim: int):
        super().__init__()
        width = hidden[0]
        self.layers = nn.ModuleList(nn.Linear(n_items if i == 0 else width, width) for i in range(len(hidden)))
        self.norms = nn.ModuleList(nn.LayerNorm(width, eps=0.1) for _ in hidden)
        self.mu = nn.Linear(width, latent_dim)
        self.logvar = nn.Linear(width, latent_dim)

    def forward(self, x: torch.Tensor, p: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.dropout(F.normalize(x, dim=1), p=p, training=self.training and p > 0)
        skip: torch.Tensor | None = None  # h_1 + … + h_{k-1}
        for lin, norm in zip(self.layers, self.norms):
            a = lin(h) if skip is None else lin(h) + skip
            h = norm(F.silu(a))
            skip = h if skip is None else skip + h
        return self.mu(h), self.logvar(h)


class RecVAE(nn.Module):
    """RecVAE: ``encoder``, linear ``decoder`` and the frozen ``old_encoder`` of the composite prior."""

    def __init__(self, n_items: int, hidden: list[int], latent_dim: int, dropout: float):
        super().__init__()
        self.n_items, self.latent_dim, self.variational, self.dropout = n_items, latent_dim, True, dropout
        self.shape = (n_items,)
        self.encoder = RecVAEEncoder(n_items, hidden, latent_dim)
        self.old_encoder = RecVAEEncoder(n_items, hidden, latent_dim).requires_grad_(False)
        self.decoder = nn.Linear(latent_dim, n_items)

    def posterior_params(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z|x) with the encoder's input dropout when training."""
        return self.encoder(x, self.dropout)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Item logits for users with items ``x`` ([B, items], 0/1), at the posterior mean (eval mode)."""
        return self.decoder(self.encoder(x)[0])

    @torch.no_grad()
    def refresh_prior(self) -> None:
        """The old encoder becomes a copy of the encoder (end of an encoder phase)."""
        for old, new in zip(self.old_encoder.parameters(), self.encoder.parameters()):
            old.copy_(new)


@dataclass
class PhaseBatch(Batch):
    """A batch of one training phase (``enc`` or ``dec``); ``refresh``: refresh the old encoder first."""

    phase: str = "enc"
    refresh: bool = False


class RecVAEObjective(MultObjective):
    """Encoder phase: −E_q[log p(x|z)] + γ·|x|·(log q(z|x) − log p(z)) (one sample, dropout on the input);
    decoder phase: −log p(x|z) with z from the un-dropped input (the encoder not differentiated). Validation
    as Mult-VAE: NDCG@100, Recall@20 and ``val_loss`` (−ELBO against N(0, I), a comparable number across
    epochs, not RecVAE's own bound)."""

    def __init__(self, gamma: float):
        self.gamma = gamma

    def step(self, model: RecVAE, batch: PhaseBatch, beta: float) -> StepOutput:
        x, zero = batch.x, torch.zeros((), device=batch.x.device)
        if batch.phase == "dec":
            if batch.refresh:
                model.refresh_prior()
            with torch.no_grad():
                mu, logvar = model.encoder(x)
                z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            nll = multinomial_nll(model.decoder(z), x)
            loss = nll.mean()
            with torch.no_grad():
                sums = torch.stack([zero, zero, zero, zero, nll.sum(), torch.tensor(float(len(x)), device=x.device)])
            return StepOutput(loss, sums)
        mu, logvar = model.encoder(x, model.dropout)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        with torch.no_grad():
            old_mu, old_logvar = model.old_encoder(x)
        kl = log_normal(z, mu, logvar).sum(1) - composite_log_prior(z, old_mu, old_logvar)
        nll = multinomial_nll(model.decoder(z), x)
        weighted = nll + self.gamma * x.sum(1) * kl
        with torch.no_grad():
            sums = torch.stack([weighted.sum(), nll.sum(), kl.sum(), torch.tensor(float(len(x)), device=x.device),
                                zero, zero])
        return StepOutput(weighted.mean(), sums)

    def epoch_row(self, sums: torch.Tensor, n: int, steps: int) -> dict[str, float]:
        loss, recon, kl, n_enc, dec, n_dec = sums.tolist()
        return {"train_loss": loss / max(n_enc, 1), "train_recon": recon / max(n_enc, 1),
                "train_kl": kl / max(n_enc, 1), "train_dec_recon": dec / max(n_dec, 1)}


class AlternatingBatches(BatchSource):
    """``n_enc`` passes of encoder batches, then ``n_dec`` passes of decoder batches (the first of which
    refreshes the old encoder); each pass in its own order, drawn from the trainer's generator."""

    def __init__(self, train: Split, batch_size: int, n_enc: int, n_dec: int):
        super().__init__(train, batch_size)
        self.n_enc, self.n_dec = n_enc, n_dec

    @property
    def steps(self) -> int:
        return (self.n_enc + self.n_dec) * math.ceil(len(self.train) / self.batch_size)

    def epoch(self, perm: torch.Tensor, gen: torch.Generator) -> Iterator[PhaseBatch]:
        from ..data.interactions import dense_rows

        t, bs, n = self.train, self.batch_size, len(self.train)
        per_pass = math.ceil(n / bs)
        phases = ["enc"] * self.n_enc + ["dec"] * self.n_dec
        for p, phase in enumerate(phases):
            order = (perm if p == 0 else torch.randperm(n, generator=gen)).cpu().numpy()
            for k in range(per_pass):
                x = dense_rows(t.fold, order[k * bs: (k + 1) * bs]).to(t.x.device)
                yield PhaseBatch(x, phase=phase, refresh=phase == "dec" and p == self.n_enc and k == 0)


class RecVAEFamily(MultVAEFamily):
    name = "recvae"
    unsupported = {
        **MultVAEFamily.unsupported,
        "model": ("mlp", "its encoder is RecVAE's densely connected swish/layer-norm network"),
        "beta": (1.0, "its KL weight is user-specific: --gamma times the user's item count"),
        "total_anneal_steps": (0, "its KL weight is --gamma times the user's item count"),
        "lr_schedule": ("none", "its encoder and decoder have their own optimizers"),
    }

    def defaults(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` with the paper's settings where the user set nothing."""
        return cfg.model_copy(update={k: v for k, v in PAPER_DEFAULTS.items() if k not in cfg.model_fields_set})

    def check(self, cfg: TrainConfig) -> None:
        super().check(cfg)
        if len(set(cfg.hidden)) != 1:
            raise UsageError(f"--hidden {','.join(map(str, cfg.hidden))}: the recvae encoder's layers are densely "
                             "connected (each adds the earlier ones), so they need one width, e.g. 600,600,600")

    def build(self, cfg: TrainConfig, shape: tuple[int, ...]) -> RecVAE:
        return RecVAE(int(shape[0]), list(cfg.hidden), cfg.latent_dim, cfg.dropout)

    def param_groups(self, model: RecVAE) -> dict[str, list[nn.Parameter]]:
        return {"enc": list(model.encoder.parameters()), "dec": list(model.decoder.parameters())}

    def objective(self, cfg: TrainConfig, train: Split) -> Objective:
        return RecVAEObjective(cfg.gamma)

    def batch_source(self, cfg: TrainConfig, train: Split) -> BatchSource:
        return AlternatingBatches(train, cfg.batch_size, cfg.n_enc_epochs, cfg.n_dec_epochs)
