"""One trainer for every family: the objectives, the batch, and M2's settings honoured or refused."""

import json
import math

import pytest
import torch

import vaekit
from vaekit.config import make_config
from vaekit.core.inference import draw, log_weights
from vaekit.core.objectives import ELBO, IWAE
from vaekit.data import Split
from vaekit.data.batch import Batch
from vaekit.errors import UsageError
from vaekit.model import build_model

M2 = dict(data="digits", semi_supervised=True, labeled=50, latent_dim=2, hidden=[8], batch_size=64, seed=0,
          report=False)


def _rows(run):
    return [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]


def test_m2_honours_kl_warmup_and_lr_schedule(tmp_path):
    out = tmp_path / "m2"
    vaekit.train(out=out, epochs=3, kl_warmup=2, lr_schedule="step", lr_step=1, lr_gamma=0.5, **M2)
    rows = _rows(out)
    assert [r["beta"] for r in rows] == pytest.approx([0.5, 1.0, 1.0])  # β at each epoch's last step
    assert [r["lr"] for r in rows] == pytest.approx([1e-3, 5e-4, 2.5e-4])
    assert all("train_loss" in r and r["val_loss"] == r["val_unlabelled"] for r in rows)


def test_m2_warmup_changes_the_objective(tmp_path):
    a = vaekit.train(epochs=1, **M2)
    b = vaekit.train(epochs=1, kl_warmup=5, **M2)
    assert not torch.equal(a.model.decoder.body[0].weight, b.model.decoder.body[0].weight)


@pytest.mark.parametrize("flag,value", [("free_bits", 0.5), ("binarize", "dynamic")])
def test_m2_refuses_settings_it_cannot_honour(flag, value, tmp_path):
    with pytest.raises(UsageError, match="--" + flag.replace("_", "-") + " is not supported by the m2 family"):
        vaekit.train(out=tmp_path / "r", epochs=1, **{flag: value}, **M2)
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_m2_resumes_exactly_through_the_trainer(tmp_path):
    whole = vaekit.train(out=tmp_path / "whole", epochs=3, **M2)

    def stop(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vaekit.train(out=tmp_path / "cut", epochs=3, on_epoch_end=stop, **M2)
    state = json.loads((tmp_path / "cut" / "trainer_state.json").read_text())
    assert state["family"] == "m2" and state["epoch"] == 2
    resumed = vaekit.train(out=tmp_path / "cut", resume=True, report=False)
    for (k, v), w in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(v, w), k
    torch.testing.assert_close(whole.classifier.head.weight, resumed.classifier.head.weight, rtol=0, atol=0)


def test_split_carries_its_conditions_and_masks():
    x = torch.rand(5, 3)
    s = Split(x, y=torch.arange(5), c=torch.eye(5), mask=torch.ones(5, 3))
    b = s.batch(torch.tensor([4, 1]))
    assert torch.equal(b.x, x[[4, 1]]) and torch.equal(b.condition, torch.eye(5)[[4, 1]])
    assert b.labels.tolist() == [4, 1] and b.mask.shape == (2, 3) and b.target is None
    assert torch.equal(Batch(x, target=x + 1).scored, x + 1)


def test_elbo_objective_matches_closed_form_kl_and_its_validation_is_beta_one():
    torch.manual_seed(0)
    cfg = make_config(latent_dim=3, hidden=[8], likelihood="bernoulli")
    model = build_model(cfg, (6,), 0).eval()
    x = torch.rand(10, 6)
    mu, logvar = model.posterior_params(x)
    kl = (0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)).sum(1)
    torch.manual_seed(1)
    out = ELBO().loss(model, Batch(x), beta=0.25)
    torch.testing.assert_close(out.kl, kl)
    torch.testing.assert_close(out.loss, (out.recon + 0.25 * out.kl).mean())
    val = ELBO().validate(model, Split(x), batch_size=4)
    assert val["val_loss"] == pytest.approx(val["val_recon"] + val["val_kl"])


def test_iwae_objective_is_a_tighter_bound_than_the_elbo():
    torch.manual_seed(0)
    cfg = make_config(latent_dim=2, hidden=[8], likelihood="bernoulli")
    model = build_model(cfg, (6,), 0).eval()
    x = torch.bernoulli(torch.rand(200, 6))
    with torch.no_grad():
        elbo = ELBO().loss(model, Batch(x), beta=1.0).loss
        iwae = IWAE(64).loss(model, Batch(x), beta=1.0).loss
    assert float(iwae) < float(elbo)  # −IWAE_64 ≤ −ELBO (Burda et al. 2015), averaged over 200 examples


def test_log_weights_of_a_single_sample_average_to_the_elbo():
    torch.manual_seed(0)
    cfg = make_config(latent_dim=2, hidden=[8], likelihood="gaussian")
    model = build_model(cfg, (4,), 0).eval()
    x = torch.randn(3, 4)
    with torch.no_grad():
        mu, logvar = model.posterior_params(x)
        noise = torch.randn(20000, 2)
        z, log_q = draw(mu, logvar, len(noise), noise)
        log_w, log_px, _ = log_weights(model, x, z, log_q)
        kl = (0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)).sum(1)
    # E_q[log w] = E_q[log p(x|z)] − KL(q || p): the Monte-Carlo mean matches within its standard error
    se = (log_w - log_px).std(0) / math.sqrt(len(noise))
    assert torch.all(((log_w - log_px).mean(0) + kl).abs() < 5 * se + 1e-4)


def test_family_setting_names_the_family():
    from vaekit.families import FAMILIES, family_name

    assert family_name(make_config(None, family="m2", labeled=5)) == "m2"
    assert make_config(None, family="m2", labeled=5).semi_supervised
    assert family_name(make_config(None, semi_supervised=True, labeled=5)) == "m2"  # the old spelling
    assert family_name(make_config(None)) == "vae" and set(FAMILIES) >= {"vae", "m2"}
    with pytest.raises(UsageError, match="--family vae contradicts --semi-supervised"):
        make_config(None, family="vae", semi_supervised=True)
