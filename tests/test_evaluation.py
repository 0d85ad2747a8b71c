"""Evaluation numbers: IWAE bounds hold and tighten, a closed form is matched, collapse is detected."""

import math

import pytest
import torch

from vaekit.config import make_config
from vaekit.evaluation import (active_units, collapse_warning, elbo_parts, evaluate, iwae_bound, kl_per_dim,
                               posterior_stats)
from vaekit.model import build_model


def _small_trained_model():
    import vaekit

    t = vaekit.train("digits", latent_dim=4, hidden=[64], batch_size=64, epochs=5, seed=0)
    from vaekit.data import load_source

    return t.model, load_source("digits").x[:200]


@pytest.fixture(scope="module")
def trained():
    return _small_trained_model()


def test_iwae_is_above_elbo_on_every_batch_and_grows_with_k(trained):
    model, x = trained
    torch.manual_seed(0)
    means = {}
    for k in (1, 10, 100):
        torch.manual_seed(1)
        means[k] = float(iwae_bound(model, x, k).mean())
    # IWAE_k is a bound that tightens in expectation; with 200 examples the Monte-Carlo noise is far
    # below the gaps measured here (several tenths of a nat).
    assert means[1] <= means[10] + 1e-4 <= means[100] + 2e-4, means
    for i in range(0, 200, 50):
        xb = x[i: i + 50]
        torch.manual_seed(2)
        recon, kl = elbo_parts(model, xb)
        elbo = -(recon + kl).mean()
        assert float(iwae_bound(model, xb, 100).mean()) >= float(elbo) - 1e-4


def test_iwae_chunking_does_not_change_the_value(trained):
    model, x = trained
    torch.manual_seed(3)
    a = iwae_bound(model, x[:20], 64, rows_per_chunk=64 * 20)  # one chunk
    torch.manual_seed(3)
    b = iwae_bound(model, x[:20], 64, rows_per_chunk=64 * 20)
    torch.testing.assert_close(a, b)
    c = iwae_bound(model, x[:20], 64, rows_per_chunk=7)  # many small chunks: same estimator, other noise
    assert abs(float(a.mean()) - float(c.mean())) < 0.5


