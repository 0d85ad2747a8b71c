"""Time series: the series data kind (chronological periods, no leakage into training windows or the scaler),
the forecast-cvae and series-vae families through the CLI (forecast, score, impute) and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaekit.config import make_config
from vaekit.data import load_source
from vaekit.errors import DataError
from vaekit.preparation import prepare

PERIOD = 24  # steps per day (hourly)


def write_series(path, n=24 * 30, anomaly_at=None, gap=None, label=False, future=0, seed=0):
    """A daily sine + noise at hourly steps with a temperature covariate; an anomaly (spike) and a gap
    (missing timestamps) can be planted; ``future`` rows at the end carry covariates only."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + future)
    times = np.datetime64("2024-01-01T00:00") + t.astype("timedelta64[h]")
    temp = 10 + 5 * np.cos(2 * np.pi * t / PERIOD) + rng.normal(0, 0.3, len(t))
    y = 2 + np.sin(2 * np.pi * t / PERIOD) + 0.05 * temp + rng.normal(0, 0.1, len(t))
    lab = np.zeros(len(t), int)
    if anomaly_at is not None:
        for a in np.atleast_1d(anomaly_at):
            y[a:a + 3] += 4.0
            lab[a:a + 3] = 1
    rows = ["time,load,temp" + (",label" if label else "")]
    for i in range(len(t)):
        if gap is not None and gap[0] <= i < gap[1]:
            continue
        val = "" if i >= n else f"{y[i]:.6f}"
        ts = str(times[i]).replace("T", " ")
        rows.append(f"{ts},{val},{temp[i]:.4f}" + (f",{lab[i]}" if label else ""))
    path.write_text("\n".join(rows) + "\n")
    return y[:n], temp


def series_cfg(path, **kw):
    base = dict(data=str(path), context=24, covariate_columns=["temp"])
    return make_config(None, **{**base, **kw})


def load(cfg):
    return load_source(cfg.data, kind="series", time_column=cfg.time_column, target_columns=cfg.target_columns,
                       covariate_columns=cfg.covariate_columns, frequency=cfg.frequency,
                       calendar=cfg.calendar_features)


def test_series_loads_with_calendar_features_and_gaps_as_missing(tmp_path):
    p = tmp_path / "s.csv"
    write_series(p, n=24 * 10, gap=(30, 35))
    ds = load(series_cfg(p))
    sd = ds.series
    assert sd.targets == ["load"] and sd.covariates == ["temp"]
    assert sd.calendar_names == ["hour_sin", "hour_cos", "week_sin", "week_cos"]
    assert len(sd.times) == 240 and np.isnan(sd.values[30:35]).all() and not np.isnan(sd.values[:30]).any()
    assert not np.isnan(sd.known).any()  # covariates of the missing steps: carried forward
    assert sd.step == 3600 * 10**9
    np.testing.assert_allclose(sd.calendar[6, :2], [1.0, 0.0], atol=1e-12)  # 06:00 = a quarter day
    assert sd.time_text()[:2] == ["2024-01-01 00:00:00", "2024-01-01 01:00:00"]


def test_no_validation_or_test_step_reaches_training_windows_or_the_scaler(tmp_path):
    p = tmp_path / "s.csv"
    write_series(p, n=24 * 20)
    cfg = series_cfg(p, val_fraction=0.2, test_fraction=0.2)
    prep = prepare(cfg, load(cfg))
    train, val, test = prep.splits
    (a0, a1), (b0, b1), (c0, c1) = prep.series_info["periods"]
    assert (a0, a1, b1, c1) == (0, 288, 384, 480) and b0 == a1 and c0 == b1
    L = 24
    assert int(train.starts.max()) + L <= a1 and int(val.starts.min()) >= b0 and int(val.starts.max()) + L <= b1
    assert int(test.starts.min()) >= c0
    # change every validation/test value wildly: the training windows and the scaler stay the same
    text = p.read_text().splitlines()
    for i in range(1 + a1, len(text)):
        ts, v, temp = text[i].split(",")
        text[i] = f"{ts},{float(v) * 100 + 50},{float(temp) * 10}"
    q = tmp_path / "changed.csv"
    q.write_text("\n".join(text) + "\n")
    prep2 = prepare(series_cfg(q, val_fraction=0.2, test_fraction=0.2), load(series_cfg(q)))
    torch.testing.assert_close(prep2.splits[0].x, train.x, rtol=0, atol=0)
    torch.testing.assert_close(prep2.splits[0].c, train.c, rtol=0, atol=0)
    assert prep2.scaler.to_dict() == prep.scaler.to_dict()
    assert prep2.series_info["covariate_scaler"] == prep.series_info["covariate_scaler"]
    assert not torch.equal(prep2.splits[1].x, val.x)  # (the change did reach validation)
    # the scaler is the training period's own mean and std
    raw = np.array([float(r.split(",")[1]) for r in text[1:1 + a1]])
    assert abs(prep.scaler.mean.item() - raw.mean()) < 1e-5 and abs(prep.scaler.std.item() - raw.std()) < 1e-5


