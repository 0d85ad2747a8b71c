"""Failures end in one clear line: non-finite validation, OS and memory errors, damaged runs, huge grids."""

import errno
import json
import math

import pytest
import torch

import vaekit
import vaekit.training as training
from vaekit.core import objectives
from vaekit.errors import TrainingError, UsageError
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
    real = objectives.evaluate_elbo
    calls = []

    def fake(*a, **k):
        calls.append(1)
        res = real(*a, **k)
        return {**res, "elbo": math.nan, "recon": math.nan} if len(calls) >= epoch else res

    monkeypatch.setattr(objectives, "evaluate_elbo", fake)  # what the ELBO objective validates with


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("good") / "run"
    vaekit.train(out=out, data="digits", latent_dim=2, hidden=[32], batch_size=64, epochs=1, report=False)
    return out


# -- item 4: non-finite validation loss, standard JSON --------------------------------------------------
def test_nan_validation_loss_stops_the_run_and_keeps_the_last_good_weights(good_run, tmp_path, monkeypatch):
    good = vaekit.load(good_run)  # the same settings, one epoch
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
        vaekit.train(out=tmp_path / "r", data="digits", latent_dim=2, hidden=[32], epochs=2, report=False)
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
    trained = vaekit.train(out=tmp_path / "r", report=False, **dict(tiny, epochs=1))
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


# -- item 7: damaged run directories are refused in one line ---------------------------------------------
def _damaged(good_run, tmp_path, edit):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(good_run, run_dir)
    info = json.loads((run_dir / "config.json").read_text())
    text = edit(info)
    (run_dir / "config.json").write_text(text if isinstance(text, str) else json.dumps(info))
    return run_dir


def _pop(d, *keys):
    for k in keys[:-1]:
        d = d[k]
    d.pop(keys[-1])


