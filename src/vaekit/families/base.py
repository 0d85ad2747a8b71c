"""What a model family is: it builds its module, its objective and its batch source, and refuses the
settings it does not support (one line each, never silently ignored)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from ..core.objectives import Objective
from ..data.dataset import Split
from ..errors import UsageError


class BatchSource:
    """One epoch's training batches. The trainer draws the epoch's permutation of the training split (from
    its seeded shuffling generator) and the source turns it into batches; ``gen`` is that same generator,
    for sources that draw more (M2's labelled batch). A batch with a ``phase`` attribute (not None) is a
    step of that phase only: the trainer steps the optimizer of :meth:`Family.param_groups` of that name
    (RecVAE's alternating encoder and decoder updates); ``steps`` counts every yielded batch."""

    def __init__(self, train: Split, batch_size: int):
        self.train = train
        self.batch_size = batch_size

    @property
    def steps(self) -> int:
        """Optimizer steps per epoch."""
        return math.ceil(len(self.train) / self.batch_size)

    def epoch(self, perm: torch.Tensor, gen: torch.Generator) -> Iterator[Any]:  # pragma: no cover
        raise NotImplementedError


class Family:
    """A model family (``vae``, ``m2``; later ``mult-vae``, ``seq-vae`` …), chosen by the ``family`` setting."""

    name: str = ""
    #: settings this family cannot honour: field -> (its neutral value, why); :meth:`check` refuses others
    unsupported: dict[str, tuple[Any, str]] = {}
    #: the data kind this family trains on, asked for by name (None: the kind that claims the source)
    data_kind: str | None = None
    #: whether the commands over a VAE's examples (sample, reconstruct, encode, evaluate's bounds, report) apply
    #: to this family's runs; a recommender's run answers `vaekit recommend` instead
    example_model: bool = True
    #: whether ``vaekit tune`` searches this family's settings
    tunable: bool = True
    #: what the VAE commands say instead when they refuse this family's runs (``example_model`` False)
    other_commands: str = ("(recommendation) use `vaekit recommend {run} --data HISTORY.csv` (its test metrics are in "
                           "results.json)")

    def build_for_run(self, cfg: TrainConfig, info: dict, shape: tuple[int, ...],
                      cond: Any) -> tuple[nn.Module, nn.Module]:
        """(the VAE a TrainedVAE wraps, the module whose state dict a run's weights file holds) for a run
        with ``config.json`` ``info``: here the VAE itself, conditional when ``cond`` is given."""
        from ..core.vae import build_model

        vae = build_model(cfg, shape, cond.dim if cond is not None else 0, info["data"].get("schema"))
        return vae, vae

    def defaults(self, cfg: TrainConfig) -> TrainConfig:
        """A new run's settings with this family's own defaults where the user set nothing (its paper's)."""
        return cfg

    def check(self, cfg: TrainConfig) -> None:
        """Refuse, in one line naming the flag, any setting this family cannot honour."""
        for field, (neutral, why) in self.unsupported.items():
            if getattr(cfg, field) != neutral:
                flag = "--" + field.replace("_", "-")
                raise UsageError(f"{flag} is not supported by the {self.name} family ({why}); drop {flag}")

    def objective(self, cfg: TrainConfig, train: Split) -> Objective:  # pragma: no cover - interface
        raise NotImplementedError

    def batch_source(self, cfg: TrainConfig, train: Split) -> BatchSource:  # pragma: no cover - interface
        raise NotImplementedError

    def watched(self) -> tuple[str, bool]:
        """(the validation column early stopping and tune's pruner watch, whether higher is better); the
        objective's :attr:`~vaekit.core.objectives.Objective.metric` and ``maximize``."""
        return "val_loss", False

    def param_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]] | None:
        """Parameters per training phase, one optimizer each (same settings), for a family whose batches
        carry a ``phase``; None (the default): one optimizer over every parameter."""
        return None

    def networks(self, model: nn.Module) -> nn.Module:
        """The module holding ``encoder`` and ``decoder`` (what ``--compile`` compiles)."""
        return model

    def state_extra(self) -> dict:
        """Extra keys for the trainer-state JSON of this family's runs."""
        return {}