def test_gap_steps_are_masked_in_the_windows(tmp_path):
    p = tmp_path / "s.csv"
    write_series(p, n=24 * 10, gap=(30, 35))
    cfg = series_cfg(p)
    train = prepare(cfg, load(cfg)).splits[0]
    w = 20  # window starting at step 20 holds steps 20..43
    assert int(train.starts[w]) == 20
    assert train.mask[w, 10:15].sum() == 0 and train.mask[w, :10].all() and train.x[w, 10:15].abs().sum() == 0


def test_npy_series_without_a_clock(tmp_path):
    p = tmp_path / "s.npy"
    np.save(p, np.sin(np.arange(300) / 5.0))
    ds = load_source(str(p), kind="series")
    assert ds.series.values.shape == (300, 1) and ds.series.calendar.shape == (300, 0) and not ds.series.clock
    ds = load_source(str(p), kind="series", frequency="30min")
    assert ds.series.calendar.shape == (300, 4) and ds.series.step == 1800 * 10**9


@pytest.mark.parametrize("edit, message", [
    (lambda r: r[:3] + ["yesterday,1.0,2.0"] + r[4:], "row 3 holds 'yesterday', which is not a time"),
    (lambda r: r[:3] + [r[4], r[3]] + r[5:], "is not sorted"),
    (lambda r: r[:4] + [r[3]] + r[4:], "repeats 2024-01-01T02:00:00"),
    (lambda r: r[:3] + [r[3].replace("02:00", "02:10")] + r[4:], "is irregular"),
])
def test_bad_time_columns_are_one_line_errors(tmp_path, edit, message):
    p = tmp_path / "s.csv"
    write_series(p, n=100)
    p.write_text("\n".join(edit(p.read_text().splitlines())) + "\n")
    with pytest.raises(DataError, match=message):
        load(series_cfg(p))


def test_a_series_too_short_for_its_windows(tmp_path):
    p = tmp_path / "s.csv"
    write_series(p, n=100)
    cfg = series_cfg(p, context=48)
    with pytest.raises(DataError, match="validation period has 10 steps, shorter than one window of 48"):
        prepare(cfg, load(cfg))


# -- forecast-cvae ---------------------------------------------------------------------------------------
TINY = ["--hidden", "8", "--latent-dim", "2", "--batch-size", "32", "--seed", "0"]


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory):
    from cli_helpers import run

    d = tmp_path_factory.mktemp("forecast")
    write_series(d / "s.csv", n=24 * 20, future=12)
    r = run("train", "--data", d / "s.csv", "--family", "forecast-cvae", "--context", "24", "--horizon", "12",
            "--covariate-columns", "temp", "--epochs", "2", "--out", d / "run", *TINY)
    assert r.exit_code == 0, r.output
    return d


