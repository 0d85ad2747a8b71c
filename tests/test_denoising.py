"""Denoising VAE: corruption kinds, the clean-target plumbing, results and the `vaekit denoise` command."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import vaekit
from vaekit.cli import app
from vaekit.config import make_config
from vaekit.data.noise import check_corruption, corrupt, parse_corruption
from vaekit.errors import UsageError
from vaekit.model import build_model
from vaekit.core import objectives
from vaekit.training import Trainer

runner = CliRunner()


def test_gaussian_noise_has_the_asked_std_and_bounded_data_stay_in_unit_interval():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(200_000)
    assert corrupt(x, "gaussian:0.3", bounded=False, generator=g).std().item() == pytest.approx(0.3, rel=0.01)
    y = corrupt(torch.full((10_000,), 0.5), "gaussian:2", bounded=True, generator=g)
    assert y.min() >= 0 and y.max() <= 1 and (y == 0).any() and (y == 1).any()


def test_masking_zeroes_the_asked_fraction_and_keeps_the_rest():
    x = torch.rand(100_000) + 1.0
    y = corrupt(x, "masking:0.25", bounded=False, generator=torch.Generator().manual_seed(1))
    dropped = y == 0
    assert dropped.float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert torch.equal(y[~dropped], x[~dropped])


def test_salt_pepper_sets_half_to_zero_half_to_one():
    x = torch.full((100_000,), 0.5)
    y = corrupt(x, "salt-pepper:0.2", bounded=True, generator=torch.Generator().manual_seed(2))
    assert (y == 0).float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert (y == 1).float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert ((y == 0) | (y == 1) | (y == 0.5)).all()
    with pytest.raises(UsageError, match="salt-pepper noise needs data in"):
        corrupt(x, "salt-pepper:0.2", bounded=False)


@pytest.mark.parametrize("spec, needle", [("gauss:0.3", "is not KIND:LEVEL"), ("gaussian", "is not KIND:LEVEL"),
                                          ("gaussian:abc", "is not a number"), ("masking:1.5", "must be in (0, 1)"),
                                          ("gaussian:0", "must be in (0, 100]")])
def test_bad_corruption_specs(spec, needle):
    with pytest.raises(UsageError, match=r"^--add-noise: .*" + needle.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        parse_corruption(spec, "--add-noise")
    with pytest.raises(UsageError, match="--corruption"):
        make_config(corruption=spec)


def test_config_normalizes_the_spec():
    assert make_config(corruption=" Salt_Pepper:0.10 ").corruption == "salt-pepper:0.1"
    assert make_config(corruption="none").corruption is None
    assert check_corruption("gaussian:0.5") == ("gaussian", 0.5)


def test_the_training_step_encodes_the_corrupted_batch_and_scores_the_clean_one(monkeypatch):
    cfg = make_config(latent_dim=2, hidden=[8], batch_size=16, epochs=1, corruption="masking:0.5", patience=None,
                      likelihood="bernoulli")
    model = build_model(cfg, (10,), 0)
    seen = []
    elbo_loss = objectives.elbo_loss

    def spy(model, batch, *a, **kw):  # the objective's loss: x is what the encoder sees, target what is scored
        if model.training:  # the training steps; validation scores clean data as it is
            seen.append((batch.x.clone(), None if batch.target is None else batch.target.clone()))
        return elbo_loss(model, batch, *a, **kw)

    monkeypatch.setattr(objectives, "elbo_loss", spy)
    x = torch.rand(32, 10) * 0.5 + 0.5  # no zeros, so masked entries are visible
    Trainer(model, cfg, torch.device("cpu"), progress=False).fit(x, x[:8])
    assert len(seen) == 2
    for xb, target in seen:
        assert target is not None and (target > 0).all()  # clean rows of the training data
        assert any(torch.equal(target[0], row) for row in x)
        masked = xb == 0
        assert 0.3 < masked.float().mean().item() < 0.7
        assert torch.equal(xb[~masked], target[~masked])


def test_denoising_run_reports_and_denoises(tmp_path):
    out = tmp_path / "dvae"
    trained = vaekit.train("digits", out=out, latent_dim=8, hidden=[64], batch_size=64, epochs=30, seed=0,
                           corruption="masking:0.3", patience=None, report=False)
    res = json.loads((out / "results.json").read_text())["denoising"]
    assert res["corruption"] == "masking:0.3"
    # the reconstruction of a corrupted test image is closer to the clean image than the corrupted one is
    assert res["mse_denoised"] < 0.85 * res["mse_corrupted_input"]
    assert (out / "denoising.png").is_file()
    x = vaekit.load_source("digits").x[:200]
    noisy = trained.corrupt(x, "masking:0.3", seed=3)
    assert torch.equal(noisy, trained.corrupt(x, "masking:0.3", seed=3))  # seeded
    assert float(((trained.denoise(noisy) - x) ** 2).mean()) < 0.85 * float(((noisy - x) ** 2).mean())

    r = runner.invoke(app, ["denoise", str(out), "--data", "digits", "--add-noise", "masking:0.3", "-n", "64",
                            "--out", str(tmp_path / "d.npy")])
    assert r.exit_code == 0, r.output
    corrupted, denoised = (float(v.rstrip(",")) for v in r.output.split("corrupted ")[1].split(" denoised "))
    assert denoised < corrupted
    assert np.load(tmp_path / "d.npy").shape == (64, 1, 8, 8)
    r = runner.invoke(app, ["denoise", str(out), "--data", "digits", "--out", str(tmp_path / "d.png")])
    assert r.exit_code == 0 and (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_denoise_and_train_errors(tmp_path):
    csv = tmp_path / "t.csv"
    rng = np.random.default_rng(0)
    csv.write_text("a,b\n" + "\n".join(f"{u:.3f},{v:.3f}" for u, v in rng.normal(size=(60, 2))) + "\n")
    r = runner.invoke(app, ["train", "--data", str(csv), "--corruption", "salt-pepper:0.1", "--epochs", "1",
                            "--out", str(tmp_path / "run")])
    assert r.exit_code == 2 and "salt-pepper needs data in [0, 1]" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
    r = runner.invoke(app, ["train", "--data", str(csv), "--corruption", "blur:2", "--out", str(tmp_path / "run")])
    assert r.exit_code == 2 and "--corruption" in r.output and not (tmp_path / "run").exists()

    run = tmp_path / "tab"
    vaekit.train(str(csv), out=run, latent_dim=1, hidden=[8], epochs=1, report=False)
    r = runner.invoke(app, ["denoise", str(run), "--data", str(csv), "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "PNG output needs image data" in r.output
    r = runner.invoke(app, ["denoise", str(run), "--data", str(csv), "--add-noise", "gaussian:-1",
                            "--out", str(tmp_path / "x.csv")])
    assert r.exit_code == 2 and "--add-noise" in r.output and not (tmp_path / "x.csv").exists()
    r = runner.invoke(app, ["denoise", str(run), "--data", str(csv), "--add-noise", "gaussian:0.5",
                            "--out", str(tmp_path / "x.csv")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "x.csv").read_text().splitlines()[0] == "a,b"
