"""The ``mult-vae`` and ``mult-dae`` families (Liang et al. 2018, "Variational Autoencoders for Collaborative
Filtering"): a user's items in, a multinomial distribution over all items out.

The encoder L2-normalises the user's row and drops input entries (dropout, training only), then a tanh MLP
gives q(z|x) (``mult-vae``) or a point z (``mult-dae``); the decoder's tanh MLP gives one logit per item. The
loss is the multinomial log-likelihood −Σ_i x_i log softmax(logits)_i, plus β·KL for ``mult-vae`` with β
annealed linearly (``total_anneal_steps``) up to its cap (``beta``, 0.2). Validation is NDCG@100 of the held-out
20% of the validation users' items given the other 80% (higher is better).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig
from ..core.objectives import Objective, StepOutput, gaussian_kl
from ..data.batch import Batch
from ..data.dataset import Split
from .base import BatchSource, Family

#: the papers' settings, used where the user set nothing (Liang et al. 2018, section 4 and their code)
PAPER_DEFAULTS: dict[str, Any] = {"hidden": [600], "latent_dim": 200, "dropout": 0.5, "batch_size": 500}
VAE_DEFAULTS: dict[str, Any] = {"beta": 0.2, "total_anneal_steps": 200_000}


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b)
        nn.init.xavier_uniform_(lin.weight)  # as Liang et al.'s code (biases N(0, 0.001²))
        nn.init.normal_(lin.bias, std=0.001)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MultVAE(nn.Module):
    """Mult-VAE (``variational``) or Mult-DAE: [items → hidden… → latent] and [latent → …hidden → items]."""

    def __init__(self, n_items: int, hidden: list[int], latent_dim: int, dropout: float, variational: bool):
        super().__init__()
        self.n_items, self.latent_dim, self.variational = n_items, latent_dim, variational
        self.shape = (n_items,)
        self.drop = nn.Dropout(dropout)
        self.encoder = _mlp([n_items, *hidden, latent_dim * (2 if variational else 1)])
        self.decoder = _mlp([latent_dim, *reversed(hidden), n_items])

    def posterior_params(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mu, logvar) of q(z|x) (logvar None for the DAE) from a dense batch of rows."""
        h = self.encoder(self.drop(F.normalize(x, dim=1)))
        if not self.variational:
            return h, None
        return h[:, : self.latent_dim], h[:, self.latent_dim:]

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Item logits for users with items ``x`` ([B, items], 0/1), at the posterior mean (eval mode)."""
        return self.decoder(self.posterior_params(x)[0])


def multinomial_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−Σ_i x_i log softmax(logits)_i per row (nats)."""
    return -(F.log_softmax(logits, dim=1) * x).sum(1)


class MultObjective(Objective):
    """Multinomial NLL (+ β·KL for Mult-VAE) to minimise; validated by NDCG@100 on the validation users
    (``val_ndcg@100``, higher is better) and Recall@20/50, plus ``val_loss``, the −ELBO (β = 1) of their
    folded-in items."""

    metric = "val_ndcg@100"
    metric_label = "NDCG@100"
    metric_unit = ""
    maximize = True
    loss_label = "loss"

    def step(self, model: MultVAE, batch: Batch, beta: float) -> StepOutput:
        mu, logvar = model.posterior_params(batch.x)
        if logvar is not None:
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            kl = gaussian_kl(mu, logvar).sum(1)
        else:
            z, kl = mu, torch.zeros(len(mu), device=mu.device)
        nll = multinomial_nll(model.decoder(z), batch.x)
        with torch.no_grad():
            sums = torch.stack([(nll + beta * kl).sum(), nll.sum(), kl.sum()])
        return StepOutput((nll + beta * kl).mean(), sums)

    def epoch_row(self, sums: torch.Tensor, n: int, steps: int) -> dict[str, float]:
        loss, recon, kl = (sums / n).tolist()
        return {"train_loss": loss, "train_recon": recon, "train_kl": kl}

    @torch.no_grad()
    def validate(self, model: MultVAE, split: Split, batch_size: int) -> dict[str, float]:
        from ..core.ranking import split_metrics
        from ..data.interactions import dense_rows

        was = model.training
        model.eval()
        try:
            dev = next(model.parameters()).device
            m = split_metrics(model.scores, split.fold, split.heldout, {"ndcg@100": 100, "recall@20": 20},
                              batch_size, dev)
            total, n = 0.0, split.fold.shape[0]
            for i in range(0, n, batch_size):
                x = dense_rows(split.fold, slice(i, i + batch_size)).to(dev)
                mu, logvar = model.posterior_params(x)
                kl = gaussian_kl(mu, logvar).sum() if logvar is not None else 0.0
                total += float(multinomial_nll(model.decoder(mu), x).sum() + kl)
        finally:
            model.train(was)
        return {"val_loss": total / max(n, 1), "val_ndcg@100": m["ndcg@100"], "val_recall@20": m["recall@20"]}


class InteractionBatches(BatchSource):
    """Dense batches of users' rows, made from the training split's CSR matrix one batch at a time."""

    def epoch(self, perm: torch.Tensor, gen: torch.Generator) -> Iterator[Batch]:
        from ..data.interactions import dense_rows

        t, bs = self.train, self.batch_size
        order = perm.cpu().numpy()
        for k in range(self.steps):
            yield Batch(dense_rows(t.fold, order[k * bs: (k + 1) * bs]).to(t.x.device))


class MultVAEFamily(Family):
    name = "mult-vae"
    data_kind = "interactions"
    example_model = False
    variational = True
    unsupported = {
        "model": ("mlp", "its networks are tanh MLPs"),
        "iw_samples": (1, "it trains the β-weighted ELBO of Liang et al."),
        "free_bits": (0.0, "β is annealed instead"),
        "kl_warmup": (0, "β is annealed by --total-anneal-steps"),
        "kl_schedule": ("linear", "β is annealed by --total-anneal-steps"),
        "corruption": (None, "input dropout (--dropout) is its corruption"),
        "binarize": ("none", "interactions are already 0/1"),
        "missing": ("error", "a missing interaction is a 0"),
        "conditional": (False, "it is not conditional"),
        "condition_columns": (None, "it is not conditional"),
        "gaussian_std": (None, "its likelihood is multinomial"),
    }

    def defaults(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` with the paper's settings where the user set nothing."""
        paper = {**PAPER_DEFAULTS, **(VAE_DEFAULTS if self.variational else {})}
        return cfg.model_copy(update={k: v for k, v in paper.items() if k not in cfg.model_fields_set})

    def watched(self) -> tuple[str, bool]:
        return MultObjective.metric, MultObjective.maximize

    def build_for_run(self, cfg: TrainConfig, info: dict, shape: tuple[int, ...], cond) -> tuple[nn.Module, nn.Module]:
        model = self.build(cfg, shape)
        return model, model

    def build(self, cfg: TrainConfig, shape: tuple[int, ...]) -> MultVAE:
        return MultVAE(int(shape[0]), list(cfg.hidden), cfg.latent_dim, cfg.dropout, self.variational)

    def objective(self, cfg: TrainConfig, train: Split) -> Objective:
        return MultObjective()

    def batch_source(self, cfg: TrainConfig, train: Split) -> BatchSource:
        return InteractionBatches(train, cfg.batch_size)


class MultDAEFamily(MultVAEFamily):
    """Mult-DAE: the same networks with a point latent and no KL term (β and its annealing do not apply)."""

    name = "mult-dae"
    variational = False