def test_forecast_cvae_trains_and_reports_rolling_origin_metrics(forecast_run):
    import json

    res = json.loads((forecast_run / "run" / "results.json").read_text())
    f = res["test"]["forecast"]
    # test period = 48 steps (0.1 of 480): origins at 24 + 12k with the context and the future inside it
    assert f["origins"] == 2 and f["horizon"] == 12 and f["season"] == 24 and f["n"] == 24
    assert set(f) >= {"mae", "rmse", "mase", "crps", "coverage_80", "coverage_95"}
    assert all(0 < f[k] < 10 for k in ("mae", "rmse", "crps")) and 0 <= f["coverage_80"] <= f["coverage_95"] <= 1
    info = json.loads((forecast_run / "run" / "config.json").read_text())
    assert info["series"]["periods"] == [[0, 384], [384, 432], [432, 480]]
    assert info["series"]["covariates"] == ["temp"] and len(info["series"]["calendar"]) == 4


def test_forecast_cli_writes_quantiles_and_a_fan_chart(forecast_run):
    import csv

    from cli_helpers import assert_usage_error, run

    d = forecast_run
    r = run("forecast", d / "run", "--data", d / "s.csv", "--out", d / "f.csv", "--samples", "50")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(d / "f.csv")))
    assert len(rows) == 12 and rows[0]["time"] == "2024-01-21 00:00:00" and rows[-1]["step"] == "12"
    for row in rows:
        q = [float(row[f"load_q{x}"]) for x in ("0.025", "0.1", "0.5", "0.9", "0.975")]
        assert q == sorted(q) and float(row["load_median"]) == q[2]
    assert (d / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert_usage_error(run("forecast", d / "run", "--data", d / "s.csv", "--out", d / "g.csv", "--horizon", "24"),
                       "trained to forecast --horizon 12 steps, not 24")
    assert_usage_error(run("sample", d / "run", "--out", d / "x.npy"), "vaekit forecast")
    (d / "tiny.csv").write_text("\n".join((d / "s.csv").read_text().splitlines()[:11]) + "\n")
    assert_usage_error(run("forecast", d / "run", "--data", d / "tiny.csv", "--out", d / "t.csv"),
                       "has 10 observed steps, fewer than the run's --context of 24")
    # a future covariate missing: one line naming the rows to add
    lines = (d / "s.csv").read_text().splitlines()
    (d / "short.csv").write_text("\n".join(lines[:-6]) + "\n")
    assert_usage_error(run("forecast", d / "run", "--data", d / "short.csv", "--out", d / "h.csv"),
                       "needs the covariates temp for the 12 steps")


# -- series-vae: scores per timestamp, gap filling -----------------------------------------------------------
ANOMALIES = (400, 450)  # planted spikes of 3 steps each, in the test period (steps 432..480) and validation


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    from cli_helpers import run

    d = tmp_path_factory.mktemp("series")
    write_series(d / "a.csv", n=24 * 20, anomaly_at=list(ANOMALIES), label=True, gap=(200, 205))
    r = run("train", "--data", d / "a.csv", "--family", "series-vae", "--context", "24", "--covariate-columns", "temp",
            "--label-column", "label", "--epochs", "3", "--out", d / "run", *TINY)
    assert r.exit_code == 0, r.output
    return d


def test_scores_per_timestamp_peak_at_the_planted_anomalies(series_run):
    import csv

    from cli_helpers import run

    d = series_run
    r = run("score", d / "run", "--data", d / "a.csv", "--out", d / "scores.csv", "--iwae-k", "8")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(d / "scores.csv")))
    assert len(rows) == 480 and rows[0]["time"] == "2024-01-01 00:00:00"
    assert all(rows[i]["score"] == "" for i in range(200, 205))  # the gap: missing steps get no score
    scored = [(float(r["score"]), i) for i, r in enumerate(rows) if r["score"]]
    lowest = {i for _, i in sorted(scored)[:6]}
    planted = {a + j for a in ANOMALIES for j in range(3)}
    assert len(lowest & planted) >= 5, sorted(lowest)
    assert "point-wise AUROC" in r.output and "not point-adjusted" in r.output
    auroc = float(r.output.split("point-wise AUROC ")[1].split(",")[0])
    assert auroc > 0.95
    assert {i for i, r in enumerate(rows) if r["label"] == "1"} == planted


