"""The Fréchet distance between two Gaussians (FID, FCD): the squared 2-Wasserstein distance

    d² = ||μ₁ − μ₂||² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½)

computed as FID's reference code does (Dougal Sutherland's stable version): the matrix square root by
scipy.linalg.sqrtm, a small ridge when the product is singular, and a negligible imaginary part dropped.

Also here: precision and recall of generated samples (Kynkäänniemi et al. 2019) in the same features, and the
feature statistics both use (vaekit's sample-quality metrics, :mod:`vaekit.evaluation.quality`)."""

from __future__ import annotations

import numpy as np
import torch


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (same dimension), in squared units of the
    features. ``eps`` is the ridge added to both covariances when their product has no finite square root."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"Fréchet distance: shapes differ (means {mu1.shape}, {mu2.shape}; "
                         f"covariances {sigma1.shape}, {sigma2.shape})")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Fréchet distance: the covariance product's square root is complex "
                             f"(imaginary part up to {np.max(np.abs(covmean.imag)):.3g})")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def feature_stats(f: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean ``[d]``, covariance ``[d, d]``, unbiased) of features ``[N, d]`` in float64."""
    a = np.asarray(f.detach().cpu().numpy() if torch.is_tensor(f) else f, dtype=np.float64)
    return a.mean(0), np.cov(a, rowvar=False).reshape(a.shape[1], a.shape[1])


def _knn_radii(f: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance of each row of ``f`` to its k-th nearest other row."""
    out = []
    for i in range(0, len(f), chunk):
        d = torch.cdist(f[i: i + chunk], f)
        out.append(d.kthvalue(k + 1, dim=1).values)  # the 1st is the row itself (distance 0)
    return torch.cat(out)


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """Whether each point lies in at least one ball (centre, radius)."""
    out = []
    for i in range(0, len(points), chunk):
        d = torch.cdist(points[i: i + chunk], centres)
        out.append((d <= radii.unsqueeze(0)).any(1))
    return torch.cat(out)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): the manifold of a set is the union of balls
    around its points with radius the distance to the k-th nearest neighbour; precision = fraction of
    ``fake`` inside the real manifold, recall = fraction of ``real`` inside the fake one."""
    real, fake = real.double(), fake.double()
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} real and generated examples")
    precision = float(_covered(fake, real, _knn_radii(real, k)).double().mean())
    recall = float(_covered(real, fake, _knn_radii(fake, k)).double().mean())
    return precision, recall
