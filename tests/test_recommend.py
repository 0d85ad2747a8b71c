"""Recommendation (issue 16): the mult-vae / mult-dae families trained on an interactions file, early stopping
on validation NDCG@100 (higher is better), results.json's ranking metrics, and reloading a run."""

import json

import pytest
from test_interactions import write_interactions

import vaekit
from vaekit.api import train

TINY = dict(hidden=[16], latent_dim=4, epochs=3, batch_size=16, patience=None)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rec")
    data = write_interactions(tmp / "r.csv", n_users=60, n_items=25, per_user=8)
    train(str(data), tmp / "run", family="mult-vae", report=False, **TINY)
    return tmp / "run", data


def test_mult_vae_trains_and_watches_validation_ndcg(run):
    out, _ = run
    rows = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(0.0 <= r["val_ndcg@100"] <= 1.0 and "val_loss" in r for r in rows)
    best = max(range(3), key=lambda i: (rows[i]["val_ndcg@100"], -i))  # the first epoch with the highest NDCG
    results = json.loads((out / "results.json").read_text())
    assert results["best_epoch"] == best + 1
    test = results["test"]
    assert test["users"] == 6 and 0 < test["ndcg@100"] <= 1 and 0 <= test["recall@20"] <= test["recall@50"] <= 1
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["family"] == "mult-vae" and cfg["config"]["likelihood"] == "multinomial"
    assert cfg["config"]["beta"] == 0.2 and cfg["config"]["total_anneal_steps"] == 200_000  # the paper's
    assert cfg["config"]["hidden"] == [16] and cfg["config"]["dropout"] == 0.5  # set: kept; unset: the paper's
    assert len(cfg["data"]["users"]) == 60 and len(cfg["data"]["items"]) == 25


def test_a_run_reloads_with_its_id_maps_and_weights(run):
    out, _ = run
    trained = vaekit.load(out)
    assert trained.info["data"]["items"][:2] == ["i0", "i1"] and trained.model.n_items == 25
    assert not trained.model.training


def test_early_stopping_keeps_the_highest_metric_of_a_maximised_objective():
    import torch

    from vaekit.config import make_config
    from vaekit.core.objectives import Objective, StepOutput
    from vaekit.families.base import BatchSource, Family
    from vaekit.training import Trainer

    scores = iter([0.2, 0.5, 0.4, 0.3])

    class Up(Objective):
        metric, maximize = "val_score", True

        def step(self, model, batch, beta):
            loss = (model(batch) ** 2).mean()
            return StepOutput(loss, loss.detach().reshape(1))

        def epoch_row(self, sums, n, steps):
            return {"train_loss": float(sums[0])}

        def validate(self, model, split, batch_size):
            return {"val_loss": 0.0, "val_score": next(scores)}

    class One(BatchSource):
        def epoch(self, perm, gen):
            yield self.train.x

    class Fam(Family):
        name = "test"

        def objective(self, cfg, train):
            return Up()

        def batch_source(self, cfg, train):
            return One(train, 4)

    cfg = make_config(data="x", epochs=4, patience=2)
    r = Trainer(torch.nn.Linear(2, 1), cfg, torch.device("cpu"), progress=False, family=Fam()).fit(
        torch.ones(4, 2), torch.ones(2, 2))
    assert (r.best_epoch, r.best_val_loss, r.epochs_run, r.stopped_early) == (2, 0.5, 4, True)


def test_mult_dae_has_no_kl_and_refuses_what_it_cannot_honour(tmp_path):
    data = write_interactions(tmp_path / "r.csv", n_users=30, n_items=20, per_user=6)
    trained = train(str(data), family="mult-dae", report=False, **{**TINY, "epochs": 1})
    assert trained.result.history[0]["train_kl"] == 0.0 and trained.config.beta == 1.0
    with pytest.raises(vaekit.errors.UsageError, match="--iw-samples is not supported by the mult-vae family"):
        train(str(data), family="mult-vae", iw_samples=5, report=False, **TINY)


def test_tunes_pruner_is_told_minus_a_metric_that_is_maximised():
    from vaekit.families import FAMILIES
    from vaekit.tuning.objective import _Progress

    class Trial:
        def __init__(self):
            self.reported = []

        def report(self, value, step):
            self.reported.append((value, step))

        def should_prune(self):
            return False

    t = Trial()
    p = _Progress(t, FAMILIES["mult-vae"]().watched())
    for e, v in enumerate([0.2, 0.5, 0.4], 1):
        p.on_epoch_end({"epoch": e, "val_loss": 9.0, "val_ndcg@100": v})
    assert t.reported == [(-0.2, 1), (-0.5, 2), (-0.5, 3)]  # the study minimizes: the best so far, negated
    t2 = Trial()
    _Progress(t2, FAMILIES["vae"]().watched()).replay([{"epoch": 1, "val_loss": 3.0}, {"epoch": 2, "val_loss": 4.0}])
    assert t2.reported == [(3.0, 1), (3.0, 2)]