def test_training_writes_a_report_and_a_card_and_vaekit_report_rewrites_them(series_run, forecast_run):
    import json

    from cli_helpers import run

    from vaekit.evaluation.series_card import _num
    from vaekit.runs import CARD_MARK

    fr, sr = forecast_run / "run", series_run / "run"
    # training wrote both (report on by default): the card's data facts, the metrics of results.json
    card = (fr / "README.md").read_text()
    assert card.startswith(CARD_MARK) and "forecast-cvae" in card
    assert "2024-01-01 00:00:00 to 2024-01-20 23:00:00" in card and "| step | 1 hour(s) |" in card
    assert "train steps 0–383 from 2024-01-01 00:00:00 · validation steps 384–431" in card
    f = json.loads((fr / "results.json").read_text())["test"]["forecast"]
    row = next(line for line in card.splitlines() if line.startswith("| test period (`results.json`)"))
    assert row.split(" | ")[1:7] == [_num(f[k]) for k in ("mae", "rmse", "mase", "crps", "coverage_80", "coverage_95")]
    assert "**CRPS**" in card and "vaekit forecast run" in card
    page = (fr / "report.html").read_text()
    assert 'id="fig-curves"' in page and 'id="fig-fan"' in page and not (fr / "evaluation.json").exists()
    spage = (sr / "report.html").read_text()
    assert 'id="fig-reconstruction"' in spage and 'id="fig-scores"' in spage
    scard = (sr / "README.md").read_text()
    assert "| label column | `label` |" in scard and "vaekit score run" in scard and "−ELBO" in scard
    # vaekit report: evaluation.json (the test period again: results.json's numbers), the report and the card
    for d in (fr, sr):
        (d / "report.html").unlink()
        r = run("report", d)
        assert r.exit_code == 0, r.output
        assert (d / "report.html").is_file()
    ev = json.loads((fr / "evaluation.json").read_text())
    assert ev["mae"] == f["mae"] and ev["crps"] == f["crps"] and ev["split"] == "test"
    assert "(`evaluation.json`)" in (fr / "README.md").read_text()
    sev = json.loads((sr / "evaluation.json").read_text())
    assert abs(sev["elbo"] - json.loads((sr / "results.json").read_text())["test"]["elbo"]) < 1e-3


def test_tune_searches_a_forecast_cvae_by_its_validation_elbo(tmp_path):
    import json

    from vaekit.tuning import tune

    write_series(tmp_path / "s.csv", n=24 * 20)
    space = {"lr": {"kind": "log-float", "low": 1e-3, "high": 1e-2}, "hidden": [8], "latent_dim": 2, "epochs": 1}
    res = tune(str(tmp_path / "s.csv"), tmp_path / "tune", space=space, trials=2, sampler="random", seed=0, quiet=True,
               config={"family": "forecast-cvae", "context": 24, "horizon": 12, "covariate_columns": ["temp"],
                       "batch_size": 32})
    assert res.metric == "val_elbo" and res.finished == 2
    best = json.loads((res.best_run / "results.json").read_text())
    assert res.best_value == best["validation"]["elbo"] and "forecast" in best["test"]  # a whole series run
    assert (tmp_path / "tune" / "best_config.yaml").read_text().count("horizon: 12") == 1


def test_impute_fills_the_gap_and_keeps_observed_values(series_run):
    import csv

    from cli_helpers import run

    d = series_run
    r = run("impute", d / "run", "--data", d / "a.csv", "--out", d / "filled.csv", "--k", "20")
    assert r.exit_code == 0, r.output
    assert "filled 5 missing values at 5 of 480 steps" in r.output
    rows = list(csv.DictReader(open(d / "filled.csv")))
    src = {r["time"] + ":00": r for r in csv.DictReader(open(d / "a.csv"))}
    assert len(rows) == 480
    for r in rows:
        if r["time"] in src:
            assert float(r["load"]) == float(src[r["time"]]["load"])
        else:
            v = float(r["load"])  # a filled step: near the level of the series around it
            assert 0.0 < v < 4.5, r
    assert sum(r["time"] not in src for r in rows) == 5


