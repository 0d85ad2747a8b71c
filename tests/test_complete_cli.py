"""`vaekit impute` and `vaekit inpaint`: observed values survive bit for bit, completions beat simple fills,
and each bad input ends in one line and exit code 2 with nothing written."""

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit import api
from vaekit.data.masks import observed_mask

from cli_helpers import assert_usage_error, run


def table(n, seed):
    w = np.random.default_rng(0).normal(size=(2, 5))
    z = np.random.default_rng(seed).normal(size=(n, 2))
    return z @ w * [1, 2, 5, 10, 100] + [0, 1, 2, 3, 1000]


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tab")
    x = table(400, 1)
    rng = np.random.default_rng(2)
    lines = ["a,b,c,d,e"]
    for row in x:
        hide = rng.random(5) < 0.25
        hide[rng.integers(5)] = False
        lines.append(",".join("" if h else repr(float(v)) for v, h in zip(row, hide)))
    (tmp / "train.csv").write_text("\n".join(lines) + "\n")
    r = run("train", "--data", tmp / "train.csv", "--missing", "mask", "--latent-dim", "2", "--hidden", "32",
            "--epochs", "40", "--no-early-stopping", "--lr", "3e-3", "--batch-size", "64", "--report-iwae-k", "0",
            "--out", tmp / "run", "-q")
    assert r.exit_code == 0, r.output
    return tmp


def test_impute_keeps_observed_text_and_fills_the_rest(table_run):
    tmp = table_run
    # observed cells in assorted spellings; missing ones empty, NA, NaN, quoted empty
    text = ('a,b,c,d,e\n'
            '0.10,1,"2.5",1e1,1000.000\n'
            ',NA,3.25,NaN,1001\n'
            '-0.3000,2.0,"",13.,999.5\n'
            '0.2,,4,,\n')
    (tmp / "holes.csv").write_text(text)
    r = run("impute", tmp / "run", "--data", tmp / "holes.csv", "--out", tmp / "done.csv")
    assert r.exit_code == 0, r.output
    assert "filled 7 missing cells in 3 of 4 rows" in r.stdout
    import csv

    src = list(csv.reader(text.splitlines()))
    out = list(csv.reader((tmp / "done.csv").read_text().splitlines()))
    assert out[0] == src[0] and len(out) == len(src)
    missing = {"", "NA", "NaN"}
    for s_row, o_row in zip(src[1:], out[1:]):
        for s, o in zip(s_row, o_row):
            if s in missing:
                assert np.isfinite(float(o))
            else:
                assert o == s  # the very text of every observed cell
    # the same with every method, observed values as floats equal to the input's
    for method in ("gibbs", "mwg"):
        r = run("impute", tmp / "run", "--data", tmp / "holes.csv", "--out", tmp / f"{method}.csv",
                "--method", method, "--steps", "20")
        assert r.exit_code == 0, r.output


def test_impute_beats_the_column_mean(table_run):
    tmp = table_run
    trained = api.load(tmp / "run")
    full = table(200, 9)
    x = full.copy()
    hidden = np.random.default_rng(3).random(x.shape) < 0.2
    hidden[hidden.all(1), 0] = False
    x[hidden] = np.nan
    filled = trained.impute(x, k=300).numpy()
    sd = full.std(0)
    rmse = np.sqrt((((filled - full) / sd)[hidden] ** 2).mean())
    mean = np.sqrt((((np.nanmean(x, 0) - full) / sd)[hidden] ** 2).mean())
    assert rmse < 0.6 * mean, (rmse, mean)


def test_impute_bad_inputs_end_in_one_line(table_run):
    tmp = table_run
    (tmp / "cols.csv").write_text("a,b,c,x\n1,2,,4\n")
    assert_usage_error(run("impute", tmp / "run", "--data", tmp / "cols.csv", "--out", tmp / "o.csv"),
                       "missing: d, e", "unexpected: x")
    (tmp / "empty_row.csv").write_text("a,b,c,d,e\n1,2,3,4,5\n,,,,\n")
    assert_usage_error(run("impute", tmp / "run", "--data", tmp / "empty_row.csv", "--out", tmp / "o.csv"),
                       "every feature missing")
    assert_usage_error(run("impute", tmp / "run", "--data", "digits", "--out", tmp / "o.csv"), ".csv or .parquet")
    (tmp / "o.csv").write_text("keep me")
    assert_usage_error(run("impute", tmp / "run", "--data", tmp / "cols.csv", "--out", tmp / "o.csv"),
                       "already exists")
    assert (tmp / "o.csv").read_text() == "keep me"
    assert not (tmp / "o2.csv").exists()
    # same columns in another order are lined up by name
    (tmp / "order.csv").write_text("e,d,c,b,a\n1000,3,,1,0\n")
    r = run("impute", tmp / "run", "--data", tmp / "order.csv", "--out", tmp / "o2.csv")
    assert r.exit_code == 0, r.output
    assert (tmp / "o2.csv").read_text().splitlines()[1].startswith("1000,3,")


