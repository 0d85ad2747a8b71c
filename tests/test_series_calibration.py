"""The forecast-cvae's validation-period quantile recalibration: nominal coverage on known distributions,
fitted on the validation period only, kept in the run and applied by `vaekit forecast`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vaekit.evaluation.forecasting import coverage
from vaekit.series_calibration import CALIBRATION, fit_recalibration, recalibrate


def test_too_narrow_forecasts_reach_nominal_coverage_on_fresh_data():
    rng = np.random.default_rng(0)
    S, N = 200, 3000
    fc_val, y_val = rng.normal(0, 1, (S, N)), rng.normal(0, 2, N)  # forecasts N(0, 1), truths N(0, 2²)
    cal = fit_recalibration(fc_val, y_val)
    assert cal["coverage_before"]["80"] == pytest.approx(0.47, abs=0.03)  # P(|Y| < 1.28) for Y ~ N(0, 4)
    fc, y = rng.normal(0, 1, (S, N)), rng.normal(0, 2, N)
    out = recalibrate(fc, cal)
    assert coverage(fc, y, 0.8) < 0.52
    assert coverage(out, y, 0.8) == pytest.approx(0.80, abs=0.025)
    assert coverage(out, y, 0.95) == pytest.approx(0.95, abs=0.02)  # widened past the samples' range


def test_too_wide_and_biased_forecasts_are_corrected_and_calibrated_ones_left_nearly_alone():
    rng = np.random.default_rng(1)
    S, N = 200, 3000
    cal = fit_recalibration(rng.normal(0, 2, (S, N)), rng.normal(0.5, 1, N))  # too wide and 0.5 too low
    fc, y = rng.normal(0, 2, (S, N)), rng.normal(0.5, 1, N)
    out = recalibrate(fc, cal)
    assert coverage(fc, y, 0.8) > 0.95
    assert coverage(out, y, 0.8) == pytest.approx(0.80, abs=0.025)
    assert coverage(out, y, 0.95) == pytest.approx(0.95, abs=0.015)
    good = fit_recalibration(rng.normal(0, 1, (S, N)), rng.normal(0, 1, N))
    fc = rng.normal(0, 1, (S, 500))
    assert np.abs(recalibrate(fc, good) - fc).mean() < 0.05  # G ≈ identity
    assert recalibrate(fc, None) is fc


def test_recalibration_keeps_rank_order_and_the_median_and_skips_missing_truths():
    rng = np.random.default_rng(2)
    cal = fit_recalibration(rng.normal(0, 1, (50, 400)), rng.normal(0, 3, 400))
    fc = rng.normal(0, 1, (50, 7, 3))
    out = recalibrate(fc, cal)
    assert out.shape == fc.shape
    np.testing.assert_array_equal(np.argsort(out, 0), np.argsort(fc, 0))
    np.testing.assert_allclose(np.median(out, 0), np.median(fc, 0))  # the point forecast does not move
    y = rng.normal(0, 3, 400)
    y[::2] = np.nan  # missing truths are left out
    assert fit_recalibration(rng.normal(0, 1, (50, 400)), y)["n"] == 200


def test_the_run_fits_it_on_the_validation_period_only_and_forecast_applies_it(tmp_path):
    import csv

    from cli_helpers import run
    from test_series import write_series

    import vaekit
    from vaekit.series_api import forecast_samples, read_series
    from vaekit.series_calibration import calibrate_run

    write_series(tmp_path / "s.csv", n=24 * 20, future=12)
    trained = vaekit.train(str(tmp_path / "s.csv"), tmp_path / "run", family="forecast-cvae", context=24, horizon=12,
                           covariate_columns=["temp"], epochs=1, hidden=[8], latent_dim=2, batch_size=32, seed=0,
                           report=False)
    cal = json.loads((tmp_path / "run" / CALIBRATION).read_text())
    assert cal["period"] == [384, 432] and cal["origins"] == 5 and cal["n"] == 5 * 12  # origins 408..420, every 3
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["validation"]["forecast_calibration"]["coverage_after"] == cal["coverage_after"]
    assert len(cal["levels"]) == len(cal["factors"]) and all(0 <= k <= 100 for k in cal["factors"])
    # change every test-period value: the map fitted at the end of training does not move; validation values do
    text = (tmp_path / "s.csv").read_text().splitlines()
    for i, end in ((432, 480), (384, 432)):
        lines = list(text)
        for j in range(1 + i, 1 + end):
            t, v, c = lines[j].split(",")
            lines[j] = f"{t},{float(v) + 3.0},{c}"
        (tmp_path / f"changed{i}.csv").write_text("\n".join(lines) + "\n")
        again = calibrate_run(vaekit.load(tmp_path / "run"), read_series(trained, str(tmp_path / f"changed{i}.csv")),
                              100, 0)
        same = again["factors"] == cal["factors"]
        assert same == (i == 432), i
    # `vaekit forecast` gives the recalibrated quantiles; a run without calibration.json forecasts raw
    (tmp_path / "run" / CALIBRATION).write_text(json.dumps(cal))
    loaded = vaekit.load(tmp_path / "run")
    sd = read_series(loaded, str(tmp_path / "s.csv"))
    origin = np.array([480])
    raw = forecast_samples(loaded, sd, origin, 50, 0, calibrated=False)
    np.testing.assert_allclose(forecast_samples(loaded, sd, origin, 50, 0), recalibrate(raw, cal))
    r = run("forecast", tmp_path / "run", "--data", tmp_path / "s.csv", "--out", tmp_path / "f.csv", "--samples", "50")
    assert r.exit_code == 0, r.output
    q10 = [float(row["load_q0.1"]) for row in csv.DictReader(open(tmp_path / "f.csv"))]
    np.testing.assert_allclose(q10, np.quantile(recalibrate(raw, cal)[:, 0, :, 0], 0.1, axis=0), rtol=1e-6)
    (tmp_path / "run" / CALIBRATION).unlink()
    old = vaekit.load(tmp_path / "run")
    np.testing.assert_allclose(forecast_samples(old, sd, origin, 50, 0), raw)