def test_series_runs_and_commands_refuse_each_other(series_run, forecast_run):
    from cli_helpers import assert_usage_error, run

    assert_usage_error(run("forecast", series_run / "run", "--data", series_run / "a.csv", "--out",
                           series_run / "f.csv"), "is a series-vae run; this command needs a forecast-cvae run")
    assert_usage_error(run("score", forecast_run / "run", "--data", forecast_run / "s.csv", "--out",
                           forecast_run / "sc.csv"), "needs a series-vae run")
    assert_usage_error(run("sample", series_run / "run", "--out", series_run / "z.npy"), "vaekit score")
    assert_usage_error(run("tune", "--data", series_run / "a.csv", "--family", "series-vae", "--trials", "1", "--out",
                           series_run / "tune", "--metric", "val_iwae"), "watches the validation −ELBO per window")
    assert_usage_error(run("score", series_run / "run", "--data", series_run / "a.csv", "--out", series_run / "x.csv",
                           "--score", "recon"), "--score do(es) not apply to `vaekit score` of a time-series run")
    assert_usage_error(run("impute", series_run / "run", "--data", series_run / "a.csv", "--out",
                           series_run / "y.csv", "--method", "mwg"), "--method do(es) not apply")


@pytest.mark.parametrize("edit, extra, message", [
    (lambda r: r[:3] + ["yesterday,1.0,2.0"] + r[4:], [], "which is not a time"),
    (lambda r: r[:3] + [r[4], r[3]] + r[5:], [], "is not sorted"),
    (lambda r: r[:4] + [r[3]] + r[4:], [], "repeats"),
    (lambda r: r[:3] + [r[3].replace("02:00", "02:10")] + r[4:], [], "pass --frequency"),
    (lambda r: r[:60], [], "shorter than one window of 24"),
    (lambda r: r, ["--frequency", "2h"], "not a whole number of the --frequency step"),
    (lambda r: r, ["--horizon", "6"], "--horizon is not supported by the series-vae family"),
    (lambda r: r, ["--family", "forecast-cvae"], "needs --horizon N"),
])
def test_bad_series_inputs_are_one_line_exit_2(tmp_path, edit, extra, message):
    from cli_helpers import assert_usage_error, run

    p = tmp_path / "s.csv"
    write_series(p, n=300)
    p.write_text("\n".join(edit(p.read_text().splitlines())) + "\n")
    args = ["train", "--data", p, "--family", "series-vae", "--context", "24", "--epochs", "1", "--out", tmp_path / "r"]
    if "--family" in extra:
        args[4] = extra[1]
        extra = []
    assert_usage_error(run(*args, *extra), message)


