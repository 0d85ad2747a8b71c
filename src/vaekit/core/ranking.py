"""Ranking metrics of recommenders, as Liang et al. (2018) define them, on dense batches of users.

- NDCG@k: DCG of the top-k list (a held-out item at rank r counts 1 / log2(r + 1)) divided by the best DCG
  achievable with the user's held-out items (all of them relevant, min(k, n) of them in the top k);
- Recall@k: held-out items in the top k divided by min(k, n) (so a perfect list scores 1 even when n > k).

Users without held-out items have no value (NaN) and are left out of means.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _ranked_hits(scores: torch.Tensor, heldout: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(hits [B, k] of the top-k items in rank order, n [B] held-out items per user)."""
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices
    return (heldout.gather(1, top) > 0).to(torch.float64), (heldout > 0).sum(1)


def ndcg_at_k(scores: torch.Tensor, heldout: torch.Tensor, k: int) -> torch.Tensor:
    """NDCG@k per user ([B], float64; NaN for users with no held-out item). ``scores`` [B, I] rank the
    items (higher first; items to exclude at −inf), ``heldout`` [B, I] marks the relevant ones (> 0)."""
    hits, n = _ranked_hits(scores, heldout, k)
    discount = 1.0 / torch.log2(torch.arange(2, hits.shape[1] + 2, dtype=torch.float64, device=hits.device))
    dcg = (hits * discount).sum(1)
    ideal = torch.cumsum(discount, 0)
    idcg = torch.where(n > 0, ideal[(n.clamp(1, hits.shape[1]) - 1)], torch.full_like(dcg, float("nan")))
    return dcg / idcg


def recall_at_k(scores: torch.Tensor, heldout: torch.Tensor, k: int) -> torch.Tensor:
    """Recall@k per user ([B], float64): held-out items in the top k / min(k, n); NaN when n = 0."""
    hits, n = _ranked_hits(scores, heldout, k)
    denom = n.clamp(max=k).to(torch.float64)
    return torch.where(n > 0, hits.sum(1) / denom.clamp(min=1), torch.full_like(denom, float("nan")))


def mask_seen(scores: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """``scores`` with the items a user has already (``seen`` > 0) at −inf, so they are never ranked."""
    return scores.masked_fill(seen > 0, float("-inf"))


@torch.no_grad()
def split_metrics(score_fn, fold: Any, heldout: Any, ks: dict[str, int], batch_size: int = 1024,
                  device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean ranking metrics over the users of a held-out split: ``fold`` and ``heldout`` are CSR matrices
    (same rows); ``score_fn(x)`` gives item scores for a dense batch of fold-in rows; ``ks`` maps a metric
    name (``ndcg@100``, ``recall@20``…) to its k. Only users with held-out items count; ``users`` says how
    many did."""
    from ..data.interactions import dense_rows

    sums = {name: 0.0 for name in ks}
    users = 0
    for i in range(0, fold.shape[0], batch_size):
        rows = slice(i, i + batch_size)
        x = dense_rows(fold, rows).to(device)
        held = dense_rows(heldout, rows).to(device)
        scores = mask_seen(score_fn(x).float(), x)
        scored = held.sum(1) > 0
        users += int(scored.sum())
        for name, k in ks.items():
            fn = ndcg_at_k if name.startswith("ndcg") else recall_at_k
            v = fn(scores[scored], held[scored], k)
            sums[name] += float(v.sum())
    return {**{name: (s / users if users else float("nan")) for name, s in sums.items()}, "users": users}


def coverage(top_items: np.ndarray, n_items: int) -> float:
    """Catalogue coverage: the fraction of all items that appear in at least one user's list."""
    return float(len(np.unique(top_items)) / n_items) if n_items else 0.0
