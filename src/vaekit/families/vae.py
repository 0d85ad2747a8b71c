"""The ``vae`` family: MLP or conv networks, optionally conditional, trained on the ELBO (or IWAE_K), with
dynamic binarization, denoising corruptions and missing-value masks applied per batch."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..config import TrainConfig
from ..core.objectives import ELBO, IWAE, Objective
from ..data.batch import Batch
from ..data.dataset import Split, in_unit_interval
from ..data.noise import check_corruption, corrupt
from .base import BatchSource, Family


class VAEBatches(BatchSource):
    """Index slices of the training split; a fresh Bernoulli draw per step with ``binarize: dynamic``
    (Burda et al.) and, for a denoising VAE, a fresh corruption of the encoder's input (the clean batch is
    the target)."""

    def __init__(self, train: Split, cfg: TrainConfig):
        super().__init__(train, cfg.batch_size)
        self.dynamic = cfg.binarize == "dynamic"
        self.noise = check_corruption(cfg.corruption) if cfg.corruption else None
        self.bounded = self.noise is not None and in_unit_interval(train.x)

    def epoch(self, perm: torch.Tensor, gen: torch.Generator) -> Iterator[Batch]:
        t, bs = self.train, self.batch_size
        for k in range(self.steps):
            idx = perm[k * bs: (k + 1) * bs]
            b = Batch(t.x[idx], condition=None if t.c is None else t.c[idx],
                      mask=None if t.mask is None else t.mask[idx])
            if self.dynamic:
                b.x = torch.bernoulli(b.x)
            if self.noise is not None:
                b.target, b.x = b.x, corrupt(b.x, self.noise, self.bounded)
            yield b


class VAEFamily(Family):
    name = "vae"

    def objective(self, cfg: TrainConfig, train: Split) -> Objective:
        return IWAE(cfg.iw_samples) if cfg.iw_samples > 1 else ELBO(cfg.free_bits)

    def batch_source(self, cfg: TrainConfig, train: Split) -> BatchSource:
        return VAEBatches(train, cfg)