def test_an_interrupted_forecast_run_resumes_to_the_uninterrupted_weights(tmp_path):
    import json

    from vaekit import train

    p = tmp_path / "s.csv"
    write_series(p, n=24 * 16)
    settings = dict(family="forecast-cvae", context=24, horizon=6, covariate_columns=["temp"], epochs=2, hidden=[8],
                    latent_dim=2, batch_size=64, report=False)
    full = train(str(p), tmp_path / "full", **settings)

    def stop_after_one(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(str(p), tmp_path / "cut", on_epoch_end=stop_after_one, **settings)
    resumed = train(out=tmp_path / "cut", resume=True, report=False)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert json.loads((tmp_path / "cut" / "results.json").read_text()) == \
        json.loads((tmp_path / "full" / "results.json").read_text())


def test_series_vae_trains_miwae_with_iw_samples_and_its_bound_is_above_the_elbo(tmp_path):
    from vaekit import train
    from vaekit.families.series import window_elbo

    p = tmp_path / "s.csv"
    write_series(p, n=24 * 12, gap=(50, 60))
    t = train(str(p), tmp_path / "r", family="series-vae", context=24, covariate_columns=["temp"], iw_samples=8,
              epochs=2, hidden=[8], latent_dim=2, report=False)
    rows = t.result.history
    assert len(rows) == 2 and all(np.isfinite(r["val_loss"]) for r in rows)
    cfg = series_cfg(p)
    val = prepare(cfg, load(cfg)).splits[1]
    with torch.no_grad():
        gen = torch.Generator().manual_seed(1)
        iw = -t.model.iw_bound(val.x, val.mask, val.c, 256, gen).mean().item()
        one = -torch.stack([t.model.iw_bound(val.x, val.mask, val.c, 1, gen) for _ in range(256)]).mean().item()
    assert abs(one - window_elbo(t.model, val, 1024)["elbo"]) < 0.5  # k = 1: the ELBO (up to its KL's noise)
    assert iw < one  # −IWAE_256 below −ELBO: a tighter bound


def test_evaluate_gives_the_numbers_of_results_json_for_the_run_s_own_data(series_run, forecast_run):
    import json

    from cli_helpers import run

    r = run("evaluate", forecast_run / "run", "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    saved = json.loads((forecast_run / "run" / "results.json").read_text())["test"]["forecast"]
    assert got["origins"] == saved["origins"] and got["steps"] == [432, 480]
    assert got["mae"] == pytest.approx(saved["mae"]) and got["crps"] == pytest.approx(saved["crps"])
    import vaekit

    assert vaekit.api.evaluate(forecast_run / "run")["mae"] == pytest.approx(saved["mae"])
    r = run("evaluate", series_run / "run", "--split", "validation", "--json")
    assert r.exit_code == 0, r.output
    saved = json.loads((series_run / "run" / "results.json").read_text())["validation"]
    assert json.loads(r.output)["elbo"] == pytest.approx(saved["elbo"], rel=1e-5)


def test_parquet_with_a_timestamp_column_and_an_npy_series_through_the_cli(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cli_helpers import run

    t = np.datetime64("2024-03-01T00:00") + np.arange(200).astype("timedelta64[m]") * 15
    v = np.sin(np.arange(200) / 4.0)
    v[[10, 11]] = np.nan
    pq.write_table(pa.table({"ds": pa.array(t.astype("datetime64[us]")), "y": v}), tmp_path / "s.parquet")
    sd = load_source(str(tmp_path / "s.parquet"), kind="series").series
    assert sd.targets == ["y"] and sd.step == 15 * 60 * 10**9 and np.isnan(sd.values[10:12]).all()
    x = np.stack([np.sin(np.arange(240) / 3.0), np.cos(np.arange(240) / 5.0)], 1)
    x[100:104, 1] = np.nan
    np.save(tmp_path / "s.npy", x)
    r = run("train", "--data", tmp_path / "s.npy", "--family", "series-vae", "--context", "16", "--epochs", "1",
            "--out", tmp_path / "r", *TINY)
    assert r.exit_code == 0, r.output
    r = run("impute", tmp_path / "r", "--data", tmp_path / "s.npy", "--out", tmp_path / "f.csv", "--k", "10")
    assert r.exit_code == 0, r.output
    lines = (tmp_path / "f.csv").read_text().splitlines()
    assert lines[0] == "step,x0,x1" and len(lines) == 241 and lines[101].startswith("100,")
    assert "nan" not in (tmp_path / "f.csv").read_text()
    assert float(lines[1].split(",")[2]) == x[0, 1]  # observed values as read


def test_gru_networks_train_forecast_and_score(tmp_path):
    from vaekit import train
    from vaekit.series_api import forecast_samples, read_series
    from vaekit.series_tasks import step_scores

    p = tmp_path / "s.csv"
    write_series(p, n=24 * 14, future=6)
    f = train(str(p), tmp_path / "f", family="forecast-cvae", series_network="gru", context=24, horizon=6,
              covariate_columns=["temp"], epochs=1, hidden=[8], latent_dim=2, report=False)
    assert any("gru" in k for k in f.model.state_dict())
    sd = read_series(f, str(p))
    fc = forecast_samples(f, sd, np.array([sd.observed_end]), 20, 0)
    assert fc.shape == (20, 1, 6, 1) and np.isfinite(fc).all()
    s = train(str(p), tmp_path / "s", family="series-vae", series_network="gru", context=24, epochs=1, hidden=[8],
              latent_dim=2, report=False)
    sc = step_scores(s, read_series(s, str(p)), k=4)
    assert s.info["series"]["targets"] == ["load", "temp"] and np.isfinite(sc[:24 * 14]).all()
