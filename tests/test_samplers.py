"""vaekit sample --sampler prior|gmm:K|vamp: the GMM is fitted on the training codes on first use, saved in the
run as safetensors (no pickle), reloaded, and gives the same samples under a seed."""

import numpy as np
import pytest
import torch

import vaekit
from cli_helpers import assert_usage_error, run as cli
from vaekit.runs import load_tensors, read_tensor_metadata
from vaekit.samplers import GMM_FILE, gmm_sampler, sample_with, training_codes


@pytest.fixture(scope="module")
def gmm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("g") / "run"
    vaekit.train("digits", out=out, latent_dim=2, hidden=[32], batch_size=64, epochs=2, seed=0, report=False)
    return out


def test_the_gmm_is_fitted_once_saved_and_reloaded_to_the_same_samples(gmm_run):
    trained = vaekit.load(gmm_run)
    a, note = sample_with(trained, "gmm:3", 6, seed=4)
    assert "fitted a 3-component GMM" in note and "saved" in note
    saved = load_tensors(gmm_run / GMM_FILE)
    assert saved["k3.means"].shape == (3, 2) and saved["k3.scale_tril"].shape == (3, 2, 2)
    assert abs(float(saved["k3.weights"].sum()) - 1) < 1e-5
    assert "weights_sha256" in read_tensor_metadata(gmm_run / GMM_FILE)
    # a fresh load reloads (does not refit) and draws the same samples under the same seed
    again = vaekit.load(gmm_run)
    b, note2 = sample_with(again, "gmm:3", 6, seed=4)
    assert note2.startswith("reloaded") and torch.equal(a, b)
    # the mixture describes the training codes: its mean is theirs
    params, _ = gmm_sampler(again, 3)
    z = training_codes(again)
    mix_mean = (params["weights"][:, None] * params["means"]).sum(0)
    assert torch.allclose(mix_mean, z.mean(0), atol=1e-3)
    # a second K is added to the same file, the first kept
    sample_with(again, "gmm:2", 2, seed=0)
    assert {"k2.means", "k3.means"} <= set(load_tensors(gmm_run / GMM_FILE))


def test_cli_sampler_flag_and_its_refusals(gmm_run, tmp_path):
    r = cli("sample", gmm_run, "-n", 5, "--sampler", "gmm:3", "--seed", 1, "--out", tmp_path / "s.npy")
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "s.npy").shape == (5, 1, 8, 8)
    assert_usage_error(cli("sample", gmm_run, "--sampler", "gmm:0", "--out", tmp_path / "t.npy"), "--sampler")
    assert_usage_error(cli("sample", gmm_run, "--sampler", "vamp", "--out", tmp_path / "t.npy"), "--prior vamp")
    r = cli("sample", gmm_run, "-n", 3, "--sampler", "prior", "--seed", 1, "--out", tmp_path / "p.npy")
    assert r.exit_code == 0, r.output


def test_gmm_samples_of_a_mixed_table_draw_categories_like_prior_samples(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["a,color"] + [f"{v:.3f},{c}" for v, c in zip(rng.normal(size=120), rng.choice(["r", "g", "b"], 120))]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    trained = vaekit.train(str(tmp_path / "t.csv"), out=tmp_path / "run", latent_dim=2, hidden=[16], epochs=2,
                           seed=0, report=False)
    block = [c for c in trained.schema if c.get("kind") != "numeric"][0]
    lo, hi = block["start"], block["stop"]
    for spec in ("gmm:2", "prior"):
        x, _ = sample_with(trained, spec, 40, seed=3)
        cats = x[:, lo:hi]
        assert set(cats.unique().tolist()) <= {0.0, 1.0} and torch.equal(cats.sum(1), torch.ones(40)), spec
    # the prior path is the one `trained.sample` takes: same seed, same samples
    assert torch.equal(sample_with(trained, "prior", 40, seed=3)[0], trained.sample(40, seed=3))
