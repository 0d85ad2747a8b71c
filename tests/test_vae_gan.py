"""vae-gan: the adaptive adversarial weight is the gradient-norm ratio at the decoder's last layer; the family
trains with two optimizers through the one Trainer, resumes bit-identically, samples and refuses non-images."""

import json

import pytest
import torch

import vaekit
from vaekit.errors import UsageError
from vaekit.families.vae_gan import adaptive_weight

GAN = dict(data="digits", family="vae-gan", latent_dim=3, hidden=[32], batch_size=128, epochs=3, seed=0,
           gan_start_epoch=1, report=False)


def test_adaptive_weight_is_the_ratio_of_gradient_norms():
    w = torch.nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    rec = (3 * w).sum()  # gradient 3 everywhere: norm 6
    adv = (w * w).sum()  # gradient 2w: norm 2·√30
    lam = adaptive_weight(rec, adv, w)
    assert float(lam) == pytest.approx(6 / (2 * 30 ** 0.5 + 1e-4), rel=1e-6) and not lam.requires_grad


def test_vae_gan_trains_with_two_optimizers_resumes_exactly_and_samples(tmp_path):
    full = vaekit.train(out=tmp_path / "full", **GAN)
    h = full.result.history
    assert h[0]["train_disc_loss"] == 0 and h[0]["train_gan_lambda"] == 0  # epoch 1: plain VAE
    assert h[1]["train_disc_loss"] > 0 and h[2]["train_gan_lambda"] > 0  # then the discriminator plays
    state = json.loads((tmp_path / "full" / "trainer_state.json").read_text())
    assert set(state["optimizers"]) == {"gen", "disc"}

    def stop_after_two(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vaekit.train(out=tmp_path / "cut", on_epoch_end=stop_after_two, **GAN)
    resumed = vaekit.train(out=tmp_path / "cut", resume=True, report=False)
    sd = resumed.model.state_dict()
    assert "discriminator.head.parametrizations.weight.original" in sd and int(sd["gan_step"]) == int(full.model.gan_step)
    for (k, a), b in zip(full.model.state_dict().items(), sd.values()):
        assert torch.equal(a, b), k
    loaded = vaekit.load(tmp_path / "full")
    assert torch.equal(loaded.sample(3, seed=2), full.sample(3, seed=2))
    ev = vaekit.evaluate(loaded, iwae_k=16)
    assert ev["neg_iwae"] < ev["neg_elbo"] + 0.5  # its likelihood is a VAE's: the bounds still apply


def test_vae_gan_refuses_non_images_and_settings_it_cannot_honour(tmp_path):
    import numpy as np

    np.save(tmp_path / "flat.npy", np.random.default_rng(0).random((60, 10)).astype(np.float32))
    with pytest.raises(UsageError, match="discriminator needs images"):
        vaekit.train(str(tmp_path / "flat.npy"), family="vae-gan", epochs=1, report=False)
    with pytest.raises(UsageError, match="--lr-schedule is not supported by the vae-gan family"):
        vaekit.train(**dict(GAN, lr_schedule="cosine"))


def test_a_vae_gan_run_written_before_the_spectral_norm_field_loads_with_its_old_settings(tmp_path):
    run = tmp_path / "old"
    old = vaekit.train(out=run, **dict(GAN, epochs=2, gan_spectral_norm=False, gan_adversarial="both"))
    info = json.loads((run / "config.json").read_text())
    for k in ("gan_spectral_norm", "gan_adversarial"):
        del info["config"][k]  # as an earlier version wrote it
    (run / "config.json").write_text(json.dumps(info))
    loaded = vaekit.load(run)
    assert not loaded.config.gan_spectral_norm and loaded.config.gan_adversarial == "both"
    assert torch.equal(loaded.sample(3, seed=1), old.sample(3, seed=1))


def test_the_adversarial_term_scores_prior_samples_only_by_default():
    from vaekit.config import make_config
    from vaekit.core.gan import build_vae_gan
    from vaekit.families.vae_gan import GANBatch, VAEGANObjective

    class Fixed(torch.nn.Module):  # logits by call: the real images 0, the reconstructions 5, the prior samples 1
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            value = (0.0, 5.0, 1.0)[self.calls % 3]
            self.calls += 1
            return x.flatten(1), x.flatten(1).sum(1) * 0 + value

    x = torch.rand(4, 1, 8, 8)
    batch = GANBatch(x=x, target=x, real=x, phase="gen")
    advs = {}
    for mode in ("prior", "both"):
        cfg = make_config(**dict(GAN, likelihood="bernoulli", gan_adversarial=mode, report=None))
        model = build_vae_gan(cfg, (1, 8, 8))
        if mode == "prior":
            assert hasattr(model.discriminator.head, "parametrizations")  # spectral norm by default
        model.discriminator = Fixed()
        sums = VAEGANObjective(cfg, steps_per_epoch=0).step(model, batch, 1.0).sums
        advs[mode] = float(sums[4] / sums[6])
    assert advs == {"prior": -1.0, "both": -3.0}  # −mean D(prior) vs −(mean D(rec) + mean D(prior)) / 2
