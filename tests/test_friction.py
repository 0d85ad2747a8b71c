"""Issue 13 friction: help shows defaults, --split on encode/reconstruct/denoise, dir(vaekit), the default tune
space's warm-up, the collapse warning at the end of train, devices, bf16, threads, denoise and threshold reports."""

import json
import re

import numpy as np
import pytest

import vaekit
from cli_helpers import assert_usage_error, run
from vaekit.config import TrainConfig

FAST = ["--latent-dim", "3", "--hidden", "16", "--batch-size", "256", "--epochs", "2", "-q"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    result = run("train", "--data", "digits", "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    return out, result


def _help(command: str) -> str:
    from typer.testing import CliRunner

    from vaekit.cli import app

    r = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    return r.output


def test_train_help_shows_the_config_defaults():
    text = _help("train")
    d = TrainConfig()
    for flag, value in (("--epochs", d.epochs), ("--lr", f"{d.lr:g}"), ("--latent-dim", d.latent_dim),
                        ("--hidden", ",".join(map(str, d.hidden))), ("--batch-size", d.batch_size),
                        ("--patience", d.patience), ("--data", "digits"), ("--missing", d.missing)):
        line = next(s for s in text.splitlines() if re.match(rf"\W*{flag}\s", s))
        assert f"[default: {value}]" in line, (flag, line)


def test_unset_flags_still_leave_the_config_file_alone(tmp_path):
    (tmp_path / "c.yaml").write_text("latent_dim: 5\nepochs: 1\nhidden: [8]\n")
    r = run("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "r", "-q", "--report-iwae-k", "0")
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())["config"]
    assert cfg["latent_dim"] == 5 and cfg["epochs"] == 1 and cfg["hidden"] == [8]


def test_dir_lists_the_lazy_api():
    names = dir(vaekit)
    for name in ("train", "load", "evaluate", "tune", "TrainedVAE", "VAE", "AnomalyDetector", "__version__"):
        assert name in names


def test_encode_reconstruct_denoise_take_a_split(digits_run, tmp_path):
    out, _ = digits_run
    info = json.loads((out / "config.json").read_text())["data"]
    r = run("encode", out, "--data", "digits", "--split", "test", "--out", tmp_path / "z.npy")
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "z.npy").shape == (info["n_test"], 3)
    r = run("reconstruct", out, "--data", "digits", "--split", "validation", "--out", tmp_path / "r.npy")
    assert r.exit_code == 0, r.output
    assert len(np.load(tmp_path / "r.npy")) == info["n_val"]
    r = run("denoise", out, "--data", "digits", "--split", "train", "--out", tmp_path / "d.npy")
    assert r.exit_code == 0, r.output
    assert len(np.load(tmp_path / "d.npy")) == info["n_train"]
    # the test split is the same rows the run was tested on: encoding it whole equals the split's codes
    assert run("encode", out, "--data", "digits", "--out", tmp_path / "all.npy").exit_code == 0
    assert len(np.load(tmp_path / "all.npy")) == 1797
    assert_usage_error(run("encode", out, "--data", "digits", "--split", "dev", "--out", tmp_path / "x.npy"),
                       "--split", "train, validation or test")


def test_default_tune_space_caps_the_warmup_at_epochs(tmp_path, monkeypatch):
    from vaekit.tuning import study as tuning  # the module that runs the workers
    from vaekit.space import load_space

    sp = load_space(None)
    assert {p.name: p for p in sp.params}["kl_warmup"].high == 10
    capped = sp.capped_warmup(7)
    p = {p.name: p for p in capped.params}["kl_warmup"]
    assert p.high == 5 and max(p.grid()) <= 7
    short = sp.capped_warmup(3)
    assert "kl_warmup" not in {p.name for p in short.params} and short.fixed["kl_warmup"] == 0
    assert sp.capped_warmup(40).to_dict() == sp.to_dict()

    class Stop(Exception):
        pass

    seen = {}

    def fake_workers(job, jobs):
        seen["space"] = job.space
        raise Stop

    monkeypatch.setattr(tuning, "_run_workers", fake_workers)
    with pytest.raises(Stop):
        tuning.tune("digits", tmp_path / "t", epochs=7, trials=2, quiet=True)
    assert seen["space"]["params"]["kl_warmup"]["high"] == 5


def test_train_warns_when_the_run_ended_collapsed(digits_run, tmp_path):
    out, result = digits_run
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["active_units"] == 0  # 2 epochs of a 16-unit MLP: the posterior has not left the prior
    assert "warning: posterior collapse" in result.stderr
    from vaekit.cli.train import collapse_note as _collapse_note

    (tmp_path / "evaluation.json").write_text(json.dumps({"active_units": 3, "latent_dim": 3}))
    assert _collapse_note(tmp_path) is None


# -- devices and precision (item 9) --------------------------------------------------------------------
def test_device_names_are_checked_in_one_line(tmp_path, monkeypatch):
    import torch

    from vaekit.errors import UsageError
    from vaekit.training import resolve_device

    assert_usage_error(run("train", "--out", tmp_path / "r", "--device", "gpu", *FAST), "--device", "cuda:N")
    assert TrainConfig(device="cuda:1").device == "cuda:1" and TrainConfig(device="MPS").device == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="--device cuda:1 .* no CUDA GPU"):
        resolve_device("cuda:1")
    assert resolve_device("auto").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UsageError, match=r"has 2 CUDA GPUs \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UsageError, match="--device mps .* no Apple GPU"):
        resolve_device("mps")
    assert_usage_error(run("train", "--out", tmp_path / "r2", "--device", "mps", *FAST), "--device mps")
    assert not (tmp_path / "r2").exists()


