"""Input corruption for denoising VAEs (Im et al. 2017) and for testing denoisers on clean data.

A corruption is written ``KIND:LEVEL`` (the ``--corruption`` / ``--add-noise`` syntax):

- ``gaussian:σ``     add N(0, σ²) noise to every feature (σ in the model's input units: [0, 1] for images,
                     standard deviations for standardized tables);
- ``masking:p``      set each feature to 0 with probability p (0 is black for images, the column mean for
                     standardized tables);
- ``salt-pepper:p``  set each feature with probability p to its minimum or maximum (0 or 1, half each);
                     only for data in [0, 1].

Values are clipped back to [0, 1] when ``bounded`` (images), so a corrupted image is still an image.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..errors import UsageError

NOISE_KINDS = ("gaussian", "masking", "salt-pepper")


class Corruption(NamedTuple):
    kind: str
    level: float

    def __str__(self) -> str:
        return f"{self.kind}:{self.level:g}"


def check_corruption(spec: str) -> Corruption:
    """``"gaussian:0.3"`` → Corruption("gaussian", 0.3); ValueError says what is wrong (no flag name)."""
    kind, sep, level_text = str(spec).strip().partition(":")
    kind = kind.strip().lower().replace("_", "-")
    if kind not in NOISE_KINDS or not sep:
        raise ValueError(f"{spec!r} is not KIND:LEVEL; use gaussian:0.3, masking:0.25 or salt-pepper:0.1")
    try:
        level = float(level_text)
    except ValueError:
        raise ValueError(f"the level {level_text!r} of {spec!r} is not a number") from None
    if kind == "gaussian" and not 0.0 < level <= 100.0:
        raise ValueError(f"the Gaussian noise std of {spec!r} must be in (0, 100]")
    if kind != "gaussian" and not 0.0 < level < 1.0:
        raise ValueError(f"the {kind} probability of {spec!r} must be in (0, 1)")
    return Corruption(kind, level)


def parse_corruption(spec: str, flag: str = "--corruption") -> Corruption:
    """:func:`check_corruption` for user input: a one-line UsageError that names ``flag``."""
    try:
        return check_corruption(spec)
    except ValueError as err:
        raise UsageError(f"{flag}: {err}") from None


def corrupt(x: torch.Tensor, corruption: Corruption | str, bounded: bool,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """A corrupted copy of ``x`` (any shape); ``bounded`` data are in [0, 1] and stay there.

    The noise is drawn on x's device; ``generator`` (on that device) makes it reproducible.
    """
    c = check_corruption(corruption) if isinstance(corruption, str) else corruption
    if c.kind == "salt-pepper" and not bounded:
        raise UsageError("salt-pepper noise needs data in [0, 1] (images); use gaussian or masking for tables")
    if c.kind == "gaussian":
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        out = x + c.level * noise
        return out.clamp_(0.0, 1.0) if bounded else out
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if c.kind == "masking":
        return torch.where(u < c.level, torch.zeros_like(x), x)
    # salt-pepper: u < p/2 → 0 (pepper), p/2 ≤ u < p → 1 (salt)
    out = torch.where(u < c.level / 2, torch.zeros_like(x), x)
    return torch.where((u >= c.level / 2) & (u < c.level), torch.ones_like(x), out)
