"""Encoder and decoder networks.

Encoders map ``x`` of shape ``[N, *shape]`` to ``[N, 2 * latent_dim]`` (posterior mean and log-variance,
from one fused output layer); decoders map ``z`` of shape ``[N, latent_dim]`` to the likelihood's
parameters of shape ``[N, *shape]``. They know nothing of distributions or losses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def mlp_layers(sizes: Sequence[int], dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return layers


def _conditioned(body: nn.Sequential, split: int, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """Run ``body`` with the condition ``c`` concatenated to the features after its first ``split`` layers."""
    if c is None:
        return body(x)
    h = body[:split](x) if split else x
    h = torch.cat([h, c.to(h.dtype)], dim=1)
    return body[split:](h)


class MLPEncoder(nn.Module):
    """x (flattened, with the condition c appended for conditional models) → MLP → [mean | log-variance]."""

    def __init__(self, shape: tuple[int, ...], hidden: Sequence[int], latent_dim: int, dropout: float = 0.0,
                 cond_dim: int = 0):
        super().__init__()
        d = math.prod(shape) + cond_dim
        self.body = nn.Sequential(nn.Flatten(), *mlp_layers([d, *hidden], dropout))
        self.head = nn.Linear(hidden[-1] if hidden else d, 2 * latent_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(_conditioned(self.body, 1, x, c))


class MLPDecoder(nn.Module):
    """[z | c] → MLP → likelihood parameters of the example shape."""

    def __init__(self, shape: tuple[int, ...], hidden: Sequence[int], latent_dim: int, dropout: float = 0.0,
                 cond_dim: int = 0):
        super().__init__()
        self.shape = tuple(shape)
        rev = list(reversed(hidden))
        self.body = nn.Sequential(*mlp_layers([latent_dim + cond_dim, *rev], dropout))
        self.head = nn.Linear(rev[-1] if rev else latent_dim + cond_dim, math.prod(shape))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(_conditioned(self.body, 0, z, c)).view(-1, *self.shape)


def default_channels(height: int, width: int) -> list[int]:
    """Channel counts for a conv stack that halves the image down to about 4×4 (28→7, 32→4, 64→4)."""
    chans: list[int] = []
    h, w = height, width
    while len(chans) < 5 and h % 2 == 0 and w % 2 == 0 and h // 2 >= 4 and w // 2 >= 4:
        chans.append(min(32 * 2 ** len(chans), 256))
        h, w = h // 2, w // 2
    return chans


def check_conv_shape(shape: tuple[int, ...], channels: Sequence[int]) -> str | None:
    """Why a conv model cannot take examples of ``shape`` (None when it can)."""
    if len(shape) != 3:
        return f"the conv model needs images [C, H, W], got examples of shape {list(shape)}; use --model mlp"
    _, h, w = shape
    if not channels:
        return f"images of {h}×{w} cannot be halved by a conv stack; use --image-size 28 (or 32, 64) or --model mlp"
    f = 2 ** len(channels)
    if h % f or w % f:
        return (f"{len(channels)} conv layers need image sides divisible by {f}, got {h}×{w}; "
                f"use --image-size or fewer --channels")
    return None


class ConvEncoder(nn.Module):
    """Stride-2 4×4 convolutions (each halves H and W), then one linear layer to mean and log-variance."""

    def __init__(self, shape: tuple[int, ...], channels: Sequence[int], hidden: Sequence[int],
                 latent_dim: int, dropout: float = 0.0, cond_dim: int = 0):
        super().__init__()
        c, h, w = shape
        layers: list[nn.Module] = []
        for c_out in channels:
            layers += [nn.Conv2d(c, c_out, 4, stride=2, padding=1), nn.ReLU()]
            c = c_out
        f = 2 ** len(channels)
        flat = c * (h // f) * (w // f) + cond_dim  # the condition joins the flattened feature map
        self._split = len(layers) + 1
        self.body = nn.Sequential(*layers, nn.Flatten(), *mlp_layers([flat, *hidden], dropout))
        self.head = nn.Linear(hidden[-1] if hidden else flat, 2 * latent_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(_conditioned(self.body, self._split, x, c))


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: linear layers up to a small feature map, then transposed convs."""

    def __init__(self, shape: tuple[int, ...], channels: Sequence[int], hidden: Sequence[int],
                 latent_dim: int, dropout: float = 0.0, cond_dim: int = 0):
        super().__init__()
        c_img, h, w = shape
        f = 2 ** len(channels)
        rev = list(reversed(channels))
        self.start = (rev[0], h // f, w // f)
        flat = math.prod(self.start)
        self.body = nn.Sequential(*mlp_layers([latent_dim + cond_dim, *reversed(hidden), flat], dropout))
        ups: list[nn.Module] = []
        for c_in, c_out in zip(rev, rev[1:]):
            ups += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        ups.append(nn.ConvTranspose2d(rev[-1], c_img, 4, stride=2, padding=1))
        self.up = nn.Sequential(*ups)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.up(_conditioned(self.body, 0, z, c).view(-1, *self.start))
