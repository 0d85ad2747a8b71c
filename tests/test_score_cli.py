"""`vaekit score`: anomaly scores of images and tables under a trained run, AUROC/AP with labels, and
every bad input ending in one line and exit code 2."""

import numpy as np
import pytest

from cli_helpers import assert_usage_error, run


def write_table(path, x, labels=None, names=None):
    names = names or [f"f{i}" for i in range(x.shape[1])]
    head = names + (["kind"] if labels is not None else [])
    rows = [",".join(head)]
    for i, r in enumerate(x):
        rows.append(",".join(f"{v:.5f}" for v in r) + (f",{labels[i]}" if labels is not None else ""))
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """A training table of inliers on a 2-D plane in 6-D, and a labelled test table with planted outliers."""
    d = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(0)
    w = rng.normal(size=(2, 6)) * 3
    inl = rng.normal(size=(700, 2)) @ w + 10 + 0.1 * rng.normal(size=(700, 6))
    out = rng.uniform(-5, 25, size=(20, 6))
    write_table(d / "train.csv", inl[:600])
    test = np.concatenate([inl[600:], out])
    write_table(d / "test.csv", test, labels=[0] * 100 + [1] * 20)
    write_table(d / "other.csv", test[:, :5], names=["f0", "f1", "f2", "f3", "g9"])
    r = run("train", "--data", d / "train.csv", "--out", d / "run", "--latent-dim", "2", "--hidden", "32",
            "--epochs", "60", "--batch-size", "64", "--no-early-stopping", "--report-iwae-k", "0", "-q")
    assert r.exit_code == 0, r.output
    return d


def test_score_a_table_ranks_planted_outliers_first(tables, tmp_path):
    out = tmp_path / "scores.csv"
    r = run("score", tables / "run", "--data", tables / "test.csv", "--label-column", "kind", "--out", out,
            "--iwae-k", "32")
    assert r.exit_code == 0, r.output
    auroc = float(r.output.split("AUROC ")[1].split(",")[0])
    assert auroc > 0.97
    assert "anomalies: label 1/True, 20 of 120" in r.output
    lines = out.read_text().splitlines()
    assert lines[0] == "index,score,is_anomaly,label" and len(lines) == 121
    rows = [ln.split(",") for ln in lines[1:]]
    flagged = np.array([int(r[2]) for r in rows])
    assert flagged[100:].mean() >= 0.9 and flagged[:100].mean() <= 0.1
    # the threshold flags about 1% of the run's own validation split: a few percent of the test inliers at most
    r2 = run("score", tables / "run", "--data", tables / "test.csv", "--label-column", "kind", "--out",
             tmp_path / "c.csv", "--score", "recon", "--contamination", "0.2")
    assert r2.exit_code == 0, r2.output
    flagged2 = np.array([int(ln.split(",")[2]) for ln in (tmp_path / "c.csv").read_text().splitlines()[1:]])
    assert flagged2.sum() == 24  # exactly the contamination fraction of the scored rows


def test_score_images_with_a_normal_label(tmp_path):
    runp = tmp_path / "digits"
    r = run("train", "--data", "digits", "--out", runp, "--latent-dim", "4", "--hidden", "32", "--epochs", "3",
            "--report-iwae-k", "0", "-q")
    assert r.exit_code == 0, r.output
    r = run("score", runp, "--data", "digits", "--out", tmp_path / "s.csv", "--normal-label", "3",
            "--threshold-quantile", "0.05", "--iwae-k", "8")
    assert r.exit_code == 0, r.output
    assert "0.05-quantile" in r.output and "labels other than '3'" in r.output
    r = run("score", runp, "--data", "digits", "--out", tmp_path / "t.csv", "--iwae-k", "8", "--split", "test")
    assert r.exit_code == 0 and "pass --normal-label" in r.output  # ten classes: which one is normal?
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 1 + 180  # digits' test split: 10% of 1797
    assert "the test split of digits" in r.output
    assert_usage_error(run("score", runp, "--data", "digits", "--out", tmp_path / "u.csv", "--normal-label", "cat"),
                       "--normal-label 'cat'")


def test_score_bad_inputs(tables, tmp_path):
    runp, test = tables / "run", tables / "test.csv"
    assert_usage_error(run("score", runp, "--data", tables / "other.csv", "--out", tmp_path / "a.csv"),
                       "different columns", "missing f4", "unexpected g9")
    for flags, needle in [(["--threshold-quantile", "1.5"], "threshold_quantile"),
                          (["--contamination", "0.9"], "contamination"),
                          (["--contamination", "0.1", "--threshold-quantile", "0.1"], "not both"),
                          (["--score", "mahalanobis"], "iwae, elbo, recon"),
                          (["--iwae-k", "0"], "iwae_k")]:
        assert_usage_error(run("score", runp, "--data", test, "--label-column", "kind", "--out",
                               tmp_path / "b.csv", *flags), needle)
    assert_usage_error(run("score", runp, "--data", test, "--out", tmp_path / "b.txt"), "suffix")
    assert_usage_error(run("score", runp, "--data", test, "--out", tmp_path / "b.csv", "--split", "dev"), "--split")
    assert_usage_error(run("score", tmp_path / "nope", "--data", test, "--out", tmp_path / "b.csv"), "not found")
    assert_usage_error(run("score", runp, "--data", test, "--out", tmp_path / "b.csv"),  # forgot --label-column
                       "different columns", "unexpected kind")
    assert_usage_error(run("score", runp, "--data", tables / "train.csv", "--out", tmp_path / "b.csv",
                           "--normal-label", "0"), "no labels")
    (tmp_path / "keep.csv").write_text("precious\n")
    assert_usage_error(run("score", runp, "--data", test, "--out", tmp_path / "keep.csv"), "--overwrite")
    assert (tmp_path / "keep.csv").read_text() == "precious\n"
    assert not (tmp_path / "b.csv").exists()


def test_score_rows_with_missing_cells_of_a_masked_run(tables, tmp_path):
    """A --missing mask run scores incomplete rows by log p(x_obs); planted outliers still rank first."""
    def holes(src, dst):
        lines = src.read_text().splitlines()
        out = [lines[0]]
        for i, row in enumerate(lines[1:]):
            cells = row.split(",")
            out.append(",".join("" if j < 6 and (i + j) % 7 == 0 else v for j, v in enumerate(cells)))
        dst.write_text("\n".join(out) + "\n")

    holes(tables / "train.csv", tmp_path / "train.csv")
    holes(tables / "test.csv", tmp_path / "test.csv")
    r = run("train", "--data", tmp_path / "train.csv", "--missing", "mask", "--out", tmp_path / "m", "--epochs", "60",
            "--latent-dim", "2", "--hidden", "32", "--batch-size", "64", "--no-early-stopping",
            "--report-iwae-k", "0", "-q")
    assert r.exit_code == 0, r.output
    r = run("score", tmp_path / "m", "--data", tmp_path / "test.csv", "--label-column", "kind",
            "--out", tmp_path / "s.csv", "--iwae-k", "20")
    assert r.exit_code == 0, r.output
    auroc = float(r.stdout.split("AUROC ")[1].split(",")[0])
    assert auroc > 0.95
    rows = [line.split(",") for line in (tmp_path / "s.csv").read_text().splitlines()[1:]]
    assert len(rows) == 120 and all(np.isfinite(float(r[1])) for r in rows)
    assert_usage_error(run("score", tmp_path / "m", "--data", tmp_path / "test.csv", "--label-column", "kind",
                           "--score", "recon", "--out", tmp_path / "r.csv"), "missing cells", "--score iwae")
    assert not (tmp_path / "r.csv").exists()
