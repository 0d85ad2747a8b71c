"""Ranking metrics of recommenders (NDCG@k, Recall@k as Liang et al. 2018 define them); the code is in
:mod:`vaekit.core.ranking`, below the families whose objectives validate with it."""

from ..core.ranking import coverage, mask_seen, ndcg_at_k, recall_at_k, split_metrics

__all__ = ["coverage", "mask_seen", "ndcg_at_k", "recall_at_k", "split_metrics"]
