"""vaekit tune for the recommendation families (issue 16): the study maximizes validation NDCG@100, the best
trial is the highest, trials.csv / best_config.yaml / tune_report.html speak of NDCG, not nats."""

import csv

import optuna
import pytest
import yaml
from cli_helpers import assert_usage_error
from cli_helpers import run as cli
from test_interactions import write_interactions

from vaekit.tuning import tune
from vaekit.tuning.study import _settings

SPACE = {"lr": {"kind": "log-float", "low": 1e-3, "high": 3e-2}, "dropout": {"kind": "float", "low": 0.2, "high": 0.6},
         "epochs": 2, "hidden": [16], "latent_dim": 4, "batch_size": 16, "patience": None}


def test_tune_maximizes_validation_ndcg_of_a_mult_vae(tmp_path, monkeypatch):
    import vaekit.tuning.report as report

    monkeypatch.setattr(report, "_figures", lambda study, metric: [])  # Optuna's plots: seconds, tested elsewhere
    data = write_interactions(tmp_path / "r.csv", n_users=60, n_items=25, per_user=8)
    res = tune(str(data), tmp_path / "t", space=SPACE, sampler="random", trials=3, family="mult-vae", quiet=True,
               pruner="none")
    assert res.metric == "val_ndcg@100" and res.counts["complete"] == 3
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 't' / 'study.db'}")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    with open(tmp_path / "t" / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    values = [float(r["value"]) for r in rows]
    assert len(set(values)) > 1 and res.best_value == pytest.approx(max(values), rel=1e-5)  # the highest wins
    assert all(float(r["value"]) == float(r["val_ndcg@100"]) and 0 < float(r["value"]) <= 1 for r in rows)
    assert "val_elbo" not in rows[0] and "val_recall@20" in rows[0]
    best = res.best_run / "results.json"
    assert best.is_file() and str(res.best_value)[:6] in best.read_text()
    text = (tmp_path / "t" / "best_config.yaml").read_text()
    cfg = yaml.safe_load(text)
    assert cfg["family"] == "mult-vae" and cfg["epochs"] == 2 and "val_ndcg@100 = " in text.splitlines()[0]
    page = (tmp_path / "t" / "tune_report.html").read_text()
    assert "higher is better" in page and "nats per example" not in page


def test_metric_must_fit_the_family(tmp_path):
    data = write_interactions(tmp_path / "r.csv", n_users=20, n_items=10, per_user=5)
    assert_usage_error(cli("tune", "--data", data, "--family", "mult-vae", "--metric", "val_elbo", "--out",
                           tmp_path / "a"), "a mult-vae search watches validation NDCG@100")
    assert_usage_error(cli("tune", "--metric", "val_ndcg@100", "--out", tmp_path / "b"),
                       "for the recommendation families")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_default_spaces_and_epochs():
    sp, base, cfg = _settings(None, None, "x.csv", 3, 0, "recvae")
    assert {p.name for p in sp.params} == {"lr", "latent_dim", "hidden", "dropout"} and base["family"] == "recvae"
    assert cfg.epochs == 3 and base["epochs"] == 3  # --epochs wins over the space's epochs
    sp, base, cfg = _settings(None, None, None, 3, 0)  # the VAE default space too (it used to run 40 epochs)
    assert cfg.epochs == 3 and base["epochs"] == 3 and "kl_warmup" not in {p.name for p in sp.params}


def test_a_maximizing_study_is_told_the_metric_itself():
    from vaekit.families import FAMILIES
    from vaekit.tuning.objective import _Progress

    class Trial:
        reported: list = []

        def report(self, value, step):
            self.reported.append((value, step))

        def should_prune(self):
            return False

    t = Trial()
    p = _Progress(t, FAMILIES["recvae"]().watched(), maximizing=True)
    for e, v in enumerate([0.2, 0.5, 0.4], 1):
        p.on_epoch_end({"epoch": e, "val_loss": 9.0, "val_ndcg@100": v})
    assert t.reported == [(0.2, 1), (0.5, 2), (0.5, 3)]  # the best so far, as it is