@pytest.mark.parametrize("edit, needle", [
    (lambda i: _pop(i, "data", "kind"), "config.json is damaged: data.kind: field required"),
    (lambda i: _pop(i, "data"), "config.json is damaged: data: field required"),
    (lambda i: '{"format": "vaekit-run", "config": {}, "data": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "config.json is damaged: it is nested too deeply to read"),
    (lambda i: i["data"].update(shape=[1, 100_000, 100_000]),
     "config.json is damaged: data.shape: 10000000000 features per example is beyond what vaekit trains"),
    (lambda i: i["data"].update(shape=["8", 8, 1]), "config.json is damaged: data.shape.0: input should be a valid"),
    (lambda i: i["config"].update(latent_dim="x"), "config.json is damaged: config.latent_dim: input should be"),
    (lambda i: i["config"].update(hidden=[65536]),  # compared on the meta device, never allocated
     "model.safetensors does not match config.json: encoder.body.1.weight has shape [32, 64], config needs [65536, 64]"),
    (lambda i: i.update(condition={"kind": "label"}), "config.json is damaged: condition.dim: field required"),
    (lambda i: i.update(scaler={"mean": [0.0], "std": [0.0]}), "config.json is damaged: scaler: "),
])
def test_a_damaged_config_json_is_one_line_naming_the_field(good_run, tmp_path, edit, needle):
    run_dir = _damaged(good_run, tmp_path, edit)
    r = run("sample", run_dir, "-n", "4", "--out", tmp_path / "s.npy")
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in r.output, err
    assert needle in err and err.endswith(("retrain the run", "the weights belong to another model")), err
    assert not (tmp_path / "s.npy").exists()


def test_a_run_written_now_passes_the_load_checks(good_run, tmp_path):
    trained = vaekit.load(good_run)
    assert trained.sample(3, seed=0).shape == (3, 1, 8, 8)


# -- item 7: sizes checked before allocating ---------------------------------------------------------------
def test_sample_with_a_billion_examples_is_refused_before_allocating(good_run, tmp_path, monkeypatch):
    import vaekit.data._common as common

    monkeypatch.setattr(common, "available_memory", lambda: 8 * 2**30)  # the same answer on every machine
    r = run("sample", good_run, "-n", str(10**9), "--out", tmp_path / "s.npy")
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in r.output, err
    assert err.startswith("error: -n 1000000000 samples would take ") and "more than the 8.0 GiB available" in err
    per_sample = int(err.split("(-n ")[1].split(" fits")[0])  # the suggested -n fits, and is not tiny
    assert 10**6 < per_sample < 10**9
    assert run("sample", good_run, "-n", str(per_sample // 1000), "--out", tmp_path / "s.npy").exit_code == 0


# -- item 7: OS, memory and unexpected errors become one line ------------------------------------------------
@pytest.mark.parametrize("err, needle", [
    (OSError(errno.ENOSPC, "No space left on device"), "disk full while writing {out}; free some space"),
    (OSError(errno.EROFS, "Read-only file system", "{tmp}"), "cannot write {out}: read-only file system"),
    (PermissionError(errno.EACCES, "Permission denied", "{tmp}"), "{out}: permission denied; check its"),
])
def test_os_errors_while_writing_name_the_file_and_exit_2(good_run, tmp_path, monkeypatch, err, needle):
    import vaekit.runs as runs

    out = tmp_path / "s.npy"
    if err.filename:  # what mkstemp/os.replace report: the temporary file next to the target
        err.filename = str(tmp_path / ".s.npy.x1y2.tmp")

    def fail(path, data):
        raise err

    monkeypatch.setattr(runs, "_atomic_write", fail)
    r = run("sample", good_run, "-n", "4", "--out", out)
    assert r.exit_code == 2, r.output
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in r.output, line
    assert line.startswith("error: " + needle.format(out=out)), line


def test_a_real_read_only_folder(good_run, tmp_path):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions are not enforced (the patched writer tests cover this)")
        r = run("sample", good_run, "-n", "4", "--out", ro / "s.npy")
    finally:
        ro.chmod(0o755)
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().startswith(f"error: {ro / 's.npy'}: permission denied"), r.stderr


def test_an_existing_directory_as_out_file(good_run, tmp_path):
    (tmp_path / "s.npy").mkdir()
    r = run("sample", good_run, "-n", "4", "--out", tmp_path / "s.npy", "--overwrite")
    assert r.exit_code == 2, r.output
    assert r.stderr.strip() == f"error: {tmp_path / 's.npy'} is a directory, where a file is expected; give a file path"


def _raise_in_sample(monkeypatch, exc):
    from vaekit.trained import TrainedVAE

    def boom(self, *a, **k):
        raise exc

    monkeypatch.setattr(TrainedVAE, "sample", boom)


def test_an_allocation_failure_is_one_line_with_exit_2(good_run, tmp_path, monkeypatch):
    _raise_in_sample(monkeypatch, RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
        "allocate 1280000000000 bytes. Error code 12 (Cannot allocate memory)"))
    r = run("sample", good_run, "-n", "4", "--out", tmp_path / "s.npy")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.stderr.strip().startswith("error: out of memory (an allocation of 1.3 TB); ask for less"), r.stderr
    _raise_in_sample(monkeypatch, MemoryError())
    r = run("sample", good_run, "-n", "4", "--out", tmp_path / "s.npy")
    assert r.exit_code == 2 and r.stderr.startswith("error: out of memory; ask for less")


def test_an_unexpected_exception_is_an_internal_error_with_where_to_report_it(good_run, tmp_path, monkeypatch):
    _raise_in_sample(monkeypatch, KeyError("boom"))
    r = run("sample", good_run, "-n", "4", "--out", tmp_path / "s.npy")
    assert r.exit_code == 1
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in r.output, err
    assert err.startswith("error: internal error: KeyError: 'boom' — please report it with the command you ran")
    assert "VAEKIT_DEBUG=1" in err
    from cli_helpers import runner
    from vaekit.cli import app

    r = runner.invoke(app, ["sample", str(good_run), "-n", "4", "--out", str(tmp_path / "s.npy")],
                      env={"VAEKIT_DEBUG": "1"})
    assert r.exit_code == 1
    assert "Traceback (most recent call last)" in r.stderr and 'raise exc' in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: internal error: KeyError: 'boom'")


@pytest.mark.parametrize("exc", [UsageError("x" * 10**6), ValueError("y" * 10**6 + "\nsecond line")])
def test_error_lines_are_capped(good_run, tmp_path, monkeypatch, exc):
    _raise_in_sample(monkeypatch, exc)
    r = run("sample", good_run, "-n", "4", "--out", tmp_path / "s.npy")
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and len(err) <= len("error: ") + 500, len(err)
    assert "…" in err


def test_a_billion_laughs_config_gives_a_short_line(tmp_path):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 6)]
    (tmp_path / "laughs.yaml").write_text("\n".join(lines) + "\nlatent_dim: *a5\n")
    r = run("train", "--config", tmp_path / "laughs.yaml", "--out", tmp_path / "r")
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and len(err) <= len("error: ") + 500, len(err)
