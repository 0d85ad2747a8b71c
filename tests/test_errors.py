"""Failures end in one clear line: non-finite validation, OS and memory errors, damaged runs, huge grids."""

import json
import math

import pytest
import torch

import vaekit
import vaekit.training as training
from vaekit.errors import TrainingError
from vaekit.runs import json_text, load_tensors, write_json

from cli_helpers import run

TINY = ["--data", "digits", "--latent-dim", "2", "--hidden", "32", "--batch-size", "64", "--report-iwae-k", "0", "-q"]


def _strict_json(text: str):
    """json.loads that refuses NaN/Infinity (what browsers, jq and other languages do)."""
    def refuse(c):
        raise ValueError(f"non-standard JSON constant {c}")

    return json.loads(text, parse_constant=refuse)


def _nan_validation_from(epoch: int, monkeypatch) -> None:
    """Make the Trainer's validation -ELBO NaN from ``epoch`` on (what a validation row with an extreme value
    that overflows the likelihood gives)."""
    real = training.evaluate_elbo
    calls = []

    def fake(*a, **k):
        calls.append(1)
        res = real(*a, **k)
        return {**res, "elbo": math.nan, "recon": math.nan} if len(calls) >= epoch else res

    monkeypatch.setattr(training, "evaluate_elbo", fake)


# -- item 4: non-finite validation loss, standard JSON --------------------------------------------------
def test_nan_validation_loss_stops_the_run_and_keeps_the_last_good_weights(tmp_path, monkeypatch):
    good = vaekit.train(out=tmp_path / "one", data="digits", latent_dim=2, hidden=[32], batch_size=64, epochs=1,
                        report_iwae_k=0)
    _nan_validation_from(2, monkeypatch)
    r = run("train", *TINY, "--epochs", "3", "--out", tmp_path / "r")
    assert r.exit_code == 1, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in r.output, err
    assert err.startswith("error: the validation -ELBO became nan at epoch 2")
    assert "last good checkpoint (epoch 1)" in err
    run_dir = tmp_path / "r"
    weights = load_tensors(run_dir / "model.safetensors")
    expected = good.model.state_dict()
    assert all(torch.equal(weights[k], expected[k]) for k in expected)  # epoch 1's weights, not epoch 2's
    rows = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1]
    assert _strict_json((run_dir / "trainer_state.json").read_text())["epoch"] == 1
    assert not (run_dir / "results.json").exists()


def test_nan_validation_in_the_first_epoch_says_no_weights_were_kept(tmp_path, monkeypatch):
    _nan_validation_from(1, monkeypatch)
    with pytest.raises(TrainingError, match=r"validation -ELBO became nan at epoch 1; no epoch finished"):
        vaekit.train(out=tmp_path / "r", data="digits", latent_dim=2, hidden=[32], epochs=2, report_iwae_k=0)
    assert not (tmp_path / "r" / "model.safetensors").exists()


def test_json_files_never_hold_nan_or_infinity(tmp_path):
    write_json(tmp_path / "results.json", {"elbo": float("inf"), "kl": [1.5, float("nan"), -float("inf")],
                                           "nested": {"x": (float("nan"), 2)}, "n": 3, "s": "inf"})
    text = (tmp_path / "results.json").read_text()
    assert _strict_json(text) == {"elbo": None, "kl": [1.5, None, None], "nested": {"x": [None, 2]}, "n": 3,
                                  "s": "inf"}
    assert _strict_json(json_text({"val_loss": float("nan")})) == {"val_loss": None}


def test_trainer_state_with_a_null_best_loss_resumes(tmp_path, tiny):
    """best_val is inf before any epoch improved: written as null, read back as inf."""
    trained = vaekit.train(out=tmp_path / "r", **dict(tiny, epochs=1))
    trainer = training.Trainer(trained.model, trained.config, torch.device("cpu"), run_dir=tmp_path / "r",
                               progress=False)
    trainer.best_val = math.inf
    trainer.save_checkpoint()
    assert _strict_json((tmp_path / "r" / "trainer_state.json").read_text())["best_val"] is None
    trainer.load_checkpoint()
    assert trainer.best_val == math.inf


# -- item 9: a huge grid is refused before it is listed -------------------------------------------------
def test_points_beyond_the_grid_limit_are_refused_when_the_space_is_read():
    from vaekit.errors import UsageError
    from vaekit.space import parse_space

    with pytest.raises(UsageError, match=r"space.yaml: lr points must be a whole number from 2 to 1000000"):
        parse_space({"lr": {"kind": "log-float", "low": 1e-4, "high": 1e-2, "points": 100_000_000}}, "space.yaml")


@pytest.mark.parametrize("partial", [[], ["--allow-partial-grid"]])
def test_a_huge_grid_is_refused_in_one_line_without_listing_it(tmp_path, partial):
    # 10^9 + 1 dropout values times 1000 lr values: counting them must not list them
    (tmp_path / "space.yaml").write_text("dropout: {kind: float, low: 0.0, high: 0.5, step: 5.0e-10}\n"
                                         "lr: {kind: log-float, low: 1.0e-4, high: 1.0e-2, points: 1000}\n")
    r = run("tune", "--data", "digits", "--space", tmp_path / "space.yaml", "--sampler", "grid",
            "--trials", "5", "--out", tmp_path / "t", *partial)
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in r.output
    assert "the grid has 1,000,000,001,000 points (dropout 1000000001, lr 1000)" in err, err
    assert "more than --sampler grid enumerates (1,000,000)" in err
    assert not (tmp_path / "t").exists()


def test_grid_counts_match_the_listed_values():
    from vaekit.space import parse_space

    sp = parse_space({"latent_dim": {"kind": "log-int", "low": 1, "high": 8, "points": 20},  # rounding merges
                      "dropout": {"kind": "float", "low": 0.0, "high": 0.3, "step": 0.1},
                      "batch_size": {"kind": "int", "low": 32, "high": 96, "step": 32},
                      "lr": {"kind": "log-float", "low": 1e-4, "high": 1e-2, "points": 7},
                      "model": {"kind": "categorical", "choices": ["mlp", "conv"]}})
    counts = {p.name: p.grid_count() for p in sp.params}
    assert counts == {k: len(v) for k, v in sp.grid().items()}
    assert counts == {"latent_dim": 8, "dropout": 4, "batch_size": 3, "lr": 7, "model": 2}
    assert sp.grid_size() == 8 * 4 * 3 * 7 * 2
