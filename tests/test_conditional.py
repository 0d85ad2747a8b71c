"""Conditional VAEs: the condition reaches encoder and decoder, generation follows the label, attributes
work on tables, and every mistake is a one-line error."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import vaekit
from vaekit.cli import app
from vaekit.config import make_config
from vaekit.model import build_model

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def usage_error(result, needle):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


@pytest.mark.parametrize("arch,shape", [("mlp", (1, 8, 8)), ("conv", (1, 8, 8)), ("conv", (3, 32, 32)), ("mlp", (5,))])
def test_condition_changes_encoder_and_decoder(arch, shape):
    if arch == "conv" and len(shape) == 1:
        pytest.skip("conv needs images")
    m = build_model(make_config(model=arch, latent_dim=3, hidden=[16], likelihood="gaussian"), shape, cond_dim=4)
    x, z = torch.rand(2, *shape), torch.randn(2, 3)
    c0 = torch.nn.functional.one_hot(torch.tensor([0, 0]), 4).float()
    c1 = torch.nn.functional.one_hot(torch.tensor([1, 1]), 4).float()
    assert not torch.allclose(m.posterior_params(x, c0)[0], m.posterior_params(x, c1)[0])
    assert not torch.allclose(m.decoder_params(z, c0), m.decoder_params(z, c1))
    assert m(x, c=c0).recon.shape == (2,)
    with pytest.raises(ValueError, match="conditions"):
        m(x)


@pytest.fixture(scope="module")
def digits_cvae(tmp_path_factory):
    out = tmp_path_factory.mktemp("cvae") / "cd"
    r = run("train", "--data", "digits", "--conditional", "--out", out, "--epochs", 60, "--batch-size", 64,
            "--latent-dim", 8, "--hidden", "256", "--report-iwae-k", 10, "-q")
    assert r.exit_code == 0, r.output
    return out


def test_conditional_samples_are_read_as_the_requested_class(digits_cvae, tmp_path):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    d = load_digits()
    clf = LogisticRegression(max_iter=2000).fit(d.data / 16.0, d.target)
    fractions = []
    for label in range(10):
        out = tmp_path / f"s{label}.npy"
        assert run("sample", digits_cvae, "--label", label, "-n", 100, "--seed", 0, "--out", out).exit_code == 0
        pred = clf.predict(np.load(out).reshape(100, -1))
        fractions.append(float((pred == label).mean()))
    assert np.mean(fractions) > 0.8 and min(fractions) > 0.5, fractions
    assert (digits_cvae / "classes.png").is_file()
    info = json.loads((digits_cvae / "config.json").read_text())
    assert info["condition"]["kind"] == "label" and info["condition"]["classes"][3] == "3"


def test_style_transfer_and_conditional_encode(digits_cvae, tmp_path):
    out = tmp_path / "as7.npy"
    r = run("reconstruct", digits_cvae, "--data", "digits", "--label", 7, "-n", 50, "--out", out)
    assert r.exit_code == 0, r.output
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    d = load_digits()
    clf = LogisticRegression(max_iter=2000).fit(d.data / 16.0, d.target)
    assert (clf.predict(np.load(out).reshape(50, -1)) == 7).mean() > 0.6
    assert run("encode", digits_cvae, "--data", "digits", "--out", tmp_path / "z.npy").exit_code == 0
    assert np.load(tmp_path / "z.npy").shape == (1797, 8)
    res = vaekit.evaluate(digits_cvae, iwae_k=5)
    assert res["neg_iwae"] < res["neg_elbo"] + 0.5


def test_attribute_conditioning_on_a_table(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, 400)
    x1 = 3 * a + rng.normal(0, 0.1, 400)
    x2 = -2 * a + rng.normal(0, 0.1, 400)
    csv = tmp_path / "t.csv"
    csv.write_text("a,x1,x2\n" + "\n".join(f"{u},{v},{w}" for u, v, w in zip(a, x1, x2)))
    out = tmp_path / "run"
    r = run("train", "--data", csv, "--condition-columns", "a", "--out", out, "--epochs", 60, "--latent-dim", 2,
            "--hidden", "32", "--batch-size", 64, "-q")
    assert r.exit_code == 0, r.output
    for value in (-0.8, 0.8):
        s = tmp_path / f"s{value}.csv"
        assert run("sample", out, "--attributes", f"a={value}", "-n", 300, "--seed", 0, "--out", s).exit_code == 0
        rows = np.loadtxt(s, delimiter=",", skiprows=1)
        assert s.read_text().startswith("x1,x2\n")
        assert abs(rows[:, 0].mean() - 3 * value) < 0.6 and abs(rows[:, 1].mean() + 2 * value) < 0.6
    usage_error(run("sample", out, "--attributes", "b=1", "--out", tmp_path / "e.csv"), "missing a")
    usage_error(run("sample", out, "--attributes", "a=1,b=2", "--out", tmp_path / "e.csv"), "unknown b")
    usage_error(run("sample", out, "--attributes", "a", "--out", tmp_path / "e.csv"), "name=value")
    usage_error(run("sample", out, "--label", "1", "--out", tmp_path / "e.csv"), "--attributes")
    usage_error(run("train", "--data", csv, "--condition-columns", "zz", "--out", tmp_path / "r2"), "'zz'")


def test_conditional_errors(digits_cvae, tmp_path):
    usage_error(run("sample", digits_cvae, "--label", "11", "--out", tmp_path / "e.npy"), "not one of the trained")
    usage_error(run("sample", digits_cvae, "--out", tmp_path / "e.npy"), "--label")
    usage_error(run("sample", digits_cvae, "--attributes", "a=1", "--out", tmp_path / "e.npy"), "--label")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((20, 1, 8, 8)).astype(np.float32))
    usage_error(run("train", "--data", tmp_path / "x.npy", "--conditional", "--out", tmp_path / "r"), "labels")
    usage_error(run("encode", digits_cvae, "--data", tmp_path / "x.npy", "--out", tmp_path / "z.npy"), "labels")
    plain = tmp_path / "plain"
    vaekit.train("digits", out=plain, latent_dim=2, hidden=[8], epochs=1, report=False)
    usage_error(run("sample", plain, "--label", "3", "--out", tmp_path / "e.npy"), "not conditional")


def test_attribute_conditioning_from_npz_y(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.uniform(-1, 1, (400, 2)).astype(np.float32)
    x = np.stack([3 * a[:, 0], -2 * a[:, 1], a[:, 0] + a[:, 1]], 1) + rng.normal(0, 0.1, (400, 3))
    npz = tmp_path / "a.npz"
    np.savez(npz, x=x.astype(np.float32), y=a, y_names=np.array(["size", "tilt"]))
    ds = vaekit.load_source(str(npz))
    assert ds.y is None and ds.attribute_names == ["size", "tilt"] and torch.equal(ds.attributes, torch.from_numpy(a))
    out = tmp_path / "run"
    r = run("train", "--data", npz, "--conditional", "--out", out, "--epochs", 60, "--latent-dim", 2,
            "--hidden", "32", "--batch-size", 64, "--likelihood", "gaussian", "-q")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["condition"]["columns"] == ["size", "tilt"]
    for size, tilt in ((-0.8, 0.5), (0.8, -0.5)):
        s = tmp_path / "s.npy"
        assert run("sample", out, "--attributes", f"size={size},tilt={tilt}", "-n", 300, "--seed", 0, "--out", s,
                   "--overwrite").exit_code == 0
        m = np.load(s).mean(0)
        assert abs(m[0] - 3 * size) < 0.6 and abs(m[1] + 2 * tilt) < 0.6
    assert run("encode", out, "--data", npz, "--out", tmp_path / "z.npy").exit_code == 0  # attributes from y
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=x.astype(np.float32))
    usage_error(run("encode", out, "--data", plain, "--out", tmp_path / "z2.npy"), "size, tilt")
    usage_error(run("train", "--data", npz, "--condition-columns", "zz", "--out", tmp_path / "r2"), "'zz'")
    r = run("train", "--data", npz, "--condition-columns", "tilt", "--out", tmp_path / "r3", "--epochs", 1, "-q")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "r3" / "config.json").read_text())["condition"]["dim"] == 1


def test_npz_y_kinds(tmp_path):
    x = np.zeros((6, 2), np.float32)
    np.savez(tmp_path / "f.npz", x=x, y=np.array([0.5, 1, 2, 3, 4, 5.0]))
    ds = vaekit.load_source(str(tmp_path / "f.npz"))
    assert ds.y is None and ds.attribute_names == ["y"] and ds.attributes.shape == (6, 1)
    np.savez(tmp_path / "l.npz", x=x, y=np.array([0, 1, 2, 0, 1, 2.0]))  # whole numbers stay class labels
    ds = vaekit.load_source(str(tmp_path / "l.npz"))
    assert ds.attributes is None and ds.y.tolist() == [0, 1, 2, 0, 1, 2]
    np.savez(tmp_path / "bad.npz", x=x, y=np.ones((6, 2)), y_names=np.array(["a"]))
    with pytest.raises(vaekit.errors.DataError, match="1 names for 2 columns"):
        vaekit.load_source(str(tmp_path / "bad.npz"))