@pytest.mark.parametrize("extra", [{}, {"semi_supervised": True, "labeled": 40}])
def test_bf16_is_applied_on_the_cpu(extra):
    from vaekit import api

    kw = dict(data="digits", latent_dim=3, hidden=[16], epochs=1, batch_size=128, seed=0, report=False,
              device="cpu", **extra)
    a = api.train(**kw, precision="fp32")
    b = api.train(**kw, precision="bf16")
    wa, wb = a.model.state_dict(), b.model.state_dict()
    # bfloat16 matmuls round to 8 bits of mantissa: the same seed gives visibly different weights
    assert any(not np.allclose(wa[k].numpy(), wb[k].numpy(), atol=1e-6) for k in wa)
    assert all(np.isfinite(wb[k].numpy()).all() for k in wb)


# -- conditional runs on tables with text columns (item 10: declined, the refusal names the columns) ----
def test_conditional_refusal_names_the_text_columns(tmp_path):
    rng = np.random.default_rng(0)
    rows = [f"{a:.3f},{b:.3f},{'red' if a > 0 else 'blue'},{'x' if b > 0 else 'y'},{int(a > b)}"
            for a, b in rng.normal(size=(60, 2))]
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,color,shape,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "r"
    assert_usage_error(run("train", "--data", csv, "--label-column", "label", "--conditional", "--out", out, *FAST),
                       "--conditional", "'color', 'shape'", "drop them")
    assert_usage_error(run("train", "--data", csv, "--condition-columns", "a,color", "--out", out, *FAST),
                       "--condition-columns takes numeric columns", "'color' is a text column")
    assert_usage_error(run("train", "--data", csv, "--label-column", "label", "--semi-supervised", "--labeled", "10",
                           "--out", out, *FAST), "--semi-supervised", "'color', 'shape'")
    assert not out.exists()


# -- denoise on a table (item 3) ---------------------------------------------------------------------------
def test_denoise_reports_tables_per_column_in_standardized_units(tmp_path):
    from vaekit import api

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2)) * [1000.0, 1.0] + [5000.0, 0.0]
    csv = tmp_path / "t.csv"
    csv.write_text("big,small\n" + "\n".join(f"{a:.3f},{b:.5f}" for a, b in x) + "\n")
    api.train(str(csv), out=tmp_path / "run", latent_dim=1, hidden=[8], epochs=1, report=False)
    r = run("denoise", tmp_path / "run", "--data", csv, "--add-noise", "gaussian:0.1", "--out", tmp_path / "d.csv")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "per column in standardized units" in lines[1]
    rows = {s.split()[0]: [float(v) for v in s.split()[1:3]] for s in lines[3:6]}
    assert set(rows) == {"big", "small", "mean"}
    # gaussian:0.1 is 0.1 training std per column: a corrupted MSE near 0.01 in both columns, not 1e4 in "big"
    for name in ("big", "small"):
        assert 0.005 < rows[name][0] < 0.02, rows
    assert rows["mean"][0] == pytest.approx((rows["big"][0] + rows["small"][0]) / 2, abs=1e-5)
    # one epoch of a 1-d latent reconstructs little: the output is further from the data than the input
    assert rows["mean"][1] > rows["mean"][0]
    assert lines[-1].startswith("denoising did not help")