def _ppca_vae(d=6, latent=2, sigma=0.5, seed=0):
    """A linear-Gaussian VAE (probabilistic PCA) whose encoder is the exact posterior, deliberately spoiled
    (means shifted, variances tripled, covariance diagonal) so that the ELBO is clearly loose."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, latent, generator=g)
    b = torch.randn(d, generator=g)
    cfg = make_config(latent_dim=latent, hidden=[], likelihood="gaussian", gaussian_std=sigma)
    model = build_model(cfg, (d,))
    M = W.T @ W + sigma**2 * torch.eye(latent)
    Minv = torch.linalg.inv(M)
    with torch.no_grad():
        model.decoder.head.weight.copy_(W)
        model.decoder.head.bias.copy_(b)
        enc = model.encoder.head
        enc.weight.zero_()
        enc.bias.zero_()
        enc.weight[:latent] = Minv @ W.T  # mean = M^-1 W^T (x - b)
        enc.bias[:latent] = -(Minv @ W.T @ b)
        enc.bias[latent:] = torch.log(torch.diagonal(sigma**2 * Minv)) + math.log(3.0)
        enc.bias[:latent] += 0.3
    cov = W @ W.T + sigma**2 * torch.eye(d)
    exact = torch.distributions.MultivariateNormal(b, cov)
    return model, exact


def test_iwae_matches_exact_ppca_log_likelihood():
    model, exact = _ppca_vae()
    torch.manual_seed(0)
    x = exact.sample((300,))
    log_px = exact.log_prob(x)
    torch.manual_seed(1)
    iw = iwae_bound(model, x, 1000)
    gap = (log_px - iw).mean()
    assert abs(float(gap)) < 0.5, float(gap)
    assert float((iw - log_px).max()) < 0.5  # a lower bound, up to Monte-Carlo noise
    # the ELBO is looser: average many one-sample estimates so Monte-Carlo noise is far below the gap
    elbo = iwae_bound(model, x.repeat(100, 1), 1).mean()
    assert float(elbo) < float(iw.mean()) - 0.3, (float(elbo), float(iw.mean()))


def test_active_units_and_collapse_warning_on_dead_dimensions():
    cfg = make_config(latent_dim=6, hidden=[], likelihood="bernoulli")
    model = build_model(cfg, (10,))
    with torch.no_grad():
        head = model.encoder.head
        head.weight[3:6].zero_()  # means of dims 3..5 do not depend on x
        head.weight[6:].zero_()
        head.bias[6:].zero_()  # unit posterior variance
    x = torch.rand(500, 10)
    mu, logvar = posterior_stats(model, x)
    n, activity = active_units(mu)
    assert n == (activity[:3] > 0.01).sum() and (activity[3:] == 0).all()
    kl = kl_per_dim(mu, logvar)
    torch.testing.assert_close(kl[3:], 0.5 * mu[0, 3:] ** 2)  # constant mean, unit variance: KL = mu^2 / 2
    assert collapse_warning(0, 6).startswith("posterior collapse")
    assert "--kl-warmup" in collapse_warning(1, 8) and collapse_warning(6, 6) is None
    with torch.no_grad():
        model.encoder.head.weight.zero_()
    res = evaluate(model, x)
    assert res["active_units"] == 0 and any("collapse" in w for w in res["warnings"])


def test_evaluate_report_fields(trained):
    model, x = trained
    res = evaluate(model, x, iwae_k=50)
    assert res["neg_iwae"] <= res["neg_elbo"] + 0.05
    assert res["bits_per_dim"] == pytest.approx(res["neg_iwae"] / (64 * math.log(2)))
    assert 0 <= res["active_units"] <= 4 and len(res["kl_per_dim"]) == 4
    assert sum(res["kl_per_dim"]) == pytest.approx(res["kl"], rel=0.2)
    assert res["mse"] > 0 and res["bce"] > 0
    assert any("not a normalized" in w for w in res["warnings"])  # continuous digits under Bernoulli


def _conditional_ppca(d=3, n_classes=3, sigma=0.5, spoil=False, seed=0):
    """A label-conditional linear-Gaussian VAE, x|y = W z + B_y + N(0, σ²I) with a 1-D z, whose encoder is the
    exact posterior (so IWAE_k(x|y) = log p(x|y) for every k), or a spoiled one; and the exact p(x|y) per class."""
    g = torch.Generator().manual_seed(seed)
    W, B = torch.randn(d, 1, generator=g), 2 * torch.randn(d, n_classes, generator=g)
    cfg = make_config(latent_dim=1, hidden=[], likelihood="gaussian", gaussian_std=sigma)
    model = build_model(cfg, (d,), n_classes)
    M = float(W.T @ W) + sigma**2
    with torch.no_grad():
        model.decoder.head.weight.copy_(torch.cat([W, B], 1))
        model.decoder.head.bias.zero_()
        enc = model.encoder.head
        enc.weight.zero_()
        enc.bias.zero_()
        enc.weight[0, :d] = W[:, 0] / M  # mean = M^-1 W^T (x - B_y)
        enc.weight[0, d:] = -(W.T @ B)[0] / M
        enc.bias[1] = math.log(sigma**2 / M)
        if spoil:
            enc.bias[0] += 0.5
            enc.bias[1] += math.log(3.0)
    cov = W @ W.T + sigma**2 * torch.eye(d)
    return model, [torch.distributions.MultivariateNormal(B[:, y], cov) for y in range(n_classes)]


def test_marginal_bound_sums_p_x_given_y_exactly_over_the_labels():
    from vaekit.evaluation import marginal_iwae

    model, per_class = _conditional_ppca()
    torch.manual_seed(0)
    y = torch.arange(60) % 3
    x = torch.stack([per_class[int(v)].sample() for v in y])
    log_pxy = torch.stack([p.log_prob(x) for p in per_class], 1)  # [n, K]
    exact_marginal = torch.logsumexp(log_pxy, 1) - math.log(3)  # log p(x) with p(y) = 1/3
    c = torch.nn.functional.one_hot(y, 3).float()
    # the exact posterior makes every importance weight equal p(x|y): the bounds are the exact densities
    torch.testing.assert_close(iwae_bound(model, x, 7, c=c), log_pxy[torch.arange(60), y], atol=1e-4, rtol=0)
    torch.testing.assert_close(marginal_iwae(model, x, 3, 7), exact_marginal, atol=1e-4, rtol=0)


def test_marginal_bound_inequalities_with_a_loose_encoder():
    """Per example, with the same noise: IWAE(x|y) − log K ≤ marginal bound ≤ max_y IWAE(x|y); and on average it
    stays below the exact log p(x) (Jensen) while the conditional bound is not a bound on log p(x)."""
    from vaekit.evaluation import marginal_iwae

    model, per_class = _conditional_ppca(spoil=True)
    torch.manual_seed(1)
    y = torch.arange(300) % 3
    x = torch.stack([per_class[int(v)].sample() for v in y])
    noise = torch.randn(20, 1)
    c = torch.nn.functional.one_hot(y, 3).float()
    cond = iwae_bound(model, x, 20, c=c, noise=noise)
    per_y = torch.stack([iwae_bound(model, x, 20, c=torch.nn.functional.one_hot(torch.full((300,), k), 3).float(),
                                    noise=noise) for k in range(3)], 1)
    marg = marginal_iwae(model, x, 3, 20, noise=noise)
    assert bool((marg >= cond - math.log(3) - 1e-5).all())
    assert bool((marg <= per_y.max(1).values + 1e-5).all())
    exact = torch.logsumexp(torch.stack([p.log_prob(x) for p in per_class], 1), 1) - math.log(3)
    torch.manual_seed(2)
    gap = float((exact - marginal_iwae(model, x, 3, 20)).mean())
    assert 0 < gap < 0.5, gap  # a lower bound (the loose encoder keeps it clearly below), and a tight one


def test_evaluate_labels_conditional_bounds_and_adds_the_marginal_for_m2():
    model, per_class = _conditional_ppca()
    torch.manual_seed(0)
    x = torch.stack([per_class[i % 3].sample() for i in range(30)])
    c = torch.nn.functional.one_hot(torch.arange(30) % 3, 3).float()
    plain = evaluate(model, x, iwae_k=5, c=c, condition="y")
    assert plain["likelihood_of"] == "p(x|y)" and "neg_iwae_marginal" not in plain
    m2 = evaluate(model, x, iwae_k=5, c=c, condition="y", marginal_classes=3, iwae_n=10)
    assert m2["iwae_n"] == 10 and "3 labels" in m2["marginal_estimator"] and "first 10 of 30" in m2["bound"]
    # log p(x) = log Σ_y p(y) p(x|y) ≥ log p(x|y_true) − log K: the unconditional −log p(x) bound is at most
    # the conditional one + log K (exact here: the encoder is the true posterior)
    assert m2["neg_iwae_marginal"] <= m2["neg_iwae"] + math.log(3) + 1e-4
    assert m2["bits_per_dim_marginal"] == pytest.approx(m2["neg_iwae_marginal"] / (3 * math.log(2)))


def test_report_plan_fits_the_budget_with_floors(monkeypatch):
    """The report's IWAE k × examples are chosen from a measured cost per row so the report costs about 15% of
    training (its IWAE pass 10%); examples shrink first (to 1000), then k (to 10); given values are kept."""
    from vaekit import finish

    x = torch.zeros(10_000, 4)
    monkeypatch.setattr(finish, "_seconds_per_row", lambda *a: 1e-4)
    p = finish.plan_report(None, x, train_s=1500.0)  # budget 150 s ≥ 10000 × 100 rows × 1e-4 s: all of it
    assert (p.k, p.n, p.total) == (100, 10_000, 10_000) and p.estimated_s <= p.budget_s == 150.0
    p = finish.plan_report(None, x, train_s=300.0)  # budget 30 s: 3000 examples at k = 100
    assert (p.k, p.n) == (100, 3000) and p.estimated_s == pytest.approx(30.0)
    p = finish.plan_report(None, x, train_s=20.0)  # budget 10 s (the floor): 1000 examples, k = 100
    assert (p.k, p.n) == (100, 1000)
    monkeypatch.setattr(finish, "_seconds_per_row", lambda *a: 1e-3)
    p = finish.plan_report(None, x, train_s=150.0)  # 15 s: 1000 examples (floor), then k = 15
    assert (p.k, p.n) == (15, 1000)
    p = finish.plan_report(None, x, train_s=1.0)  # both floors
    assert (p.k, p.n) == (10, 1000)
    assert (finish.plan_report(None, x, 1.0, k=50).k, finish.plan_report(None, x, 1.0, k=50).n) == (50, 1000)
    assert (finish.plan_report(None, x, 1.0, n=5000).n, finish.plan_report(None, x, 1.0, n=5000).k) == (5000, 10)
    assert finish.plan_report(None, x, 1.0, k=7, n=20_000) == finish.ReportPlan(7, 10_000, 10_000, "given")
    # M2 runs K + 1 IWAE passes (p(x|y) and the sum over K labels): the budget covers them all
    monkeypatch.setattr(finish, "_seconds_per_row", lambda *a: 1e-4)
    assert finish.plan_report(None, x, train_s=300.0, passes=11).n == 1000


def test_iwae_progress_counts_every_example(trained):
    from vaekit.evaluation import importance_bounds

    model, x = trained
    seen = []
    importance_bounds(model, x[:50], 30, rows_per_chunk=64, progress=seen.append)
    assert sum(seen) == 50 and len(seen) > 1
