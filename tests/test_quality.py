"""Sample quality: the Fréchet distance against its closed forms for Gaussians, precision/recall on sets whose
answer is known, and `vaekit evaluate`'s numbers in the features of a cached, seeded classifier."""

import json

import numpy as np
import pytest
import torch

import vaekit
from cli_helpers import run as cli
from vaekit.evaluation.frechet import feature_stats, frechet_distance, precision_recall


def test_frechet_distance_matches_its_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    s = a @ a.T + 0.1 * np.eye(5)
    mu = rng.normal(size=5)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-8)  # equal → 0
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert frechet_distance(mu, s, mu + shift, s) == pytest.approx(float(shift @ shift), rel=1e-8)  # ||Δμ||²
    da, db = np.array([1.0, 4.0, 0.25, 9.0]), np.array([4.0, 1.0, 1.0, 0.0])  # commuting (diagonal) covariances
    want = float(((np.sqrt(da) - np.sqrt(db)) ** 2).sum())
    assert frechet_distance(np.zeros(4), np.diag(da), np.zeros(4), np.diag(db)) == pytest.approx(want, rel=1e-8)
    # symmetric, and the univariate formula (μ1−μ2)² + (σ1−σ2)²
    assert frechet_distance([0.0], [[4.0]], [1.0], [[1.0]]) == pytest.approx(1 + 1, rel=1e-10)
    assert frechet_distance(mu, s, 0 * mu, np.eye(5)) == pytest.approx(frechet_distance(0 * mu, np.eye(5), mu, s))
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    m, c = feature_stats(torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    assert np.allclose(m, [1, 2]) and np.allclose(c, [[2, 2], [2, 2]])


def test_precision_and_recall_of_known_sets():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 2, generator=g)
    same = torch.randn(400, 2, generator=g)
    p, r = precision_recall(real, same)
    assert p > 0.9 and r > 0.9
    collapsed = 0.05 * torch.randn(400, 2, generator=g)  # all samples at the centre: precise, no recall
    p, r = precision_recall(real, collapsed)
    assert p > 0.95 and r < 0.3
    far = torch.randn(400, 2, generator=g) + 50  # elsewhere: neither
    assert precision_recall(real, far) == (0.0, 0.0)


def test_evaluate_reports_named_sample_quality_with_a_cached_classifier(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    vaekit.train("digits", out=out, latent_dim=4, hidden=[32], batch_size=64, epochs=2, seed=0, report=False)
    r = cli("evaluate", out, "--iwae-k", 5, "--json")
    assert r.exit_code == 0, r.output
    q = json.loads(r.stdout)["sample_quality"]
    name = q["classifier"]
    fp = json.loads((out / "config.json").read_text())["data"]["fingerprint"]
    assert name == f"vaekit-classifier-{fp[:12]}" and q["labels"]["fd"] == f"FD ({name})"
    assert q["fd"] > 0 and 0 <= q["precision"] <= 1 and 0 <= q["recall"] <= 1 and q["n_real"] == 180
    assert q["classifier_accuracy"] > 0.8 and not q["classifier_cached"]
    files = list((tmp_path / "cache" / "classifiers").iterdir())
    assert [f.name for f in files] == [f"{name}.safetensors"]
    # the second time: the cached classifier, the same numbers (seeded samples)
    r2 = cli("evaluate", out, "--iwae-k", 0)
    assert r2.exit_code == 0 and f"FD ({name}): {q['fd']:.3f}" in r2.stdout
    assert "from the cache" in r2.stdout
    assert ("note: the FD is unreliable here" in r2.stdout) == ("fd_warning" in q)
    r3 = cli("evaluate", out, "--iwae-k", 0, "--no-quality", "--json")
    assert "sample_quality" not in json.loads(r3.stdout)


def test_evaluate_prints_the_fd_warning_as_one_note_line():
    from vaekit.quality_api import quality_lines

    q = {"fd": 12.0, "precision": 0.5, "recall": 0.25, "n_generated": 50, "n_real": 50, "sampler": "prior",
         "split": "test", "classifier_accuracy": 0.9, "classifier_cached": True,
         "labels": {"fd": "FD (c)", "precision": "precision (c)", "recall": "recall (c)"}}
    assert not any("note" in line for line in quality_lines(q))
    lines = quality_lines({**q, "fd_warning": "Matrix is singular\nand may not have a square root. (why)"})
    notes = [line for line in lines if line.startswith("note:")]
    assert len(notes) == 1 and "\n" not in notes[0] and "Matrix is singular and may not" in notes[0]
    assert "128 features (50 samples, 50 images)" in notes[0]
