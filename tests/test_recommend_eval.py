"""Evaluating and reporting recommendation runs (issue 16): ``vaekit.evaluate`` / ``vaekit evaluate`` give the
ranking metrics of the test users (the numbers results.json holds), ``vaekit report`` and the model card speak of
NDCG/Recall, the users × items data and its split, not of likelihoods and samples."""

import json

import pytest
from cli_helpers import assert_usage_error
from cli_helpers import run as cli
from data_helpers import raises_one_line
from test_interactions import write_interactions

import vaekit
from vaekit.errors import UsageError

TINY = dict(hidden=[16], latent_dim=4, epochs=2, batch_size=16, patience=None)
RANKING = ("ndcg@100", "recall@20", "recall@50", "coverage@20", "users")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("receval")
    data = write_interactions(tmp / "r.csv", n_users=60, n_items=25, per_user=8)
    vaekit.train(str(data), tmp / "run", family="mult-vae", report=False, **TINY)
    return tmp / "run", data


def test_python_evaluate_gives_the_ranking_metrics_of_results_json(run):
    out, data = run
    results = json.loads((out / "results.json").read_text())
    for split in ("test", "validation"):
        res = vaekit.evaluate(out, split=split)
        assert {k: res[k] for k in RANKING} == results[split]
        assert res["split"] == split and res["same_data_as_training"] is True and "ndcg@100" in res["definitions"]
    trained = vaekit.load(out)
    assert vaekit.evaluate(trained, str(data))["ndcg@100"] == results["test"]["ndcg@100"]
    with raises_one_line("--split must be validation or test", UsageError):
        vaekit.evaluate(out, split="train")
    with raises_one_line("user,item file", UsageError):
        vaekit.evaluate(out, [[1, 0, 1]])


def test_evaluate_on_another_file_needs_the_runs_catalogue(run, tmp_path):
    out, _ = run
    other = write_interactions(tmp_path / "o.csv", n_users=60, n_items=25, per_user=8, seed=5)  # same 25 items
    res = vaekit.evaluate(out, str(other))
    assert res["data"] == str(other) and "same_data_as_training" not in res and res["users"] == 6
    assert 0 < res["ndcg@100"] <= 1 and 0 <= res["recall@20"] <= res["recall@50"] <= 1
    small = write_interactions(tmp_path / "s.csv", n_users=30, n_items=10, per_user=6)
    with raises_one_line("does not hold the items", UsageError):
        vaekit.evaluate(out, str(small))
    assert_usage_error(cli("evaluate", out, "--data", small), "does not hold the items", "same catalogue")


def test_cli_evaluate_prints_and_saves_the_metrics(run):
    out, _ = run
    (out / "evaluation.json").unlink(missing_ok=True)
    r = cli("evaluate", out)
    assert r.exit_code == 0, r.output
    assert "NDCG@100" in r.stdout and "Recall@20" in r.stdout and "coverage" in r.stdout
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["ndcg@100"] == json.loads((out / "results.json").read_text())["test"]["ndcg@100"]


def test_training_writes_a_recommendation_card_and_report_rewrites_it(run):
    out, _ = run
    card = (out / "README.md").read_text()  # written at the end of training
    assert "NDCG@100" in card and "60 × 25" in card and "480" in card and "32.000%" in card
    assert "48 train · 6 validation · 6 test" in card and "strong generalization" in card
    assert "vaekit recommend run" in card and "vaekit.Recommender.load" in card
    for vae_only in ("ELBO", "IWAE", "bits/dim", "sample", "active units", "posterior collapse"):
        assert vae_only not in card, vae_only
    (out / "evaluation.json").unlink(missing_ok=True)
    r = cli("report", out)
    assert r.exit_code == 0, r.output
    ev = json.loads((out / "evaluation.json").read_text())
    card = (out / "README.md").read_text()
    assert f"{ev['ndcg@100']:.4f}" in card and "(`evaluation.json`)" in card
    page = (out / "report.html").read_text()
    assert "NDCG@100" in page and "validation NDCG@100" in page and "data:image/png;base64," in page
    assert_usage_error(cli("report", out, "--split", "train"), "--split must be validation or test")


def test_card_of_a_run_without_the_interaction_count(run):
    """Runs written before config.json recorded the interaction count still get a card (density: n/a)."""
    from vaekit.evaluation.model_card import model_card

    out, _ = run
    info = json.loads((out / "config.json").read_text())
    del info["data"]["interactions"]
    card = model_card(out, info)
    assert "| density | n/a |" in card and "60 × 25" in card


def test_recommend_bad_histories_are_one_line_or_a_note(run, tmp_path):
    out, _ = run
    hist = tmp_path / "h.csv"
    hist.write_text("user,item\nnew,i1\nnew,i1\nnew,i2\n")
    r = cli("recommend", out, "--data", hist, "--k", 3, "--out", tmp_path / "r.csv")
    assert r.exit_code == 0, r.output
    assert "1 history row(s) repeat a (user, item) pair" in r.stderr
    assert not {"i1", "i2"} & {line.split(",")[1] for line in (tmp_path / "r.csv").read_text().splitlines()[1:]}
    hist.write_text("user,item\n")
    assert_usage_error(cli("recommend", out, "--data", hist, "--out", tmp_path / "e.csv"), "has no rows")
    hist.write_text("user,item\nnew,zzz\n")
    assert_usage_error(cli("recommend", out, "--data", hist, "--out", tmp_path / "u.csv"),
                       "no user's history names an item the run knows (1 unknown")
    with pytest.warns(UserWarning, match="1 repeated"):
        recs = vaekit.load(out).recommend({"new": ["i1", "i1"]}, k=2)
    assert len(recs["new"]) == 2


def test_cli_train_mult_vae_then_recommend_then_evaluate(tmp_path):
    """The issue's "done when": `vaekit train --data ratings.csv --family mult-vae`, then `vaekit recommend`
    on a file the test writes, for a user seen in training and a new one; then evaluate and report."""
    data = write_interactions(tmp_path / "ratings.csv", n_users=40, n_items=20, per_user=7)
    r = cli("train", "--data", data, "--family", "mult-vae", "--epochs", 1, "--hidden", 8, "--latent-dim", 2,
            "--batch-size", 16, "--out", tmp_path / "run", "-q")
    assert r.exit_code == 0, r.output
    seen_user = data.read_text().splitlines()[1].split(",")[0]
    hist = tmp_path / "h.csv"
    hist.write_text(f"user,item\n{seen_user},i0\n{seen_user},i1\nnewcomer,i2\n")
    r = cli("recommend", tmp_path / "run", "--data", hist, "--k", 4, "--out", tmp_path / "recs.csv")
    assert r.exit_code == 0, r.output
    rows = [line.split(",") for line in (tmp_path / "recs.csv").read_text().splitlines()[1:]]
    assert {u for u, *_ in rows} == {seen_user, "newcomer"} and len(rows) == 8
    assert not [r for r in rows if (r[0], r[1]) in {(seen_user, "i0"), (seen_user, "i1"), ("newcomer", "i2")}]
    assert cli("evaluate", tmp_path / "run").exit_code == 0 and cli("report", tmp_path / "run").exit_code == 0