# -- anomaly thresholds from too few rows (item 5) ----------------------------------------------------------
def test_quantile_from_too_few_rows_is_warned_about(tmp_path):
    from vaekit.apps.anomaly import quantile_warning, rows_for_quantile

    assert (rows_for_quantile(0.01), rows_for_quantile(0.05), rows_for_quantile(0.5), rows_for_quantile(0.99)) == \
        (100, 20, 2, 100)
    assert quantile_warning(100, 0.01) is None
    assert "only 10 validation rows, fewer than the 100" in quantile_warning(10, 0.01, "validation")

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    det = vaekit.AnomalyDetector(vaekit.VAE(latent_dim=1, hidden=(8,), epochs=1), iwae_k=4)
    with pytest.warns(UserWarning, match="only 12 validation rows, fewer than the 100"):
        det.fit(x)
    with pytest.warns(UserWarning) as record:  # 12 rows resolve a 0.1-quantile: no threshold warning
        vaekit.AnomalyDetector(vaekit.VAE(latent_dim=1, hidden=(8,), epochs=1), iwae_k=4,
                               threshold_quantile=0.1).fit(x)
        import warnings
        warnings.warn("sentinel", UserWarning)
    assert [str(w.message) for w in record] == ["sentinel"]

    csv = tmp_path / "t.csv"
    csv.write_text("a,b,c\n" + "\n".join(",".join(f"{v:.4f}" for v in r) for r in x) + "\n")
    r = run("train", "--data", csv, "--out", tmp_path / "run", "--latent-dim", "1", "--hidden", "8", "--epochs",
            "1", "--report-iwae-k", "0", "-q")
    assert r.exit_code == 0, r.output
    r = run("score", tmp_path / "run", "--data", csv, "--out", tmp_path / "s.csv", "--iwae-k", "4")
    assert r.exit_code == 0, r.output
    assert r.stderr.count("warning: the anomaly threshold is the 0.01-quantile of only 12 validation rows") == 1
    r = run("score", tmp_path / "run", "--data", csv, "--out", tmp_path / "s2.csv", "--iwae-k", "4",
            "--threshold-quantile", "0.1")
    assert r.exit_code == 0 and "warning" not in r.stderr


# -- start-up of small commands (item 8) -------------------------------------------------------------------
def test_small_commands_import_no_heavy_optional_library(digits_run, tmp_path):
    import subprocess
    import sys

    out, _ = digits_run
    code = ("import sys\nfrom vaekit.cli import app\n"
            f"args = [['sample', {str(out)!r}, '-n', '4', '--out', {str(tmp_path / 's.png')!r}],\n"
            f"        ['encode', {str(out)!r}, '--data', 'digits', '--out', {str(tmp_path / 'z.npy')!r}]]\n"
            "for a in args:\n"
            "    try:\n        app(a)\n    except SystemExit as e:\n        assert not e.code, e.code\n"
            "heavy = ('pyarrow', 'sklearn', 'scipy', 'matplotlib', 'optuna', 'pandas')\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]", p.stdout


# -- threads (item 6) ----------------------------------------------------------------------------------------
def test_threads_setting_reaches_torch(tmp_path):
    import torch

    from vaekit import api

    assert_usage_error(run("train", "--out", tmp_path / "r", "--threads", "0", *FAST), "--threads")
    before = torch.get_num_threads()
    try:
        (tmp_path / "c.yaml").write_text("threads: 2\nepochs: 1\nhidden: [8]\nlatent_dim: 2\n")
        t = api.train("digits", config=tmp_path / "c.yaml", out=tmp_path / "run", report=False)
        assert torch.get_num_threads() == 2 and t.config.threads == 2
        api.train("digits", latent_dim=2, hidden=[8], epochs=1, report=False, threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_resume_may_change_threads(tmp_path):
    import torch

    from vaekit import api

    out = tmp_path / "run"

    def stop(row):
        raise KeyboardInterrupt

    before = torch.get_num_threads()
    try:
        with pytest.raises(KeyboardInterrupt):
            api.train("digits", out=out, latent_dim=2, hidden=[8], epochs=2, report=False, on_epoch_end=stop)
        r = run("train", "--out", out, "--resume", "--threads", "1", "--epochs", "3", "-q")
        assert_usage_error(r, "drop --epochs")  # other settings still may not change on resume
        assert "--threads" not in r.stderr
        r = run("train", "--out", out, "--resume", "--threads", "1", "-q", "--report-iwae-k", "0")
        assert r.exit_code == 0, r.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_cli_environment_sets_the_default_before_torch(monkeypatch):
    import os

    from vaekit._threads import cli_environment, default_environment

    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "VAEKIT_THREADS", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(k, raising=False)
    assert cli_environment() is None
    assert all(os.environ[k] == v for k, v in default_environment().items())
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # the user's own setting stands
    assert cli_environment() is None and os.environ["OMP_NUM_THREADS"] == "7"
    monkeypatch.setenv("VAEKIT_THREADS", "3")
    assert cli_environment() is None and os.environ["OMP_NUM_THREADS"] == "3"
    monkeypatch.setenv("VAEKIT_THREADS", "many")
    assert "VAEKIT_THREADS must be a whole number" in cli_environment()


def test_bad_vaekit_threads_is_one_line_exit_2():
    import os
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "vaekit", "--help"], capture_output=True, text=True,
                       env={**os.environ, "VAEKIT_THREADS": "0"})
    assert p.returncode == 2 and p.stderr.strip().startswith("error: VAEKIT_THREADS")
    assert len(p.stderr.strip().splitlines()) == 1
    code = "import os, torch; print(torch.get_num_threads(), os.environ['OMP_NUM_THREADS'])"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    p = subprocess.run([sys.executable, "-c", "from vaekit._threads import cli_environment; cli_environment(); "
                        + code.replace("import os, torch; ", "import os, torch;")], capture_output=True, text=True,
                       env={**env, "VAEKIT_THREADS": "1"})
    assert p.stdout.split() == ["1", "1"], p.stderr