def test_cli_train_prints_ranking_metrics_and_vae_commands_refuse_the_run(run, tmp_path):
    from cli_helpers import assert_usage_error
    from cli_helpers import run as cli

    out, data = run
    r = cli("train", "--data", data, "--family", "mult-dae", "--epochs", 1, "--hidden", 8, "--latent-dim", 2,
            "--out", tmp_path / "dae", "-q")
    assert r.exit_code == 0, r.output
    assert "test NDCG@100" in r.stdout and "Recall@20" in r.stdout
    cfg = json.loads((tmp_path / "dae" / "config.json").read_text())["config"]
    # the flags set are kept; what was not set is the paper's (the CLI passes only what the user gave)
    assert (cfg["hidden"], cfg["latent_dim"], cfg["dropout"], cfg["batch_size"]) == ([8], 2, 0.5, 500)
    assert_usage_error(cli("sample", out, "-n", 2, "--out", tmp_path / "s.npy"), "mult-vae run (recommendation)",
                       "vaekit recommend")
    r = cli("evaluate", out, "--json")  # ranking metrics of the test users, as results.json has them
    assert r.exit_code == 0, r.output
    assert {k: v for k, v in json.loads(r.stdout).items() if k not in ("data", "split", "same_data_as_training",
                                                                  "definitions")} \
        == json.loads((out / "results.json").read_text())["test"]
    assert json.loads(r.stdout)["same_data_as_training"] is True
    assert_usage_error(cli("evaluate", out, "--split", "train"), "--split must be validation or test")
    assert_usage_error(cli("train", "--data", data, "--family", "mult-vae", "--item-column", "movie", "--out",
                           tmp_path / "x"), "no column 'movie'", "--item-column")


def test_recommendations_never_repeat_history_for_seen_and_new_users(run):
    out, _ = run
    trained = vaekit.load(out)
    items = trained.info["data"]["items"]
    seen_user = trained.info["data"]["users"][0]
    histories = {seen_user: items[:5], "newcomer": [items[7], items[9]]}
    recs = trained.recommend(histories, k=10)
    assert list(recs) == [seen_user, "newcomer"]
    for user, ranked in recs.items():
        got = [i for i, _ in ranked]
        assert len(got) == 10 and len(set(got)) == 10 and not set(got) & set(histories[user])
        probs = [p for _, p in ranked]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) < 1
    # the whole catalogue but two items seen: only those two can come back
    assert [i for i, _ in trained.recommend({"x": items[2:]}, k=10)["x"]] in ([items[0], items[1]], [items[1], items[0]])
    with pytest.warns(UserWarning, match="ignored 2 item"):
        assert len(trained.recommend({"x": [items[0], "nope", "nada"]}, k=3)["x"]) == 3
    with pytest.raises(vaekit.errors.DataError, match="no user's history names an item the run knows"):
        trained.recommend({"x": ["nope"]}, k=3)
    with pytest.raises(vaekit.errors.UsageError, match="--k 26 is more than the run's catalogue of 25 items"):
        trained.recommend(histories, k=26)


def test_cli_recommend_writes_ranked_unseen_items(run, tmp_path):
    from cli_helpers import assert_usage_error
    from cli_helpers import run as cli

    out, _ = run
    hist = tmp_path / "h.csv"
    hist.write_text("user,item,rating\nann,i1,5\nann,i2,1\nann,zzz,4\nbob,i3,4\ncid,zzz,5\n")
    recs = tmp_path / "recs.csv"
    r = cli("recommend", out, "--data", hist, "--k", 5, "--out", recs)
    assert r.exit_code == 0, r.output
    assert "ignored 2 history row(s)" in r.stderr and "1 user(s) with no known clicked item" in r.stderr
    rows = [line.split(",") for line in recs.read_text().splitlines()]
    assert rows[0] == ["user", "item", "score", "rank"] and len(rows) == 11
    ann = [r[1] for r in rows[1:] if r[0] == "ann"]
    assert len(ann) == 5 and not {"i1", "i2"} & set(ann) and [r[3] for r in rows[1:6]] == ["1", "2", "3", "4", "5"]
    assert_usage_error(cli("recommend", out, "--data", hist, "--k", 99, "--out", tmp_path / "b.csv"),
                       "--k 99 is more than the run's catalogue of 25 items")
    bad = tmp_path / "bad.csv"
    bad.write_text("who,item\nann,i1\n")
    assert_usage_error(cli("recommend", out, "--data", bad, "--out", tmp_path / "c.csv"), "no column 'user'",
                       "--user-column")
    assert_usage_error(cli("recommend", out, "--data", hist, "--out", recs), "already exists")


def test_an_interrupted_mult_vae_run_resumes_to_the_uninterrupted_weights(tmp_path):
    import torch

    data = write_interactions(tmp_path / "r.csv", n_users=40, n_items=20, per_user=6)
    settings = dict(TINY, epochs=3, total_anneal_steps=20, min_user_items=2)
    full = train(str(data), tmp_path / "full", family="mult-vae", report=False, **settings)

    def stop_after_one(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(str(data), tmp_path / "cut", family="mult-vae", report=False, on_epoch_end=stop_after_one, **settings)
    resumed = train(out=tmp_path / "cut", resume=True, report=False)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    # 32 training users, batches of 16: beta = step / 20 after steps 2, 4, 6, capped at 0.2
    assert [r["beta"] for r in resumed.result.history] == [0.1, 0.2, 0.2]
    assert json.loads((tmp_path / "cut" / "results.json").read_text())["test"] == \
        json.loads((tmp_path / "full" / "results.json").read_text())["test"]
