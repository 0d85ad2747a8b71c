"""Networks, likelihoods and the VAE objective: shapes, closed forms, and agreement with torch.distributions."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, Normal, kl_divergence

from vaekit.config import make_config
from vaekit.likelihoods import BernoulliLikelihood, GaussianLikelihood
from vaekit.model import build_model, gaussian_kl
from vaekit.networks import default_channels


@settings(max_examples=15, deadline=None)
@given(d=st.integers(1, 40), latent=st.integers(1, 8), hidden=st.lists(st.integers(1, 16), min_size=0, max_size=3),
       n=st.integers(1, 5), lik=st.sampled_from(["bernoulli", "gaussian"]))
def test_mlp_shapes(d, latent, hidden, n, lik):
    cfg = make_config(model="mlp", latent_dim=latent, hidden=hidden, likelihood=lik)
    m = build_model(cfg, (d,))
    x = torch.rand(n, d)
    mu, logvar = m.posterior_params(x)
    assert mu.shape == logvar.shape == (n, latent)
    assert m.decoder(mu).shape == (n, d)
    out = m(x)
    assert out.recon.shape == out.kl.shape == (n,)
    assert m.sample(3).shape == (3, d)
    assert m.reconstruct(x).shape == (n, d)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_conv_shapes(shape):
    cfg = make_config(model="conv", latent_dim=5, hidden=[32], likelihood="bernoulli")
    m = build_model(cfg, shape)
    x = torch.rand(2, *shape)
    assert m.posterior_params(x)[0].shape == (2, 5)
    assert m.decoder(torch.randn(2, 5)).shape == (2, *shape)
    assert m.sample(4).shape == (4, *shape)
    assert torch.isfinite(m(x).loss)


def test_default_channels_reach_small_maps():
    assert default_channels(28, 28) == [32, 64]  # 28 -> 14 -> 7
    assert default_channels(32, 32) == [32, 64, 128]  # -> 4
    assert default_channels(64, 64) == [32, 64, 128, 256]  # -> 4
    assert default_channels(25, 25) == []


def test_conv_rejects_shapes_it_cannot_halve():
    cfg = make_config(model="conv", likelihood="bernoulli")
    with pytest.raises(ValueError, match="image-size"):
        build_model(cfg, (1, 25, 25))
    with pytest.raises(ValueError, match="mlp"):
        build_model(cfg, (10,))


def test_analytic_kl_matches_torch_and_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 3, generator=g)
    logvar = torch.randn(4, 3, generator=g)
    q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
    p = Independent(Normal(torch.zeros(3), torch.ones(3)), 1)
    closed = gaussian_kl(mu, logvar).sum(1)
    torch.testing.assert_close(closed, kl_divergence(q, p), rtol=1e-5, atol=1e-5)
    torch.manual_seed(1)
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    # Monte-Carlo standard error is ~ sqrt(var/200k); 0.03 nats is several standard errors here.
    assert torch.allclose(mc, closed, atol=0.03), (mc, closed)


def test_bernoulli_nll_matches_distribution_log_prob():
    lik = BernoulliLikelihood()
    logits = torch.randn(5, 1, 4, 4)
    x = torch.rand(5, 1, 4, 4).round()
    torch.testing.assert_close(lik.nll(logits, x), -lik(logits).log_prob(x))
    # the closed form: -sum x log s(l) + (1-x) log(1-s(l))
    s = torch.sigmoid(logits)
    manual = -(x * s.log() + (1 - x) * (1 - s).log()).flatten(1).sum(1)
    torch.testing.assert_close(lik.nll(logits, x), manual, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("std", [None, 0.3])
def test_gaussian_nll_matches_normal(std):
    lik = GaussianLikelihood((6,), std)
    if std is None:
        with torch.no_grad():
            lik.log_scale.copy_(torch.linspace(-1, 1, 6))
        assert lik.log_scale.requires_grad
    else:
        assert not any(p.requires_grad for p in lik.parameters())
    mean, x = torch.randn(3, 6), torch.randn(3, 6)
    expected = -Normal(mean, lik.log_scale.exp()).log_prob(x).sum(1)
    torch.testing.assert_close(lik.nll(mean, x), expected)
    torch.testing.assert_close(lik(mean).log_prob(x), -expected)


def test_loss_is_recon_plus_beta_kl():
    cfg = make_config(latent_dim=3, hidden=[8], likelihood="bernoulli")
    m = build_model(cfg, (5,))
    x = torch.rand(7, 5)
    torch.manual_seed(0)
    out = m(x, beta=2.5)
    torch.testing.assert_close(out.loss, (out.recon + 2.5 * out.kl).mean())
    assert (out.kl >= 0).all()


def test_sample_temperature_zero_limit_is_decoder_at_origin():
    cfg = make_config(latent_dim=2, hidden=[4], likelihood="gaussian", gaussian_std=1.0)
    m = build_model(cfg, (3,))
    s = m.sample(2, temperature=1e-8)
    torch.testing.assert_close(s, m.decoder(torch.zeros(2, 2)).detach(), atol=1e-5, rtol=0)
    assert math.isfinite(float(s.sum()))


@pytest.mark.parametrize("lik", [BernoulliLikelihood(), GaussianLikelihood((2, 3), None), GaussianLikelihood((2, 3), 0.4)])
def test_nll_samples_broadcasts_like_the_per_example_nll(lik):
    if isinstance(lik, GaussianLikelihood) and lik.fixed_std is None:
        with torch.no_grad():
            lik.log_scale.normal_()
    params = torch.randn(5, 4, 2, 3)
    x = torch.rand(4, 2, 3).round() if isinstance(lik, BernoulliLikelihood) else torch.randn(4, 2, 3)
    expected = torch.stack([lik.nll(params[i], x) for i in range(5)])
    torch.testing.assert_close(lik.nll_samples(params, x), expected, rtol=1e-5, atol=1e-4)
