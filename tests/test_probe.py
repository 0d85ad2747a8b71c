"""vaekit probe: logistic regression on latent means vs raw inputs with the same N labels."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import vaekit
from vaekit.apps.probe import choose_labeled
from vaekit.cli import app

runner = CliRunner()


def test_choose_labeled_is_stratified_and_seeded():
    y = np.repeat(np.arange(10), 50)
    a = choose_labeled(y, 100, seed=0)
    assert len(a) == 100 and (np.bincount(y[a]) == 10).all()
    assert (a == choose_labeled(y, 100, seed=0)).all() and not (a == choose_labeled(y, 100, seed=1)).all()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("probe") / "r"
    vaekit.train("digits", out=out, latent_dim=8, hidden=[128], batch_size=32, epochs=15, report=False)
    return out


def test_probe_reads_labels_from_the_latent_space(run_dir):
    r = runner.invoke(app, ["probe", str(run_dir), "--labeled", "200", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    # 10 classes: chance is 0.1; a VAE's 8 latent means carry most of the digit identity
    assert res["accuracy_latent"] > 0.6 and res["accuracy_raw"] > 0.6
    assert res["labeled"] == 200 and res["n_test"] == 180
    assert json.loads((run_dir / "probe.json").read_text()) == res


def test_probe_errors(run_dir, tmp_path):
    r = runner.invoke(app, ["probe", str(run_dir), "--labeled", "100000"])
    assert r.exit_code == 2 and "--labeled" in r.stderr
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((30, 1, 8, 8)).astype(np.float32))
    r = runner.invoke(app, ["probe", str(run_dir), "--data", str(tmp_path / "x.npy"), "--labeled", "5"])
    assert r.exit_code == 2 and "labels" in r.stderr
