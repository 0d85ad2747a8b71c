"""--log tensorboard|mlflow: a tiny digits run read back by TensorBoard's and MLflow's own readers."""

import json

import pytest

from cli_helpers import assert_usage_error, run
from vaekit import tracking
from vaekit.runs import RUN_DIRS

TINY = ["--data", "digits", "--latent-dim", "2", "--hidden", "32", "--epochs", "2", "--batch-size", "64", "-q"]


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _numbers(rows):
    return {k for r in rows for k, v in r.items() if k != "epoch" and isinstance(v, (int, float))}


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install 'vaekit[track]')")
    out = tmp_path_factory.mktemp("tb") / "run"
    r = run("train", *TINY, "--out", out, "--log", "tensorboard")
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def mlflow_run(tmp_path_factory):
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'vaekit[track]')")
    out = tmp_path_factory.mktemp("mlf") / "run"
    r = run("train", *TINY, "--out", out, "--log", "mlflow")
    assert r.exit_code == 0, r.output
    return out


def test_tensorboard_holds_one_scalar_per_epoch_per_metrics_column(tb_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    rows = _rows(tb_run)
    columns = _numbers(rows)
    assert {"train_loss", "val_loss", "beta", "lr", "seconds"} <= columns
    for col in columns:
        events = acc.Scalars(col)
        assert [e.step for e in events] == [r["epoch"] for r in rows], col
        assert [e.value for e in events] == pytest.approx([r[col] for r in rows], rel=1e-6), col
    results = json.loads((tb_run / "results.json").read_text())
    final = acc.Scalars("results/test/elbo")
    assert len(final) == 1 and final[0].value == pytest.approx(results["test"]["elbo"], rel=1e-6)
    assert "evaluation/neg_iwae" in acc.Tags()["scalars"]
    assert {"samples", "reconstructions"} <= set(acc.Tags()["images"])


def test_tensorboard_projector_gets_the_test_codes_with_labels(tb_run):
    logdir = tb_run / "tensorboard"
    config = (logdir / "projector_config.pbtxt").read_text()
    assert "tensors.tsv" in config and "metadata.tsv" in config
    step_dir = next(p for p in logdir.iterdir() if p.is_dir())
    codes = (step_dir / "latent" / "tensors.tsv").read_text().splitlines()
    labels = (step_dir / "latent" / "metadata.tsv").read_text().splitlines()
    assert len(codes) == len(labels) == 180  # digits' test split: 10% of 1797
    assert all(len(line.split("\t")) == 2 for line in codes)  # latent_dim 2
    assert set(labels) == {str(d) for d in range(10)}


def test_mlflow_run_holds_the_config_history_final_metrics_and_the_run(mlflow_run, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads its file store only when allowed
    client = MlflowClient(tracking_uri=(mlflow_run / "mlruns").as_uri())
    exp = client.get_experiment_by_name("vaekit")
    (r,) = client.search_runs([exp.experiment_id])
    assert r.info.status == "FINISHED"
    config = json.loads((mlflow_run / "config.json").read_text())["config"]
    assert r.data.params["latent_dim"] == "2" and r.data.params["hidden"] == "[32]"
    assert set(config) <= set(r.data.params)
    rows = _rows(mlflow_run)
    for col in _numbers(rows):
        hist = sorted(client.get_metric_history(r.info.run_id, col), key=lambda m: m.step)
        assert [m.step for m in hist] == [row["epoch"] for row in rows], col
        assert [m.value for m in hist] == pytest.approx([row[col] for row in rows], rel=1e-12), col
    results = json.loads((mlflow_run / "results.json").read_text())
    evaluation = json.loads((mlflow_run / "evaluation.json").read_text())
    assert r.data.metrics["results/test/elbo"] == pytest.approx(results["test"]["elbo"], rel=1e-12)
    assert r.data.metrics["evaluation/neg_iwae"] == pytest.approx(evaluation["neg_iwae"], rel=1e-12)
    names = {a.path for a in client.list_artifacts(r.info.run_id, "run")}
    assert {"run/config.json", "run/model.safetensors", "run/metrics.jsonl", "run/results.json",
            "run/samples.png", "run/report.html"} <= names
    assert "run/mlruns" not in names


def test_overwrite_removes_the_tracking_folders_and_keeps_a_users_file(tmp_path):
    out = tmp_path / "run"
    assert run("train", *TINY, "--epochs", "1", "--out", out).exit_code == 0
    for name in RUN_DIRS:
        (out / name / "sub").mkdir(parents=True)
        (out / name / "sub" / "events").write_text("x")
    (out / "notes.txt").write_text("mine")
    r = run("train", *TINY, "--epochs", "1", "--out", out, "--overwrite")
    assert r.exit_code == 0, r.output
    assert not any((out / name).exists() for name in RUN_DIRS)
    assert (out / "notes.txt").read_text() == "mine"
    assert "notes.txt" in r.stderr and "tensorboard" not in r.stderr


def test_a_missing_tracker_package_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking, "_available", lambda module: False)
    for name in ("tensorboard", "mlflow"):
        assert_usage_error(run("train", *TINY, "--out", tmp_path / name, "--log", name),
                           f"--log {name} needs", "pip install 'vaekit[track]'")
        assert not (tmp_path / name).exists()  # refused before anything is written


def test_bad_log_settings_are_usage_errors(tmp_path):
    assert_usage_error(run("train", *TINY, "--out", tmp_path / "a", "--log", "wandb"), "tensorboard, mlflow")
    assert_usage_error(run("train", *TINY, "--out", tmp_path / "b", "--log-uri", "sqlite:///x.db"), "--log mlflow")
    assert_usage_error(run("train", *TINY, "--out", tmp_path / "c", "--log", "tensorboard", "--log-uri", "x"),
                       "MLflow")
    import vaekit

    with pytest.raises(vaekit.errors.UsageError, match="--out RUN"):
        vaekit.train("digits", log="tensorboard", epochs=1)


def test_mlflow_keys_keep_allowed_names_and_replace_the_rest():
    assert tracking.mlflow_key("val_ndcg@100") == "val_ndcg_100"
    assert tracking.mlflow_key("results/test/elbo") == "results/test/elbo"


def test_a_tracking_uri_mlflow_cannot_use_is_refused_before_training(tmp_path):
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'vaekit[track]')")
    r = run("train", *TINY, "--out", tmp_path / "run", "--log", "mlflow", "--log-uri", "bogus://nowhere")
    assert_usage_error(r, "--log-uri bogus://nowhere", "MLflow cannot use it")
    assert not (tmp_path / "run").exists()


