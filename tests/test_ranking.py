"""Ranking metrics (issue 16) against values computed by hand (Liang et al. 2018's definitions)."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from vaekit.evaluation.ranking import mask_seen, ndcg_at_k, recall_at_k, split_metrics

SCORES = torch.tensor([[5.0, 4, 3, 2, 1]] * 3)  # every user ranks items 0, 1, 2, 3, 4
HELD = torch.tensor([[0.0, 1, 0, 1, 0],   # relevant: items 1 and 3 (ranks 2 and 4)
                     [0.0, 0, 0, 0, 0],   # nothing held out
                     [1.0, 1, 1, 1, 0]])  # four relevant, the top two among them


def test_ndcg_and_recall_match_hand_computed_values():
    l2, l3, l5 = math.log2(2), math.log2(3), math.log2(5)
    n3 = ndcg_at_k(SCORES, HELD, 3)
    assert n3[0].item() == pytest.approx((1 / l3) / (1 / l2 + 1 / l3))  # 0.38685
    assert math.isnan(n3[1].item()) and n3[2].item() == pytest.approx(1.0)
    assert ndcg_at_k(SCORES, HELD, 5)[0].item() == pytest.approx((1 / l3 + 1 / l5) / (1 / l2 + 1 / l3))  # 0.65093
    assert ndcg_at_k(SCORES, HELD, 1)[0].item() == 0.0
    r = recall_at_k(SCORES, HELD, 3)
    assert r[0].item() == pytest.approx(0.5) and math.isnan(r[1].item())
    assert r[2].item() == pytest.approx(1.0)  # 3 hits / min(3, 4)
    assert recall_at_k(SCORES, HELD, 2)[2].item() == pytest.approx(1.0)  # normalised by min(k, n), not n
    assert recall_at_k(SCORES, HELD, 5)[0].item() == pytest.approx(1.0)


def test_seen_items_are_never_ranked_and_split_metrics_average_scored_users():
    fold = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=np.float32))
    held = sp.csr_matrix(HELD.numpy())
    masked = mask_seen(SCORES, torch.from_numpy(fold.toarray()))
    assert masked.topk(1).indices[:, 0].tolist() == [1, 2, 0]
    got = split_metrics(lambda x: SCORES[: len(x)], fold, held, {"ndcg@1": 1, "recall@2": 2}, batch_size=2)
    # user 0: item 0 seen, so item 1 (relevant) ranks first; user 2: items 0, 1 rank first (both relevant)
    assert got["users"] == 2 and got["ndcg@1"] == pytest.approx(1.0) and got["recall@2"] == pytest.approx(0.75)
