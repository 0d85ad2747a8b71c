"""--prior vamp (Tomczak & Welling 2018): log p(z) is the mixture of the encoder's posteriors at the
pseudo-inputs, the bounds use it, runs train (MLP and conv), resume exactly, reload and sample."""

import math

import pytest
import torch

import vaekit
from vaekit.config import make_config
from vaekit.core.inference import prior_log_prob
from vaekit.core.vae import build_model
from vaekit.errors import UsageError

VAMP = dict(data="digits", latent_dim=3, hidden=[32], batch_size=64, epochs=2, seed=0, prior="vamp",
            vamp_components=7, report=False)


def test_vamp_log_prior_is_the_direct_mixture_of_the_encoder_posteriors():
    torch.manual_seed(0)
    model = build_model(make_config(latent_dim=3, hidden=[16], likelihood="bernoulli", prior="vamp",
                                    vamp_components=5), (1, 8, 8)).eval()
    assert model.vamp.pseudo.shape == (5, 1, 8, 8)
    z = torch.randn(2, 4, 3)
    with torch.no_grad():
        got = prior_log_prob(model, z)
        mu, logvar = model.posterior_params(torch.clamp(model.vamp.pseudo, 0, 1))
        direct = torch.zeros(2, 4)
        for i in range(2):
            for j in range(4):
                dens = [math.exp(float(torch.distributions.Normal(mu[k], (0.5 * logvar[k]).exp())
                                       .log_prob(z[i, j]).sum())) for k in range(5)]
                direct[i, j] = math.log(sum(dens) / 5)
        assert torch.allclose(got, direct, atol=1e-4)
        assert torch.allclose(model.prior().log_prob(z), direct, atol=1e-4)  # the Distribution agrees


def test_vamp_trains_its_bounds_are_ordered_and_it_samples_from_the_mixture(tmp_path):
    run = vaekit.train(out=tmp_path / "v", **VAMP)
    h = run.result.history
    assert h[-1]["val_loss"] < h[0]["val_loss"] and all(r["train_kl"] > 0 for r in h)
    torch.manual_seed(1)
    ev = vaekit.evaluate(run, iwae_k=64)
    assert ev["neg_iwae"] < ev["neg_elbo"]  # IWAE_64 ≥ ELBO on average (same prior in both)
    assert ev["neg_iwae"] > 0.5 * ev["neg_elbo"]  # and not absurdly far: the same log p(z) in both
    assert "N(0, 1)" in ev["kl_per_dim_note"]
    loaded = vaekit.load(tmp_path / "v")
    a, b = run.sample(5, seed=3), loaded.sample(5, seed=3)
    assert a.shape == (5, 1, 8, 8) and torch.allclose(a, b)
    # the codes come from the mixture: each draw is near one component's mean
    with torch.no_grad():
        z = loaded.model.prior_draw(400, generator=torch.Generator().manual_seed(0))
        means, _ = loaded.model.vamp.components_of(loaded.model)
    assert torch.cdist(z, means).min(1).values.median() < torch.cdist(torch.randn(400, 3), means).min(1).values.median()


def test_vamp_resumes_exactly_and_the_conv_vae_takes_it(tmp_path):
    settings = dict(VAMP, epochs=3)
    full = vaekit.train(out=tmp_path / "full", **settings)

    def stop_after_one(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vaekit.train(out=tmp_path / "cut", on_epoch_end=stop_after_one, **settings)
    resumed = vaekit.train(out=tmp_path / "cut", resume=True, report=False)
    sd = resumed.model.state_dict()
    assert "vamp.pseudo" in sd
    for (k, a), b in zip(full.model.state_dict().items(), sd.values()):
        assert torch.equal(a, b), k
    conv = vaekit.train(**dict(VAMP, epochs=1, model="conv"))
    assert conv.model.vamp is not None and conv.sample(2, seed=0).shape == (2, 1, 8, 8)


def test_vamp_refuses_what_it_cannot_honour():
    with pytest.raises(UsageError, match="--prior vamp"):
        make_config(prior="vamp", conditional=True)
    with pytest.raises(UsageError, match="--prior vamp"):
        make_config(prior="vamp", free_bits=0.5)
    assert make_config().prior == "normal"  # old runs: the field's default