def test_ranking_metrics_match_scikit_learn_without_importing_it():
    from sklearn.metrics import average_precision_score, roc_auc_score

    from vaekit.apps.anomaly import ranking_metrics

    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(2, 60))
        s = np.round(rng.normal(size=n), int(rng.integers(0, 3)))  # rounding makes ties
        a = rng.random(n) < 0.3
        if a.all() or not a.any():
            continue
        m = ranking_metrics(s, a)
        assert m["auroc"] == pytest.approx(roc_auc_score(a, -s), abs=1e-12)
        assert m["average_precision"] == pytest.approx(average_precision_score(a, -s), abs=1e-12)


def test_score_cli_gives_the_estimators_numbers_without_scikit_learn(digits_run, tmp_path):
    import subprocess
    import sys

    out, _ = digits_run
    csv = tmp_path / "s.csv"
    code = ("import sys\nfrom vaekit.cli import app\n"
            f"try:\n    app(['score', {str(out)!r}, '--data', 'digits', '--split', 'test', '--iwae-k', '8',"
            f" '--normal-label', '0', '--out', {str(csv)!r}])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]", p.stdout
    rows = np.array([[float(v) for v in ln.split(",")[1:3]] for ln in csv.read_text().splitlines()[1:]])
    auroc = float(p.stdout.split("AUROC ")[1].split(",")[0])

    from vaekit.apps.anomaly import ranking_metrics
    from vaekit.data import load_source, split_dataset

    test = split_dataset(load_source("digits"), seed=0)[2]
    det = vaekit.AnomalyDetector(str(out), iwae_k=8, random_state=0)
    val = split_dataset(load_source("digits"), seed=0)[1]
    det.fit(val.x.reshape(len(val.x), -1).numpy())  # the CLI's threshold: quantile of the validation split
    s = det.score_samples(test.x.reshape(len(test.x), -1).numpy())
    np.testing.assert_allclose(rows[:, 0], s, atol=1e-6)
    assert np.array_equal(rows[:, 1] == 1, s < det.offset_)
    assert auroc == pytest.approx(ranking_metrics(s, test.y.numpy() != 0)["auroc"], abs=1e-4)


def test_score_refuses_a_conditional_run(tmp_path):
    r = run("train", "--data", "digits", "--conditional", "--out", tmp_path / "c", "--report-iwae-k", "0", *FAST)
    assert r.exit_code == 0, r.output
    assert_usage_error(run("score", tmp_path / "c", "--data", "digits", "--out", tmp_path / "s.csv"),
                       "conditional run", "unconditional runs only")
