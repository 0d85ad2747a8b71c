"""The command line: the happy path end to end, and every bad input ending in one line and exit code 2."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cli_helpers import assert_usage_error, run

FAST = ["--latent-dim", "3", "--hidden", "16", "--batch-size", "256", "--epochs", "2", "-q"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    result = run("train", "--data", "digits", "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_the_run_directory(trained_run):
    for name in ["config.json", "model.safetensors", "metrics.jsonl", "results.json", "samples.png",
                 "reconstructions.png", "trainer_state.json", "trainer_state.safetensors"]:
        assert (trained_run / name).is_file(), name
    info = json.loads((trained_run / "config.json").read_text())
    assert info["config"]["latent_dim"] == 3 and info["config"]["likelihood"] == "bernoulli"
    assert info["data"]["shape"] == [1, 8, 8] and len(info["data"]["fingerprint"]) == 64
    assert "torch_version" in info and "vaekit_version" in info
    results = json.loads((trained_run / "results.json").read_text())
    for split in ("train", "validation", "test"):
        r = results[split]
        assert r["elbo"] == pytest.approx(r["recon"] + r["kl"], rel=1e-6)
    assert len((trained_run / "metrics.jsonl").read_text().splitlines()) == 2


def test_sample_reconstruct_encode(trained_run, tmp_path):
    r = run("sample", trained_run, "-n", 10, "--out", tmp_path / "s.npy", "--seed", 3)
    assert r.exit_code == 0, r.output
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (10, 1, 8, 8) and s.min() >= 0 and s.max() <= 1
    run("sample", trained_run, "-n", 10, "--out", tmp_path / "s2.npy", "--seed", 3)
    assert np.array_equal(s, np.load(tmp_path / "s2.npy"))
    assert run("sample", trained_run, "-n", 16, "--out", tmp_path / "s.png").exit_code == 0
    assert Image.open(tmp_path / "s.png").size[0] > 8 * 8
    r = run("reconstruct", trained_run, "--data", "digits", "--out", tmp_path / "r.npy")
    assert r.exit_code == 0 and np.load(tmp_path / "r.npy").shape == (1797, 1, 8, 8)
    assert run("reconstruct", trained_run, "--data", "digits", "--out", tmp_path / "r.png").exit_code == 0
    r = run("encode", trained_run, "--data", "digits", "--out", tmp_path / "z.csv")
    assert r.exit_code == 0, r.output
    lines = (tmp_path / "z.csv").read_text().splitlines()
    assert lines[0] == "z0,z1,z2" and len(lines) == 1798
    assert run("encode", trained_run, "--data", "digits", "--out", tmp_path / "z.npy", "--sample").exit_code == 0
    assert np.load(tmp_path / "z.npy").shape == (1797, 3)


def test_table_run_roundtrips_units(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[100.0, -5.0, 0.0], scale=[10.0, 1.0, 0.1], size=(300, 3))
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,c,label\n" + "\n".join(f"{a},{b},{c},{'yes' if a > 100 else 'no'}" for a, b, c in x))
    out = tmp_path / "run"
    r = run("train", "--data", csv, "--label-column", "label", "--out", out, *FAST)
    assert r.exit_code == 0, r.output
    info = json.loads((out / "config.json").read_text())
    assert info["config"]["likelihood"] == "gaussian" and info["scaler"] is not None
    assert run("sample", out, "-n", 500, "--out", tmp_path / "s.csv", "--seed", 0).exit_code == 0
    rows = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)
    # samples come back in the table's own units (not standardized)
    assert abs(rows[:, 0].mean() - 100) < 5 and abs(rows[:, 1].mean() + 5) < 1
    assert (tmp_path / "s.csv").read_text().startswith("a,b,c\n")
    assert_usage_error(run("sample", out, "-n", 4, "--out", tmp_path / "s.png"), "PNG")


def test_resume_continues_and_refuses_finished(tmp_path, trained_run):
    assert_usage_error(run("train", "--out", trained_run, "--resume"), "already finished")


def test_help_is_fast_to_import():
    # `vaekit --help` must not import torch.
    code = "import sys; from vaekit.cli import app; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_real_entry_point_exit_code(tmp_path):
    p = subprocess.run([sys.executable, "-m", "vaekit.cli", "train", "--data", tmp_path / "missing.csv",
                        "--out", tmp_path / "r"], capture_output=True, text=True)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


@pytest.mark.parametrize("module", ["vaekit", "vaekit.cli"])
def test_python_m_lists_every_command(module):
    p = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "200"})
    assert p.returncode == 0
    for command in ("train", "evaluate", "tune", "score", "impute", "inpaint", "denoise"):
        assert f" {command} " in p.stdout, (command, p.stdout)


# -- bad input -------------------------------------------------------------------------------------

def _folder(tmp_path, sizes=((8, 8),), name="imgs", extra=None):
    d = tmp_path / name
    d.mkdir()
    for i, s in enumerate(sizes):
        Image.fromarray(np.full(s, i * 40, dtype=np.uint8)).save(d / f"{i}.png")
    if extra:
        extra(d)
    return d


def _csv(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("make_data,needle", [
    (lambda t: t / "nowhere", "no such file"),
    (lambda t: (t / "empty").mkdir() or t / "empty", "no images"),
    (lambda t: _folder(t, sizes=((8, 8), (8, 8)), extra=lambda d: (d / "bad.png").write_bytes(b"not a png")),
     "bad.png"),
    (lambda t: _folder(t, sizes=((8, 8), (10, 12))), "--image-size"),
    (lambda t: _csv(t, "a,b\n1,2024-01-02\n2,2024-01-03\n3,2024-01-04\n"), "'b'"),  # dates: neither numbers nor text
    (lambda t: _csv(t, "a,b\n1,2\n3,\n4,5\n"), "'b'"),
    (lambda t: _csv(t, "a,b\n1,2\n3,nan\n4,5\n"), "'b'"),
    (lambda t: _csv(t, "a,b\n1,2\n3,inf\n4,5\n"), "'b'"),
    (lambda t: "no-such-dataset", "unknown dataset"),
])
def test_bad_data(tmp_path, make_data, needle):
    data = make_data(tmp_path)
    out = tmp_path / "run"
    assert_usage_error(run("train", "--data", data, "--out", out, *FAST), needle)
    assert not out.exists()


def test_missing_label_column(tmp_path):
    data = _csv(tmp_path, "a,b\n1,2\n3,4\n5,6\n")
    assert_usage_error(run("train", "--data", data, "--label-column", "y", "--out", tmp_path / "r", *FAST), "'y'")


@pytest.mark.parametrize("flag,value,needle", [
    ("--latent-dim", 0, "--latent-dim"), ("--batch-size", 0, "--batch-size"), ("--epochs", 0, "--epochs"),
    ("--lr", -1, "--lr"), ("--lr", 100, "--lr"), ("--model", "transformer", "--model"),
    ("--likelihood", "poisson", "--likelihood"), ("--dropout", 1.5, "--dropout"), ("--hidden", "a,b", "--hidden"),
    ("--lr-schedule", "linear", "--lr-schedule"),
])
def test_bad_settings(tmp_path, flag, value, needle):
    assert_usage_error(run("train", "--out", tmp_path / "r", flag, value), needle)
    assert not (tmp_path / "r").exists()


def test_bad_config_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("latent_dim: 4\nbogus: 1\n")
    assert_usage_error(run("train", "--out", tmp_path / "r", "--config", cfg), "bogus")
    cfg.write_text("latent_dim: [\n")
    assert_usage_error(run("train", "--out", tmp_path / "r", "--config", cfg), "YAML")


def test_config_file_and_flag_precedence(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("latent-dim: 5\nhidden: [16]\nepochs: 1\nbatch_size: 512\n")
    r = run("train", "--out", tmp_path / "r", "--config", cfg, "--latent-dim", "2", "-q")
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "r" / "config.json").read_text())["config"]
    assert saved["latent_dim"] == 2 and saved["hidden"] == [16] and saved["epochs"] == 1


def test_bernoulli_on_unbounded_data(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32))
    assert_usage_error(run("train", "--data", tmp_path / "x.npy", "--likelihood", "bernoulli",
                           "--out", tmp_path / "r", *FAST), "gaussian")


def test_not_a_run(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    for cmd in (["sample", tmp_path / "plain", "--out", tmp_path / "s.npy"],
                ["encode", tmp_path / "plain", "--data", "digits", "--out", tmp_path / "z.npy"],
                ["sample", tmp_path / "nothing", "--out", tmp_path / "s.npy"]):
        assert_usage_error(run(*cmd), "run")
    # resume of a foreign folder, and overwrite of a foreign folder, touch nothing
    assert_usage_error(run("train", "--out", tmp_path / "plain", "--resume"), "not a vaekit run")
    assert_usage_error(run("train", "--out", tmp_path / "plain", "--overwrite", *FAST), "not a vaekit run")
    assert (tmp_path / "plain" / "notes.txt").read_text() == "mine"


def test_weights_that_do_not_match_config(trained_run, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(trained_run, bad)
    info = json.loads((bad / "config.json").read_text())
    info["config"]["latent_dim"] = 7
    (bad / "config.json").write_text(json.dumps(info))
    assert_usage_error(run("sample", bad, "--out", tmp_path / "s.npy"), "shape")
    (bad / "model.safetensors").write_bytes(b"garbage")
    assert_usage_error(run("sample", bad, "--out", tmp_path / "s.npy"), "safetensors")


def test_existing_outputs_are_not_overwritten(trained_run, tmp_path):
    before = (trained_run / "model.safetensors").read_bytes()
    assert_usage_error(run("train", "--out", trained_run, *FAST), "--overwrite")
    assert (trained_run / "model.safetensors").read_bytes() == before
    target = tmp_path / "s.npy"
    target.write_bytes(b"precious")
    assert_usage_error(run("sample", trained_run, "--out", target), "--overwrite")
    assert target.read_bytes() == b"precious"
    assert_usage_error(run("sample", trained_run, "--out", tmp_path / "s.gif"), "suffix")


def test_data_shape_must_match_the_run(trained_run, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((5, 1, 16, 16), dtype=np.float32))
    assert_usage_error(run("encode", trained_run, "--data", tmp_path / "x.npy", "--out", tmp_path / "z.npy"),
                       "shape")


def test_evaluate_prints_and_saves(trained_run):
    r = run("evaluate", trained_run, "--iwae-k", 20, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["split"] == "test" and res["n"] == 180 and res["iwae_k"] == 20
    assert res["neg_iwae"] <= res["neg_elbo"] + 0.5
    assert json.loads((trained_run / "evaluation.json").read_text())["neg_elbo"] == res["neg_elbo"]
    r = run("evaluate", trained_run, "--split", "validation", "--iwae-k", 0)
    assert r.exit_code == 0 and "active units" in r.stdout and "IWAE" not in r.stdout
    assert_usage_error(run("evaluate", trained_run, "--split", "holdout"), "--split")
    assert_usage_error(run("evaluate", trained_run, "--iwae-k", -1), "--iwae-k")