def test_tune_logs_one_mlflow_run_per_trial_in_the_tune_folder(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'vaekit[track]')")
    from mlflow.tracking import MlflowClient

    from vaekit.tuning import tune

    space = {"latent_dim": {"kind": "categorical", "choices": [2, 3]}, "epochs": 2, "batch_size": 256,
             "hidden": [16], "patience": None}
    out = tmp_path / "tune"
    res = tune("digits", out, space=space, sampler="grid", trials=2, pruner="none", quiet=True, report=False,
               log="mlflow")
    assert res.counts["complete"] == 2
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(out / "mlruns").as_uri())
    runs = client.search_runs([client.get_experiment_by_name("vaekit").experiment_id])
    assert sorted(r.data.params["latent_dim"] for r in runs) == ["2", "3"]
    for r in runs:
        trial = out / "trials" / r.info.run_name
        rows = _rows(trial)
        assert r.data.tags["vaekit.run_dir"] == str(trial.resolve())
        hist = client.get_metric_history(r.info.run_id, "val_loss")
        assert sorted(m.value for m in hist) == sorted(row["val_loss"] for row in rows)


def test_tune_refuses_a_missing_tracker_before_starting(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking, "_available", lambda module: False)
    r = run("tune", "--out", tmp_path / "tune", "--trials", "1", "--log", "tensorboard")
    assert_usage_error(r, "pip install 'vaekit[track]'")
    assert not (tmp_path / "tune").exists()


def test_logging_changes_no_result_and_the_python_api_takes_log(tb_run, tmp_path):
    import vaekit

    plain = tmp_path / "plain"
    vaekit.train("digits", plain, latent_dim=2, hidden=[32], epochs=2, batch_size=64)
    assert (plain / "results.json").read_text() == (tb_run / "results.json").read_text()
    assert not any((plain / name).exists() for name in RUN_DIRS)
    logged = tmp_path / "logged"
    vaekit.train("digits", logged, latent_dim=2, hidden=[32], epochs=1, batch_size=64, log="tensorboard")
    assert (logged / "tensorboard" / "projector_config.pbtxt").is_file()
