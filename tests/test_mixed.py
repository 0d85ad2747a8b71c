"""Mixed-type tables: text columns become one-hot blocks with a categorical likelihood beside Gaussian numeric
columns, in one model. Checked: the loader's schema and errors, the likelihood against torch.distributions
(closed form, with a mask), training that learns, imputation of hidden categories (better than the most
frequent category), category names in CSV outputs, and one-line errors for categories unseen in training."""

import csv
import io
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch.distributions import Categorical, Normal

from vaekit import api
from vaekit.data import Standardizer, load_source
from vaekit.data.tables import categorical_features, table_cells
from vaekit.errors import DataError
from vaekit.likelihoods import MixedLikelihood

from cli_helpers import assert_usage_error, run

COLORS = ("red", "green", "blue")


def mixed_table(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(numeric [n, 2], color [n], size [n]): one latent z drives a, b and the color; size is a coin flip."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    num = np.stack([3 * z + 10 + 0.3 * rng.normal(size=n), -50 * z + 0.3 * rng.normal(size=n)], 1)
    color = np.where(z < -0.5, "red", np.where(z < 0.5, "green", "blue"))
    size = np.where(rng.random(n) < 0.5, "S", "L")
    return num, color, size


def write_mixed(path, num, color, size, hidden=None) -> None:
    """CSV a,b,color,size; ``hidden`` [n, 4] bool empties those cells."""
    lines = ["a,b,color,size"]
    for i in range(len(num)):
        cells = [repr(float(num[i, 0])), repr(float(num[i, 1])), str(color[i]), str(size[i])]
        if hidden is not None:
            cells = ["" if h else c for c, h in zip(cells, hidden[i])]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")


# -- data layer ----------------------------------------------------------------------------------
def test_loader_builds_one_hot_blocks_and_a_schema(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("n,color,code,flag\n1.5,red,0,true\n2.5,blue,2,false\n-1,red,1,true\n")
    ds = load_source(str(p))
    # text → categorical (sorted categories); an integer code column stays numeric, bool stays numeric
    assert [(c["name"], c["kind"], c["categories"], c["start"], c["stop"]) for c in ds.schema] == [
        ("n", "numeric", None, 0, 1), ("color", "categorical", ["blue", "red"], 1, 3),
        ("code", "numeric", None, 3, 4), ("flag", "numeric", None, 4, 5)]
    assert ds.columns == ["n", "color=blue", "color=red", "code", "flag"]
    assert ds.x.tolist() == [[1.5, 0, 1, 0, 1], [2.5, 1, 0, 2, 0], [-1, 0, 1, 1, 1]]
    # the standardizer leaves one-hot blocks as 0/1
    sc = Standardizer.fit(ds.x, ds.columns, categorical_features(ds.schema, 5))
    xs = sc.transform(ds.x)
    assert torch.equal(xs[:, 1:3], ds.x[:, 1:3])
    assert abs(float(xs[:, 0].mean())) < 1e-6 and abs(float(xs[:, 3].std(unbiased=False)) - 1) < 1e-5


def test_loader_missing_categories_and_errors(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("n,color\n1,red\n2,\n3,blue\n")
    with pytest.raises(DataError, match=r"'color'.*--missing mask"):
        load_source(str(p))
    ds = load_source(str(p), allow_missing=True)
    assert torch.isnan(ds.x[1, 1:]).all() and not torch.isnan(ds.x[[0, 2]]).any()
    # a trained run's categories: fixed order and width, unseen values named
    ds = load_source(str(p), allow_missing=True, categories={"color": ["red", "green", "blue"]})
    assert ds.x[0].tolist() == [1, 1, 0, 0] and ds.x[2].tolist() == [3, 0, 0, 1]
    with pytest.raises(DataError, match=r"column 'color' has the value 'blue'.*unseen in training"):
        load_source(str(p), allow_missing=True, categories={"color": ["red"]})
    ids = tmp_path / "ids.csv"
    ids.write_text("n,id\n" + "\n".join(f"{i},u{i}" for i in range(150)) + "\n")
    with pytest.raises(DataError, match=r"'id' has 150 distinct values.*ID.*drop it"):
        load_source(str(ids))
    # Parquet dictionary (pandas category) columns are categorical too
    pq.write_table(pa.table({"n": [1.0, 2.0], "c": pa.array(["x", "y"]).dictionary_encode()}), tmp_path / "t.parquet")
    ds = load_source(str(tmp_path / "t.parquet"))
    assert ds.schema[1]["categories"] == ["x", "y"] and ds.x.tolist() == [[1, 1, 0], [2, 0, 1]]


def test_table_cells_formats_numbers_and_category_names():
    schema = [{"name": "n", "kind": "numeric", "categories": None, "start": 0, "stop": 1},
              {"name": "c", "kind": "categorical", "categories": ["x", "y", "z"], "start": 1, "stop": 4}]
    cells = table_cells(schema, np.array([[1.5, 0.2, 0.7, 0.1], [np.nan, np.nan, np.nan, np.nan]]))
    assert cells.tolist() == [["1.5", "y"], ["", ""]]


# -- likelihood ----------------------------------------------------------------------------------
SCHEMA = [{"name": "a", "kind": "numeric", "categories": None, "start": 0, "stop": 1},
          {"name": "c", "kind": "categorical", "categories": ["p", "q", "r"], "start": 1, "stop": 4},
          {"name": "b", "kind": "numeric", "categories": None, "start": 4, "stop": 5},
          {"name": "d", "kind": "categorical", "categories": ["u", "v"], "start": 5, "stop": 7}]


def closed_form_log_prob(params, x, log_scale, cell_mask):
    """Σ over observed cells of log N(a), log Cat(c), log N(b), log Cat(d), each with torch.distributions."""
    sd = log_scale.exp()
    parts = [Normal(params[:, 0], sd[0]).log_prob(x[:, 0]),
             Categorical(logits=params[:, 1:4]).log_prob(x[:, 1:4].argmax(1)),
             Normal(params[:, 4], sd[1]).log_prob(x[:, 4]),
             Categorical(logits=params[:, 5:7]).log_prob(x[:, 5:7].argmax(1))]
    return sum(p * cell_mask[:, j] for j, p in enumerate(parts))


def test_mixed_likelihood_matches_normal_and_categorical_closed_form():
    torch.manual_seed(0)
    lik = MixedLikelihood((7,), SCHEMA)
    with torch.no_grad():
        lik.log_scale.copy_(torch.tensor([0.3, -0.5]))
    n = 6
    params = torch.randn(n, 7) * 2
    x = torch.zeros(n, 7)
    x[:, 0], x[:, 4] = torch.randn(n), torch.randn(n)
    x[torch.arange(n), 1 + torch.randint(3, (n,))] = 1
    x[torch.arange(n), 5 + torch.randint(2, (n,))] = 1
    full = torch.ones(n, 4)
    expect = closed_form_log_prob(params, x, lik.log_scale.detach(), full)
    assert torch.allclose(-lik.nll(params, x), expect, atol=1e-5)
    assert torch.allclose(lik(params).log_prob(x), expect, atol=1e-5)
    # a mask per original cell: a missing categorical cell masks its whole block
    cell_mask = (torch.rand(n, 4) > 0.4).float()
    widths = torch.tensor([1, 3, 1, 2])
    feat_mask = cell_mask.repeat_interleave(widths, dim=1)
    expect_m = closed_form_log_prob(params, x, lik.log_scale.detach(), cell_mask)
    assert torch.allclose(-lik.nll(params, x, feat_mask), expect_m, atol=1e-5)
    # nll_samples broadcasts x over s decoder outputs and agrees with nll row by row
    ps = torch.randn(4, n, 7)
    got = lik.nll_samples(ps, x, feat_mask)
    assert torch.allclose(got, torch.stack([lik.nll(p, x, feat_mask) for p in ps]), atol=1e-5)
    # mean: numeric = params, blocks = probabilities; samples: one-hot blocks
    m = lik.mean(params)
    assert torch.equal(m[:, [0, 4]], params[:, [0, 4]])
    assert torch.allclose(m[:, 1:4], torch.softmax(params[:, 1:4], 1))
    s = lik.sample(params.repeat(2000, 1), torch.Generator().manual_seed(0))
    assert torch.equal(s[:, 1:4].sum(1), torch.ones(len(s))) and set(s[:, 5:7].unique().tolist()) == {0.0, 1.0}
    freq = s[:, 1:4].view(2000, n, 3).mean(0)
    assert torch.allclose(freq, torch.softmax(params[:, 1:4], 1), atol=0.05)  # draws follow the softmax


# -- end to end ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mixed")
    num, color, size = mixed_table(500, 0)
    rng = np.random.default_rng(1)
    hidden = rng.random((500, 4)) < 0.2
    hidden[hidden.all(1), 0] = False
    write_mixed(tmp / "train.csv", num, color, size, hidden)
    r = run("train", "--data", tmp / "train.csv", "--missing", "mask", "--latent-dim", "2", "--hidden", "32",
            "--epochs", "100", "--no-early-stopping", "--lr", "3e-3", "--batch-size", "64", "--report-iwae-k", "0",
            "--out", tmp / "run", "-q")
    assert r.exit_code == 0, r.output
    return tmp


def test_mixed_table_trains_with_the_mixed_likelihood(mixed_run):
    import json

    trained = api.load(mixed_run / "run")
    assert trained.config.likelihood == "mixed" and trained.model.likelihood.name == "mixed"
    assert [c["name"] for c in trained.schema] == ["a", "b", "color", "size"]
    metrics = [json.loads(s) for s in (mixed_run / "run" / "metrics.jsonl").read_text().splitlines()]
    first, last = metrics[0]["val_loss"], metrics[-1]["val_loss"]
    # columns modelled independently (standardized Gaussians, marginal category frequencies) cost about
    # 0.8 × (2 × 1.42 + ln 3 + ln 2) = 3.7 nats per row at 80% observed; the latent z explains a, b and color
    assert last < first - 1.0 and last < 2.5, (first, last)  # nats per example


def test_impute_fills_categories_and_keeps_observed_cells(mixed_run, tmp_path):
    num, color, size = mixed_table(300, 5)
    rng = np.random.default_rng(6)
    hidden = np.zeros((300, 4), bool)
    hidden[:, 2] = rng.random(300) < 0.5  # hide half of the colors; a, b observed (they predict the color)
    hidden[:, 1] = rng.random(300) < 0.2
    write_mixed(tmp_path / "in.csv", num, color, size, hidden)
    r = run("impute", mixed_run / "run", "--data", tmp_path / "in.csv", "--out", tmp_path / "out.csv", "--k", "200")
    assert r.exit_code == 0, r.output
    src = list(csv.reader(io.StringIO((tmp_path / "in.csv").read_text())))
    out = list(csv.reader(io.StringIO((tmp_path / "out.csv").read_text())))
    assert out[0] == src[0] and len(out) == len(src)
    for s_row, o_row, h in zip(src[1:], out[1:], hidden):
        assert all(o == s for o, s, hh in zip(o_row, s_row, h) if not hh)  # observed text, bit for bit
        assert all(o != "" for o in o_row)
    got = np.array([row[2] for row in out[1:]])
    assert set(got[hidden[:, 2]]) <= set(COLORS)
    acc = float((got[hidden[:, 2]] == color[hidden[:, 2]]).mean())
    values, counts = np.unique(color[~hidden[:, 2]], return_counts=True)
    most_frequent = float((color[hidden[:, 2]] == values[counts.argmax()]).mean())
    assert acc > most_frequent + 0.2 and acc > 0.7, (acc, most_frequent)
    filled_b = np.array([float(row[1]) for row in out[1:]])[hidden[:, 1]]
    rmse = math.sqrt(float(((filled_b - num[hidden[:, 1], 1]) ** 2).mean()))
    assert rmse < 0.5 * num[:, 1].std(), rmse  # b is predicted from a, far better than its mean


def test_sample_and_reconstruct_csv_have_category_names(mixed_run, tmp_path):
    r = run("sample", mixed_run / "run", "-n", "200", "--seed", "0", "--out", tmp_path / "s.csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO((tmp_path / "s.csv").read_text())))
    assert rows[0] == ["a", "b", "color", "size"] and len(rows) == 201
    assert {r[2] for r in rows[1:]} <= set(COLORS) and {r[3] for r in rows[1:]} == {"S", "L"}  # drawn, both show
    float(rows[1][0]), float(rows[1][1])
    num, color, size = mixed_table(50, 9)
    write_mixed(tmp_path / "c.csv", num, color, size)
    r = run("reconstruct", mixed_run / "run", "--data", tmp_path / "c.csv", "--out", tmp_path / "r.csv")
    assert r.exit_code == 0, r.output
    rec = list(csv.reader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert rec[0] == ["a", "b", "color", "size"]
    assert np.mean([row[2] == c for row, c in zip(rec[1:], color)]) > 0.7  # reconstructed color mostly right


def test_unseen_category_is_one_line_exit_2(mixed_run, tmp_path):
    num, color, size = mixed_table(10, 3)
    color = color.astype(object)
    color[4] = "purple"
    write_mixed(tmp_path / "bad.csv", num, color, size)
    out = tmp_path / "o.csv"
    assert_usage_error(run("impute", mixed_run / "run", "--data", tmp_path / "bad.csv", "--out", out),
                       "'color'", "'purple'", "unseen in training")
    assert not out.exists()
    assert_usage_error(run("reconstruct", mixed_run / "run", "--data", tmp_path / "bad.csv", "--out", out),
                       "'purple'")
    # a likelihood that cannot model text columns is refused in one line too
    assert_usage_error(run("train", "--data", mixed_run / "train.csv", "--missing", "mask", "--likelihood",
                           "gaussian", "--epochs", "1", "--out", tmp_path / "g", "-q"), "--likelihood auto")