def test_training_refuses_missing_values_without_the_flag(table_run, tmp_path):
    assert_usage_error(run("train", "--data", table_run / "train.csv", "--out", tmp_path / "r", "-q"),
                       "--missing mask")
    assert_usage_error(run("train", "--data", "digits", "--missing", "mask", "--out", tmp_path / "r", "-q"),
                       "tables")
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("img") / "digits"
    r = run("train", "--data", "digits", "--latent-dim", "8", "--hidden", "128", "--epochs", "40",
            "--no-early-stopping", "--batch-size", "64", "--lr", "3e-3", "--report-iwae-k", "0", "--out", out, "-q")
    assert r.exit_code == 0, r.output
    return out


def test_masks():
    m = observed_mask("center", 2, (1, 8, 8))
    assert m.shape == (2, 1, 8, 8) and int((~m[0]).sum()) == 16 and not bool(m[0, 0, 2:6, 2:6].any())
    assert not bool(observed_mask("left", 1, (3, 4, 6))[0, :, :, :3].any())
    assert bool(observed_mask("left", 1, (3, 4, 6))[0, :, :, 3:].all())
    assert not bool(observed_mask("bottom", 1, (1, 4, 4))[0, 0, 2:].any())
    r = observed_mask("random:0.5", 50, (1, 8, 8), seed=1)
    assert 0.45 < float((~r).float().mean()) < 0.55
    assert torch.equal(r, observed_mask("random:0.5", 50, (1, 8, 8), seed=1))


def test_inpainting_beats_mean_fill_on_digits(digits_run):
    trained = api.load(digits_run)
    x = trained.load_data("digits").x[-64:]
    observed = observed_mask("center", len(x), tuple(x.shape[1:]))
    hidden = ~observed
    mwg = trained.impute(x, mask=observed, method="mwg", steps=300, seed=0)
    assert torch.equal(mwg[observed], x[observed])
    mean_img = trained.load_data("digits").x[:-64].mean(0, keepdim=True).expand_as(x)
    err = float(((mwg - x)[hidden] ** 2).mean())
    base = float(((mean_img - x)[hidden] ** 2).mean())
    assert err < 0.8 * base, (err, base)
    assert 0 < trained.last_acceptance < 1


def test_inpaint_cli_figure_and_errors(digits_run, tmp_path):
    r = run("inpaint", digits_run, "--data", "digits", "--mask", "right", "-n", "4", "--steps", "50",
            "--out", tmp_path / "f.png")
    assert r.exit_code == 0, r.output
    assert "MSE on the hidden pixels" in r.stdout
    with Image.open(tmp_path / "f.png") as img:  # 4 rows × 3 tiles of 8×8 digits enlarged to 32 px, 2 px gaps
        assert img.size == (3 * 34 + 2, 4 * 34 + 2)
    Image.fromarray(np.full((10, 8), 255, np.uint8)).save(tmp_path / "m.png")
    assert_usage_error(run("inpaint", digits_run, "--data", "digits", "--mask", tmp_path / "m.png",
                           "--out", tmp_path / "g.png"), "8×10 pixels but the images are 8×8")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "black.png")
    assert_usage_error(run("inpaint", digits_run, "--data", "digits", "--mask", tmp_path / "black.png",
                           "--out", tmp_path / "g.png"), "hides no pixel")
    mask = np.zeros((8, 8), np.uint8)
    mask[:, :4] = 255
    Image.fromarray(mask).save(tmp_path / "left.png")
    r = run("inpaint", digits_run, "--data", "digits", "--mask", tmp_path / "left.png", "--steps", "20",
            "--out", tmp_path / "g.png")
    assert r.exit_code == 0, r.output
    assert_usage_error(run("inpaint", digits_run, "--data", "digits", "--mask", "middle", "--out", tmp_path / "h.png"),
                       "unknown mask")
    assert_usage_error(run("inpaint", digits_run, "--data", "digits", "--mask", "random:1.5",
                           "--out", tmp_path / "h.png"), "between 0 and 1")
    assert_usage_error(run("inpaint", digits_run, "--data", "digits", "--mask", "center", "--method", "magic",
                           "--out", tmp_path / "h.png"), "--method must be one of")
    assert not (tmp_path / "h.png").exists()
