"""sparse-vae (variational sparse coding, Tonolini et al. 2020): the spike-and-slab KL matches a Monte-Carlo
estimate, and the family trains, resumes exactly, samples sparse codes, and reports its sparsity."""

import math

import pytest
import torch

import vaekit
from vaekit.core.sparse import (spike_slab_draw, spike_slab_kl, spike_slab_log_prior, spike_slab_log_q)
from vaekit.errors import UsageError

SPARSE = dict(data="digits", family="sparse-vae", latent_dim=6, hidden=[32], batch_size=64, epochs=3, seed=0,
              report=False)


def test_spike_and_slab_kl_matches_a_monte_carlo_estimate():
    torch.manual_seed(0)
    mu = torch.tensor([[0.5, -1.0, 2.0, 0.0]])
    logvar = torch.tensor([[-1.0, 0.3, -0.5, 0.0]])
    gamma = torch.tensor([[0.9, 0.3, 0.6, 0.05]])
    alpha = 0.2
    exact = spike_slab_kl(mu, logvar, gamma, alpha).sum()
    z, log_q = spike_slab_draw(mu, logvar, gamma, 200_000)
    mc = (log_q - spike_slab_log_prior(z, alpha)).mean()
    assert float(mc) == pytest.approx(float(exact), abs=0.03), (float(mc), float(exact))
    # the spike rate is γ, and log q of a draw is the direct mixed-measure log-density
    assert torch.allclose((z != 0).float().mean((0, 1)), gamma[0], atol=0.01)
    one = z[0, 0]
    direct = sum(math.log(1 - g) if v == 0 else math.log(g) + float(torch.distributions.Normal(m, math.exp(lv / 2))
                                                                      .log_prob(torch.tensor(float(v))))
                 for v, m, lv, g in zip(one.tolist(), mu[0].tolist(), logvar[0].tolist(), gamma[0].tolist()))
    assert float(spike_slab_log_q(one, mu[0], logvar[0], gamma[0])) == pytest.approx(direct, abs=1e-4)
    # γ = α and a standard-normal slab: q = p, KL 0
    assert float(spike_slab_kl(torch.zeros(3), torch.zeros(3), torch.full((3,), alpha), alpha).abs().max()) < 1e-6


def test_sparse_vae_trains_resumes_exactly_samples_and_reports_sparsity(tmp_path):
    full = vaekit.train(out=tmp_path / "full", **SPARSE)

    def stop_after_one(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vaekit.train(out=tmp_path / "cut", on_epoch_end=stop_after_one, **SPARSE)
    resumed = vaekit.train(out=tmp_path / "cut", resume=True, report=False)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    h = full.result.history
    assert h[-1]["val_loss"] < h[0]["val_loss"]
    loaded = vaekit.load(tmp_path / "full")
    assert loaded.model.encoder.head.out_features == 18 and loaded.model.spike_prior == 0.2
    assert torch.equal(loaded.sample(4, seed=1), full.sample(4, seed=1))
    z = loaded.model.prior_draw(2000, generator=torch.Generator().manual_seed(0))
    assert abs(float((z != 0).float().mean()) - 0.2) < 0.02  # the prior's codes are α-sparse
    torch.manual_seed(0)
    ev = vaekit.evaluate(loaded, iwae_k=32)
    assert ev["neg_iwae"] < ev["neg_elbo"] + 0.5 and 0 <= ev["active_fraction_per_example"] <= 1
    assert len(ev["kl_per_dim"]) == 6 and ev["sparsity_alpha"] == 0.2
    from vaekit.data import load_source
    from vaekit.tasks.probe import linear_probe

    probe = linear_probe(loaded, load_source("digits"), labeled=300)
    assert probe["accuracy_latent"] > 0.3


def test_sparse_vae_refuses_settings_it_cannot_honour():
    with pytest.raises(UsageError, match="--iw-samples is not supported by the sparse-vae family"):
        vaekit.train(**dict(SPARSE, iw_samples=4))
    with pytest.raises(UsageError, match="--free-bits"):
        vaekit.train(**dict(SPARSE, free_bits=0.1))


def test_a_sparse_runs_sampled_codes_are_spike_and_slab_draws(tmp_path):
    run = vaekit.train(**dict(SPARSE, epochs=1))
    from vaekit.data import load_source

    x = load_source("digits").x[:50]
    a = run.encode(x, sample=True, generator=torch.Generator().manual_seed(3))
    b = run.encode(x, sample=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and bool((a == 0).any())  # seeded, and exact zeros (spikes) occur


def test_sparse_bounds_with_common_random_numbers_are_deterministic_per_example():
    from vaekit.config import make_config
    from vaekit.core.vae import build_model
    from vaekit.evaluation.metrics import importance_bounds

    torch.manual_seed(0)
    model = build_model(make_config(family="sparse-vae", latent_dim=3, hidden=[16], likelihood="bernoulli"), (1, 8, 8))
    x = torch.rand(6, 1, 8, 8)
    noise = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    a = importance_bounds(model, x, 16, noise=noise)[0]
    b = importance_bounds(model, x[2:4], 16, noise=noise)[0]  # alone or in a batch: the same numbers
    assert torch.allclose(a[2:4], b, atol=1e-5)
