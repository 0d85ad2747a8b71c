"""Forecast metrics: CRPS from samples against its Gaussian closed form, coverage of a known distribution,
MASE's seasonal-naive scale."""

import numpy as np

from vaekit.evaluation.forecasting import (coverage, crps_gaussian, crps_samples, forecast_metrics,
                                           naive_scale)


def test_crps_of_gaussian_samples_matches_the_closed_form():
    rng = np.random.default_rng(0)
    mu, sigma = np.array([0.0, 1.0, -2.0]), np.array([1.0, 0.5, 2.0])
    y = np.array([0.3, 2.5, -2.0])
    samples = mu + sigma * rng.standard_normal((40_000, 3))
    exact = crps_gaussian(mu, sigma, y)
    np.testing.assert_allclose(crps_samples(samples, y), exact, rtol=0.02)
    # y at the mean of N(0, 1): σ (2φ(0) − 1/√π) = 0.2337
    np.testing.assert_allclose(crps_gaussian(0.0, 1.0, 0.0), 0.23369497, rtol=1e-6)


def test_crps_of_a_point_forecast_is_the_absolute_error():
    np.testing.assert_allclose(crps_samples(np.full((10, 2), 3.0), np.array([1.0, 4.5])), [2.0, 1.5])


def test_coverage_of_a_known_distribution_is_nominal():
    rng = np.random.default_rng(1)
    samples = rng.standard_normal((4000, 1))  # the forecast: N(0, 1) for every step
    y = rng.standard_normal(20_000)  # truths from the same distribution
    s = np.repeat(samples, 1, axis=1)
    lo80, hi80 = np.quantile(s, [0.1, 0.9])
    assert abs(((y >= lo80) & (y <= hi80)).mean() - 0.8) < 0.02
    assert abs(coverage(np.broadcast_to(s, (4000, 200)), y[:200], 0.95) - 0.95) < 0.05
    m = forecast_metrics(np.broadcast_to(s[:1000], (1000, 3000)), y[:3000])
    assert abs(m["coverage_80"] - 0.8) < 0.03 and abs(m["coverage_95"] - 0.95) < 0.02
    assert abs(m["crps"] - crps_gaussian(0.0, 1.0, y[:3000]).mean()) < 0.01


def test_mase_uses_the_seasonal_naive_training_error_and_skips_missing_truths():
    train = np.array([1.0, 2.0, 1.0, 2.0, 1.0, 3.0])
    assert naive_scale(train, 2) == np.mean([0, 0, 0, 1])
    y = np.array([1.0, np.nan, 3.0])
    m = forecast_metrics(np.array([[2.0, 0.0, 3.0]] * 5), y, scale=0.5)
    assert m["n"] == 2 and m["mae"] == 0.5 and m["mase"] == 1.0 and m["rmse"] == np.sqrt(0.5)
