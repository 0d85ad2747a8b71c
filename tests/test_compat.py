"""Runs written before the architecture change (vaekit at commit 1a09db7, tests/fixtures/runs_v0_1) still
load, sample and resume, and training today gives the same weights and numbers as it did then."""

import json
import shutil
from pathlib import Path

import pytest
import torch

import vaekit
from vaekit.runs import load_tensors

FIXTURES = Path(__file__).parent / "fixtures" / "runs_v0_1"
# the settings tests/fixtures/runs_v0_1/make_fixtures.py trained with
BASE = dict(latent_dim=2, hidden=[8], batch_size=64, epochs=3, seed=0, report=False)
M2 = dict(semi_supervised=True, labeled=50)


def _copy(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copytree(FIXTURES / name, dst)
    return dst


def _assert_same_weights(run: Path, reference: Path) -> None:
    got, want = load_tensors(run / "model.safetensors"), load_tensors(reference / "model.safetensors")
    assert sorted(got) == sorted(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.parametrize("name", ["vae", "cvae", "m2", "table"])
def test_old_runs_load_and_sample(name, tmp_path):
    run = _copy(name, tmp_path)
    trained = vaekit.load(run)
    c = torch.nn.functional.one_hot(torch.tensor([3]), 10).float() if name in ("cvae", "m2") else None
    x = trained.sample(8, seed=0, c=c)
    assert x.shape[0] == 8 and bool(torch.isfinite(x).all())
    if name == "m2":
        assert trained.classifier is not None


@pytest.mark.parametrize("name,extra", [("vae", {}), ("m2", M2)])
def test_training_gives_the_weights_it_gave_before(name, extra, tmp_path):
    out = tmp_path / name
    vaekit.train("digits", out, **BASE, **extra)
    _assert_same_weights(out, FIXTURES / name)
    got = json.loads((out / "results.json").read_text())["test"]
    want = json.loads((FIXTURES / name / "results.json").read_text())["test"]
    for k in ("elbo", "recon", "kl"):
        assert got[k] == pytest.approx(want[k], rel=1e-5), k


@pytest.mark.parametrize("name,extra", [("vae", {}), ("m2", M2)])
def test_old_interrupted_runs_resume_to_the_uninterrupted_weights(name, extra, tmp_path):
    run = _copy(f"{name}_cut", tmp_path)
    vaekit.train("digits", run, resume=True, report=False)
    _assert_same_weights(run, FIXTURES / name)
    epochs = [json.loads(s)["epoch"] for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
