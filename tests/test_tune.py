"""vaekit tune: the space parser, each sampler on a tiny space, pruning, resumption, parallel workers, errors."""

import csv
import json
import math

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from vaekit import api
from vaekit.cli import app
from vaekit.errors import UsageError
from vaekit.space import DEFAULT_SPACE_YAML, load_space, parse_space
from vaekit.tuning import trial_counts, tune

runner = CliRunner()
# Tiny trials: 3 epochs of a 16-unit MLP on digits take about half a second.
BASE = {"epochs": 3, "batch_size": 256, "hidden": [16], "latent_dim": 2, "patience": None}


def rows(tune_dir):
    with open(tune_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


def study_of(tune_dir):
    return optuna.load_study(study_name=tune_dir.name, storage=f"sqlite:///{tune_dir / 'study.db'}")


# -- the space parser ---------------------------------------------------------------------------------
def test_space_parses_every_kind_and_its_grid():
    sp = parse_space({"lr": {"kind": "log-float", "low": "1e-4", "high": 1e-2, "points": 3},  # "1e-4": YAML text
                      "latent-dim": {"kind": "log-int", "low": 2, "high": 32, "points": 5},
                      "dropout": {"kind": "float", "low": 0.0, "high": 0.3, "step": 0.1},
                      "batch_size": {"kind": "int", "low": 32, "high": 128, "step": 32},
                      "hidden": {"kind": "categorical", "choices": [[64], [128, 64]]},
                      "epochs": 7})
    g = sp.grid()
    assert g["lr"] == pytest.approx([1e-4, 1e-3, 1e-2])  # geometric, ends exact
    assert g["latent_dim"] == [2, 4, 8, 16, 32]
    assert g["dropout"] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert g["batch_size"] == [32, 64, 96, 128]
    assert g["hidden"] == ["[64]", "[128, 64]"]  # lists travel as JSON text through Optuna
    assert sp.grid_size() == 3 * 5 * 4 * 4 * 2 and sp.fixed == {"epochs": 7}
    # a fixed trial: suggestions come back as the settings' own values (lists decoded)
    trial = optuna.trial.FixedTrial({"lr": 3e-3, "latent_dim": 5, "dropout": 0.2, "batch_size": 64,
                                     "hidden": "[128, 64]"})
    assert sp.suggest(trial) == {"lr": 3e-3, "latent_dim": 5, "dropout": 0.2, "batch_size": 64, "hidden": [128, 64]}


def test_default_space_is_valid_and_documented():
    sp = load_space(None)
    assert {p.name for p in sp.params} == {"lr", "latent_dim", "hidden", "batch_size", "dropout", "kl_warmup"}
    assert sp.fixed == {"epochs": 40, "patience": 10}
    assert sp.grid_size() == 3 * 4 * 3 * 3 * 3 * 3
    assert yaml.safe_load(DEFAULT_SPACE_YAML)["lr"]["kind"] == "log-float"


@pytest.mark.parametrize("entry, needle", [
    ({"lr_rate": {"kind": "float", "low": 0.1, "high": 1}}, "unknown hyperparameter 'lr_rate'"),
    ({"lr": {"kind": "float", "low": 0.01, "high": 0.01}}, "empty range"),
    ({"lr": {"kind": "float", "low": 0.1, "high": 0.01}}, "inverted range"),
    ({"latent_dim": {"kind": "int", "low": 8, "high": 8}}, "empty range"),
    ({"lr": {"kind": "log-float", "low": 0.0, "high": 0.1}}, "needs low > 0"),
    ({"lr": {"kind": "float", "low": 0.0, "high": 0.1}}, "invalid --lr=0.0"),  # TrainConfig's own range
    ({"dropout": {"kind": "float", "low": 0.0, "high": 1.5}}, "invalid --dropout=1.5"),
    ({"latent_dim": {"kind": "float", "low": 2, "high": 8}}, "whole numbers"),
    ({"hidden": {"kind": "int", "low": 2, "high": 8}}, "categorical"),
    ({"lr": {"kind": "uniform", "low": 0.1, "high": 1}}, "use one of float, log-float"),
    ({"lr": {"kind": "float", "low": 0.1, "high": 1, "lo": 3}}, "does not take lo"),
    ({"lr": {"kind": "float", "low": 0.1}}, "needs low: and high:"),
    ({"model": {"kind": "categorical", "choices": ["mlp"]}}, "2 or more"),
    ({"model": {"kind": "categorical", "choices": ["mlp", "mlp"]}}, "twice"),
    ({"model": {"kind": "categorical", "choices": ["mlp", "resnet"]}}, "invalid --model='resnet'"),
    ({"dropout": {"kind": "float", "low": 0.0, "high": 0.3, "step": 0.07}}, "whole number of steps"),
    ({"data": {"kind": "categorical", "choices": ["digits", "mnist"]}}, "--data"),
    ({"epochs": 5}, "no hyperparameter"),
    ({"lr": {"kind": "float", "low": 0.1, "high": 1}, "epochs": 0}, "invalid --epochs=0"),
])
def test_space_errors_are_one_line(entry, needle):
    with pytest.raises(UsageError) as e:
        parse_space(entry, "space.yaml")
    msg = str(e.value)
    assert needle in msg and "\n" not in msg, msg
    assert msg.startswith("space.yaml")


def test_grid_needs_finite_values_for_floats():
    sp = parse_space({"lr": {"kind": "float", "low": 0.001, "high": 0.01}})
    with pytest.raises(UsageError, match="step: or points: N"):
        sp.grid()


# -- samplers -----------------------------------------------------------------------------------------
def test_grid_runs_every_point_once_and_best_config_retrains_to_the_same_loss(tmp_path):
    base = {k: v for k, v in BASE.items() if k != "latent_dim"}
    space = {"lr": {"kind": "categorical", "choices": [0.01, 0.002]},
             "latent_dim": {"kind": "int", "low": 2, "high": 4, "step": 2}, **base}
    out = tmp_path / "grid"
    res = tune("digits", out, space=space, sampler="grid", trials=10, pruner="none", quiet=True, report=False)
    assert res.target == 4 and res.counts["complete"] == 4  # the grid caps the study at its size
    got = {(float(r["lr"]), int(r["latent_dim"])) for r in rows(out)}
    assert got == {(0.01, 2), (0.01, 4), (0.002, 2), (0.002, 4)}
    values = []
    for r in rows(out):  # each trial's value is its run's validation −ELBO (results.json)
        results = json.loads((out / r["run_dir"] / "results.json").read_text())
        assert float(r["value"]) == pytest.approx(results["validation"]["elbo"], rel=1e-5)
        values.append(float(r["value"]))
    assert res.best_value == pytest.approx(min(values))
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert (best["lr"], best["latent_dim"], best["epochs"], best["hidden"]) == (
        res.best_params["lr"], res.best_params["latent_dim"], 3, [16])
    # `vaekit train --config best_config.yaml` is the same run: same seed, same validation loss
    api.train(config=out / "best_config.yaml", out=tmp_path / "again", report=False)
    again = json.loads((tmp_path / "again" / "results.json").read_text())["validation"]["elbo"]
    assert again == pytest.approx(res.best_value, abs=1e-4)


def test_random_and_tpe_sample_inside_the_space(tmp_path):
    space = {"lr": {"kind": "log-float", "low": 1e-3, "high": 2e-2},
             "dropout": {"kind": "float", "low": 0.0, "high": 0.2, "step": 0.1}, **BASE}
    for sampler, n in (("random", 3), ("tpe", 5)):  # tpe: 4 random start-up trials, then TPE
        out = tmp_path / sampler
        res = tune("digits", out, space=space, sampler=sampler, trials=n, pruner="none", quiet=True, report=False)
        assert res.counts["complete"] == n
        lrs = [float(r["lr"]) for r in rows(out)]
        assert all(1e-3 <= v <= 2e-2 for v in lrs) and len(set(lrs)) == n
        assert all(float(r["dropout"]) in (0.0, 0.1, 0.2) for r in rows(out))
        assert all(math.isfinite(float(r["value"])) for r in rows(out))


def test_pruned_trials_leave_consistent_runs_and_a_report(tmp_path):
    # two learning rates that learn and four far too small: the median pruner stops the small ones
    space = {"lr": {"kind": "categorical", "choices": [0.02, 0.01, 1e-5, 2e-5, 3e-5, 4e-5]},
             **{**BASE, "epochs": 6}}
    out = tmp_path / "pruned"
    res = tune("digits", out, space=space, sampler="grid", trials=6, pruner="median", quiet=True)
    assert res.counts["finished"] == 6 and res.counts["pruned"] >= 1, res.counts
    assert res.best_params["lr"] in (0.02, 0.01)
    for r in rows(out):
        if r["state"] != "PRUNED":
            continue
        run = out / r["run_dir"]
        e = int(r["pruned_at_epoch"])
        assert 1 <= e < 6
        assert json.loads((run / "trial.json").read_text())["state"] == "PRUNED"
        assert json.loads((run / "trainer_state.json").read_text())["epoch"] == e
        assert len((run / "metrics.jsonl").read_text().splitlines()) == e
        assert api.load(run).latent_dim == 2  # a pruned run loads like an interrupted one
    page = (out / "tune_report.html").read_text()
    for fig in ("fig-history", "fig-intermediate", "fig-importance", "fig-parallel"):
        assert f'id="{fig}"' in page, fig


# -- resumption ---------------------------------------------------------------------------------------
SPACE_R = {"lr": {"kind": "log-float", "low": 2e-3, "high": 2e-2}, **BASE}


def test_rerun_with_more_trials_continues_the_study(tmp_path):
    out = tmp_path / "grow"
    tune("digits", out, space=SPACE_R, sampler="tpe", trials=2, pruner="none", quiet=True, report=False)
    first = rows(out)
    stamp = (out / "trials/0000/model.safetensors").stat().st_mtime_ns
    res = tune("digits", out, space=SPACE_R, sampler="tpe", trials=4, pruner="none", quiet=True, report=False)
    assert res.counts["complete"] == 4 and len(study_of(out).trials) == 4
    assert rows(out)[:2] == first  # earlier trials intact
    assert (out / "trials/0000/model.safetensors").stat().st_mtime_ns == stamp
    # the same command once more has nothing left to do
    assert tune("digits", out, space=SPACE_R, sampler="tpe", trials=4, quiet=True, report=False).counts[
        "complete"] == 4


def test_interrupted_trial_is_requeued_and_its_run_continues(tmp_path, monkeypatch):
    real_train = api.train

    def interrupting_train(*args, on_epoch_end=None, **kw):
        if str(kw.get("out", "")).endswith("0001") and not kw.get("resume"):
            def hook(row):
                on_epoch_end(row)
                if row["epoch"] == 2:
                    raise KeyboardInterrupt
            return real_train(*args, on_epoch_end=hook, **kw)
        return real_train(*args, on_epoch_end=on_epoch_end, **kw)

    out = tmp_path / "killed"
    monkeypatch.setattr(api, "train", interrupting_train)
    res = tune("digits", out, space=SPACE_R, sampler="random", trials=3, pruner="none", quiet=True)
    assert res.interrupted and res.counts["finished"] == 1 and res.counts["interrupted"] == 1
    assert res.counts["waiting"] == 1  # trial 1 queued again with its hyperparameters
    monkeypatch.setattr(api, "train", real_train)
    res = tune("digits", out, space=SPACE_R, sampler="random", trials=3, pruner="none", quiet=True, report=False)
    assert res.counts["complete"] == 3 and res.counts["interrupted"] == 1
    trials = study_of(out).trials
    retry = trials[2]
    assert retry.system_attrs["failed_trial"] == 1 and retry.params == trials[1].params
    assert retry.user_attrs["run_dir"] == "trials/0001"
    assert sorted(retry.intermediate_values) == [1, 2, 3]  # epochs 1-2 from the first try
    epochs = [json.loads(s)["epoch"] for s in (out / "trials/0001/metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    # resuming is exact: the same trial run without interruption gives the same value
    clean = tmp_path / "clean"
    tune("digits", clean, space=SPACE_R, sampler="random", trials=2, pruner="none", quiet=True, report=False)
    assert retry.value == pytest.approx(study_of(clean).trials[1].value, abs=1e-5)


def test_two_worker_processes_share_one_study(tmp_path):
    out = tmp_path / "jobs"
    res = tune("digits", out, space=SPACE_R, sampler="random", trials=4, jobs=2, pruner="none", quiet=True,
               report=False)
    c = trial_counts(study_of(out))
    assert c["complete"] == 4 and c["running"] == 0 and res.counts == c
    assert len({r["run_dir"] for r in rows(out)}) == 4


# -- errors through the CLI ---------------------------------------------------------------------------
def usage_error(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output)
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for n in needles:
        assert n in err, (n, err)


def run(*args):
    return runner.invoke(app, ["tune", *[str(a) for a in args]])


def test_cli_errors_exit_2_with_one_line_and_leave_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    out = tmp_path / "t"
    for text, needle in (("lr_rate: {kind: float, low: 0.1, high: 1}", "unknown hyperparameter 'lr_rate'"),
                         ("lr: {kind: float, low: 0.1, high: 0.1}", "empty range"),
                         ("lr: {kind: log-float, low: 0.1, high: 0.001}", "inverted range"),
                         ("lr: [oops", "not valid YAML")):
        bad.write_text(text)
        usage_error(run("--space", bad, "--out", out), needle)
    usage_error(run("--out", out, "--sampler", "grid", "--trials", "12"), "the grid has 972 points",
                "--allow-partial-grid")
    usage_error(run("--out", out, "--sampler", "bayes"), "--sampler must be one of grid, random, tpe")
    usage_error(run("--out", out, "--metric", "val_acc"), "--metric must be one of")
    usage_error(run("--out", out, "--space", tmp_path / "missing.yaml"), "space file not found")
    usage_error(run("--out", out, "--storage", f"sqlite:///{tmp_path}/no/such/dir/s.db"), "cannot be opened")
    usage_error(run("--out", out, "--storage", "postgresql://me:secret@127.0.0.1:1/db"), "--storage")
    r = run("--out", out, "--storage", "postgresql://me:secret@127.0.0.1:1/db")
    assert "secret" not in r.stderr  # passwords are never echoed
    usage_error(run("--out", out, "--storage", "not a url"), "--storage")
    assert not out.exists()  # nothing written for bad input
    (tmp_path / "file").write_text("x")
    usage_error(run("--out", tmp_path / "file"), "is a file")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    usage_error(run("--out", tmp_path / "other"), "not a vaekit tune folder")
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"


def test_cli_runs_and_refuses_to_continue_with_another_space(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("lr: {kind: log-float, low: 2e-3, high: 2e-2}\nepochs: 2\nbatch_size: 256\nhidden: [16]\n")
    out = tmp_path / "cli"
    r = run("--data", "digits", "--space", space, "--sampler", "random", "--trials", "2", "--out", out, "-q")
    assert r.exit_code == 0, r.output
    assert "2 of 2 trials finished (2 complete, 0 pruned, 0 failed)" in r.stdout
    for name in ("study.db", "trials.csv", "best_config.yaml", "tune_report.html", "tune.json"):
        assert (out / name).is_file(), name
    space.write_text("lr: {kind: log-float, low: 2e-3, high: 3e-2}\nepochs: 2\nbatch_size: 256\nhidden: [16]\n")
    usage_error(run("--space", space, "--sampler", "random", "--trials", "3", "--out", out),
                "was started with different --space")
    usage_error(run("--space", space, "--trials", "3", "--out", out, "--study", "other"), "holds study 'cli'")
    assert len(study_of(out).trials) == 2


def test_timeout_starts_no_trial_after_the_deadline(tmp_path):
    res = tune("digits", tmp_path / "late", space=SPACE_R, sampler="random", trials=3, timeout=1e-6, quiet=True,
               report=False)
    assert res.timed_out and res.counts["finished"] == 0 and not res.interrupted
