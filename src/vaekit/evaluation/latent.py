"""Latent-space tools: interpolation (linear and spherical), traversals, 2-D maps, the decoded manifold.

Pure functions over a :class:`~vaekit.model.VAE` and tensors in the model's units; pictures are made
elsewhere (``report.py``, ``figures.py``).
"""

from __future__ import annotations


import numpy as np
import torch

from ..core.vae import VAE


def lerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` points on the straight line from ``z0`` to ``z1`` (both ends included): ``[steps, L]``."""
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device).unsqueeze(1)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Spherical interpolation (Shoemake; White 2016 for Gaussian latents): follows the great circle, so
    points keep a norm typical of N(0, I) draws instead of passing near the low-density origin."""
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(omega.sin().abs()) < 1e-6:  # (anti)parallel: the circle is not defined; use the line
        return lerp(z0, z1, steps)
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device).unsqueeze(1)
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / omega.sin()


@torch.no_grad()
def interpolate(model: VAE, x_from: torch.Tensor, x_to: torch.Tensor, steps: int = 10,
                method: str = "linear", c_from: torch.Tensor | None = None,
                c_to: torch.Tensor | None = None) -> torch.Tensor:
    """Decoded means along a path between the posterior means of two examples: ``[steps, *shape]``.

    For conditional models each end is encoded under its own condition and the path is decoded under
    the first one's.
    """
    if steps < 2:
        raise ValueError("steps must be at least 2")
    dev = next(model.parameters()).device
    c = None if c_from is None else torch.stack([c_from, c_to if c_to is not None else c_from]).to(dev)
    mu, _ = model.posterior_params(torch.stack([x_from, x_to]).to(dev), c)
    path = slerp(mu[0], mu[1], steps) if method == "spherical" else lerp(mu[0], mu[1], steps)
    return model.decode(path, _repeat(c_from, steps, dev)).mean.cpu()


def _repeat(c: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor | None:
    return None if c is None else c.reshape(1, -1).to(device).repeat(n, 1)


@torch.no_grad()
def traversal(model: VAE, base: torch.Tensor | None = None, dims: list[int] | None = None, steps: int = 9,
              span: float = 3.0, c: torch.Tensor | None = None) -> torch.Tensor:
    """Each latent dimension in ``dims`` swept over ±``span`` prior standard deviations around ``base``
    (zeros by default) with the others fixed: decoded means ``[len(dims) * steps, *shape]``, a row per dim."""
    dev = next(model.parameters()).device
    L = model.latent_dim
    base = torch.zeros(L, device=dev) if base is None else base.to(dev)
    dims = list(range(L)) if dims is None else list(dims)
    values = torch.linspace(-span, span, steps, device=dev)
    z = base.repeat(len(dims) * steps, 1)
    for r, d in enumerate(dims):
        z[r * steps: (r + 1) * steps, d] = base[d] + values
    return model.decode(z, _repeat(c, len(z), dev)).mean.cpu()


@torch.no_grad()
def manifold(model: VAE, n: int = 15, span: float = 0.95, c: torch.Tensor | None = None) -> torch.Tensor:
    """For a 2-D latent: decoded means on an ``n``×``n`` grid through the prior's quantiles
    (Kingma & Welling 2014, fig. 4), from ``1 - span`` to ``span``: ``[n * n, *shape]``, rows top to bottom."""
    if model.latent_dim != 2:
        raise ValueError("the manifold grid needs a 2-D latent space")
    dev = next(model.parameters()).device
    q = torch.linspace(1 - span, span, n)
    g = torch.distributions.Normal(0.0, 1.0).icdf(q)
    zy, zx = torch.meshgrid(g.flip(0), g, indexing="ij")
    z = torch.stack([zx.reshape(-1), zy.reshape(-1)], 1).to(dev)
    return model.decode(z, _repeat(c, len(z), dev)).mean.cpu()


def project_2d(mu: torch.Tensor, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates of latent means: the latent itself when 2-D, else PCA (or t-SNE), and the axis name."""
    m = mu.detach().cpu().numpy().astype(np.float64)
    if m.shape[1] == 1:
        return np.stack([m[:, 0], np.zeros(len(m))], 1), "z"
    if m.shape[1] == 2:
        return m, "z"
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(5, (len(m) - 1) // 3)))
        return TSNE(n_components=2, random_state=seed, init="pca", perplexity=perplexity).fit_transform(m), "t-SNE"
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(m), "PC"
