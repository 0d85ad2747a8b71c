"""vaekit.Recommender (issue 16): a scikit-learn estimator over a user x item matrix, trained through api.train."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from data_helpers import raises_one_line

import vaekit
from vaekit.errors import DataError, UsageError

TINY = dict(hidden=(16,), latent_dim=4, epochs=2, batch_size=16, patience=None)


def clicks(n_users=60, n_items=25, per_user=8, seed=0):
    rng = np.random.default_rng(seed)
    X = np.zeros((n_users, n_items))
    for u in range(n_users):
        X[u, rng.choice(n_items, per_user, replace=False)] = 1
    return sp.csr_matrix(X)


@pytest.fixture(scope="module")
def fitted():
    return vaekit.Recommender(**TINY).fit(clicks())


def test_fit_predict_top_k_unseen_items(fitted):
    X = clicks(5, seed=9)
    top = fitted.predict(X, k=5)
    assert top.shape == (5, 5) and top.dtype == np.int64
    dense = X.toarray()
    for r in range(5):
        assert len(set(top[r])) == 5 and not dense[r, top[r]].any()  # never an item already clicked
    p = fitted.predict_proba(X.toarray())  # a dense 0/1 array works too
    assert p.shape == (5, 25) and np.allclose(p.sum(1), 1)
    masked = np.where(dense > 0, -1, p)
    assert (np.argsort(-masked, axis=1, kind="stable")[:, :5] == top).all()  # predict ranks by predict_proba
    assert fitted.items_ == [str(j) for j in range(25)] and fitted.n_features_in_ == 25
    assert fitted.n_iter_ == 2 and fitted.trained_.config.family == "mult-vae"
    assert fitted.trained_.config.beta == 0.2 and fitted.trained_.config.dropout == 0.5  # the paper's defaults


def test_score_is_ndcg_at_100_of_held_out_items(fitted):
    from vaekit.core.ranking import ndcg_at_k

    X, Y = clicks(6, seed=3), clicks(6, per_user=2, seed=4)
    Y = sp.csr_matrix(Y.toarray() * (X.toarray() == 0))  # held-out items are not in the history
    scores = fitted.trained_.model.scores(torch.tensor(X.toarray(), dtype=torch.float32)).detach()
    scores[torch.tensor(X.toarray()) > 0] = -float("inf")
    hand = ndcg_at_k(scores, torch.tensor(Y.toarray(), dtype=torch.float32), 100)
    assert fitted.score(X, Y) == pytest.approx(float(hand[torch.tensor(Y.toarray().sum(1) > 0)].mean()))
    s = fitted.score(clicks(10, seed=5))  # 20% of each row held out with random_state
    assert 0 < s <= 1 and s == fitted.score(clicks(10, seed=5))
    with raises_one_line("no row has items to score"):
        fitted.score(clicks(4, per_user=3, seed=1))  # fewer than 5 clicks a row: nothing held out


def test_deterministic_under_random_state_and_leaves_torch_rng_alone():
    X = clicks()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = vaekit.Recommender(**TINY, random_state=7).fit(X)
    assert torch.rand(1) == before  # the caller's RNG is as it was
    b = vaekit.Recommender(**TINY, random_state=7).fit(X)
    for k, v in a.trained_.model.state_dict().items():
        assert torch.equal(v, b.trained_.model.state_dict()[k]), k


def test_params_clone_and_bad_input_are_one_line():
    from sklearn.base import clone

    est = vaekit.Recommender(family="recvae", latent_dim=3, hidden=(8,), epochs=1)
    assert clone(est).get_params() == est.get_params() and est.get_params()["family"] == "recvae"
    assert est.set_params(latent_dim=5).latent_dim == 5
    with raises_one_line("family must be one of", UsageError):
        vaekit.Recommender(family="vae").fit(clicks())
    with raises_one_line("non-negative"):
        vaekit.Recommender(**TINY).fit(-clicks().toarray())
    with raises_one_line("at least 3 users"):
        vaekit.Recommender(**TINY).fit(np.array([[1, 0], [0, 0]]))
    with raises_one_line("not fitted yet", UsageError):
        vaekit.Recommender().predict(clicks())


def test_predict_bad_input_and_padding(fitted):
    with raises_one_line("k 26 is more than the catalogue of 25", UsageError):
        fitted.predict(clicks(2), k=26)
    with raises_one_line("X has 3 item columns, the model was fitted on 25"):
        fitted.predict(np.ones((2, 3)))
    almost = np.ones((1, 25))
    almost[0, 4] = 0
    assert fitted.predict(almost, k=3).tolist() == [[4, -1, -1]]  # one unseen item left


def test_save_load_round_trip_and_load_of_a_cli_run(fitted, tmp_path):
    out = fitted.save(tmp_path / "rec")
    back = vaekit.Recommender.load(out)
    X = clicks(4, seed=2)
    assert (back.predict(X, k=5) == fitted.predict(X, k=5)).all()
    assert back.get_params()["hidden"] == (16,) and back.n_iter_ == 2
    assert vaekit.load(out).recommend({"new": ["0", "1"]}, k=3)["new"][0][0] not in ("0", "1")
    with pytest.raises(Exception, match="already exists"):
        fitted.save(out)
    vae_run = tmp_path / "vae"
    vaekit.VAE(latent_dim=2, hidden=(8,), epochs=1).fit(np.random.default_rng(0).normal(size=(20, 3))).save(vae_run)
    with raises_one_line("not a recommendation run", vaekit.errors.RunError):
        vaekit.Recommender.load(vae_run)
