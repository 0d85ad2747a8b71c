"""A batch: what the data layer hands the objective, in one object instead of six keyword arguments."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass
class Batch:
    """A batch of examples and everything an objective may need about them.

    ``x`` is what the encoder sees; ``target`` what the likelihood scores (None: ``x`` itself; a denoising
    VAE encodes a corrupted ``x`` and scores the clean ``target``); ``condition`` the condition rows of a
    conditional model; ``mask`` 1 = observed / 0 = missing (shape of ``x``; the likelihood counts observed
    entries only); ``labels`` int64 class indices (semi-supervised families).
    """

    x: torch.Tensor
    target: torch.Tensor | None = None
    condition: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    labels: torch.Tensor | None = None

    @property
    def scored(self) -> torch.Tensor:
        """What the likelihood scores: ``target`` when given, else ``x``."""
        return self.x if self.target is None else self.target

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def rows(self, idx: torch.Tensor | slice) -> "Batch":
        """The rows ``idx`` of every tensor (index slices, no per-example Python)."""
        return Batch(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[idx]
                        for f in fields(self)})

    def to(self, device: torch.device | str) -> "Batch":
        """Every tensor on ``device`` (masks in ``x``'s dtype)."""
        out = {f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
               for f in fields(self)}
        if out["mask"] is not None:
            out["mask"] = out["mask"].to(dtype=out["x"].dtype)
        return replace(self, **out)
