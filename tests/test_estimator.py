"""vaekit.VAE and vaekit.AnomalyDetector: scikit-learn's own estimator checks, and what they are for."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import vaekit
from vaekit.errors import DataError, UsageError
from vaekit.estimator import EstimatorNotFittedError
from vaekit.evaluation import importance_bounds

SMALL = dict(latent_dim=2, hidden=(8,), epochs=2, iwae_k=8)

# Every check of scikit-learn's suite applies and passes: no check is skipped (an empty mapping).
EXPECTED_FAILED_CHECKS: dict = {}


@parametrize_with_checks([vaekit.VAE(**SMALL), vaekit.AnomalyDetector(vaekit.VAE(**SMALL), iwae_k=8)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    return load_digits().data.astype(np.float64)


@pytest.fixture(scope="module")
def planted():
    """Inliers near a 2-D plane in 8-D; outliers spread over the whole box, off the plane."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(2, 8))
    inliers = rng.normal(size=(600, 2)) @ w + 0.05 * rng.normal(size=(600, 8))
    outliers = rng.uniform(-4, 4, size=(30, 8))
    return inliers, outliers


@pytest.mark.parametrize("method", ["iwae", "elbo", "recon"])
def test_scores_rank_planted_outliers_below_inliers(planted, method):
    inliers, outliers = planted
    train = np.concatenate([inliers[:500], outliers[:10]])  # a slightly contaminated training set
    det = vaekit.AnomalyDetector(vaekit.VAE(latent_dim=2, hidden=(32,), epochs=60, patience=None),
                                 method=method, iwae_k=32, contamination=0.02).fit(train)
    test = np.concatenate([inliers[500:], outliers[10:]])
    is_out = np.r_[np.zeros(100), np.ones(20)]
    s = det.score_samples(test)
    assert roc_auc_score(is_out, -s) > 0.97
    pred = det.predict(test)
    assert set(np.unique(pred)) <= {-1, 1}
    assert (pred[is_out == 1] == -1).mean() >= 0.9 and (pred[is_out == 0] == 1).mean() >= 0.8
    # contamination: that fraction of the fitted rows lies below the threshold (sklearn's convention)
    assert abs((det.predict(train) == -1).mean() - 0.02) < 0.01
    np.testing.assert_allclose(det.decision_function(test), s - det.offset_)


def test_iwae_is_above_elbo_for_every_example_and_scores_do_not_depend_on_the_batch(digits):
    vae = vaekit.VAE(latent_dim=4, hidden=(32,), epochs=3, iwae_k=16).fit(digits[:400])
    xt = vae._model_input(digits[:50])
    noise = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    iw, elbo = importance_bounds(vae.trained_.model, xt, 16, noise=noise)
    assert bool((iw >= elbo - 1e-4).all())  # log-mean-exp ≥ mean of the same log-weights (Jensen)
    full = vae.score_samples(digits[:50])
    alone = np.concatenate([vae.score_samples(digits[i: i + 1]) for i in range(0, 50, 7)])
    np.testing.assert_array_equal(full[::7], alone)


def test_score_samples_is_a_density_of_x_in_its_own_units(digits):
    """Standardized tables: scaling the data by 10 shifts log p(x) by −D log 10 (the log-Jacobian)."""
    x = digits[:300, 20:28]
    a = vaekit.VAE(latent_dim=2, hidden=(16,), epochs=3, iwae_k=8, likelihood="gaussian").fit(x)
    b = vaekit.VAE(latent_dim=2, hidden=(16,), epochs=3, iwae_k=8, likelihood="gaussian").fit(10 * x)
    shift = b.score_samples(10 * x[:40]) - a.score_samples(x[:40])
    np.testing.assert_allclose(shift, -8 * np.log(10), atol=0.05)


def test_fit_is_deterministic_and_leaves_torch_rng_alone(digits):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    z1 = vaekit.VAE(latent_dim=3, hidden=(16,), epochs=2, random_state=5).fit_transform(digits[:200])
    after = torch.rand(1)
    assert torch.equal(before, after)
    z2 = vaekit.VAE(latent_dim=3, hidden=(16,), epochs=2, random_state=5).fit(digits[:200]).transform(digits[:200])
    np.testing.assert_array_equal(z1, z2)


def test_pipeline_and_grid_search(digits):
    x = digits[:600]
    pipe = Pipeline([("scale", StandardScaler()), ("vae", vaekit.VAE(latent_dim=3, hidden=(16,), epochs=2,
                                                                       standardize=False, likelihood="gaussian"))])
    z = pipe.fit(x).transform(x)
    direct = vaekit.VAE(latent_dim=3, hidden=(16,), epochs=2, standardize=False, likelihood="gaussian")
    np.testing.assert_allclose(z, direct.fit(StandardScaler().fit_transform(x)).transform(
        StandardScaler().fit(x).transform(x)), rtol=1e-5, atol=1e-6)
    # GridSearchCV scores by held-out log-likelihood: data on a 4-D plane in 16-D needs more than 1 latent
    rng = np.random.default_rng(1)
    plane = rng.normal(size=(400, 4)) @ rng.normal(size=(4, 16)) + 0.05 * rng.normal(size=(400, 16))
    grid = GridSearchCV(vaekit.VAE(hidden=(32,), epochs=40, patience=None, iwae_k=8, batch_size=32, lr=3e-3),
                        {"latent_dim": [1, 4]}, cv=2).fit(plane)
    assert grid.best_params_ == {"latent_dim": 4}
    mean = grid.cv_results_["mean_test_score"]
    assert mean[1] > mean[0] + 3  # nats per example


def test_save_and_load_round_trip(digits, tmp_path):
    vae = vaekit.VAE(latent_dim=3, hidden=(16,), epochs=2, iwae_k=8).fit(digits[:300])
    path = vae.save(tmp_path / "run")
    assert {"config.json", "model.safetensors"} <= {p.name for p in path.iterdir()}
    back = vaekit.VAE.load(path)
    np.testing.assert_array_equal(back.transform(digits[:20]), vae.transform(digits[:20]))
    np.testing.assert_array_equal(back.score_samples(digits[:20]), vae.score_samples(digits[:20]))
    assert back.get_params()["iwae_k"] == 8 and back.n_features_in_ == 64
    with pytest.raises(UsageError, match="already exists"):
        vae.save(path)
    assert vaekit.load(path).latent_dim == 3  # the run-directory format everyone reads


def test_load_reads_a_run_trained_by_the_cli_on_images(tmp_path, digits):
    run = tmp_path / "digits"
    trained = vaekit.train("digits", run, latent_dim=3, hidden=[16], epochs=2, report=False)
    est = vaekit.VAE.load(run)
    flat = digits[:10] / 16.0  # the built-in digits are images in [0, 1]
    assert est.n_features_in_ == 64
    np.testing.assert_allclose(est.transform(flat), trained.encode(flat.reshape(10, 1, 8, 8)).numpy(), atol=1e-6)
    assert est.inverse_transform(est.transform(flat)).shape == (10, 64)
    assert est.sample(5, random_state=1).shape == (5, 64)


def test_frozen_and_run_directory_detectors_are_not_retrained(digits, tmp_path):
    vae = vaekit.VAE(latent_dim=3, hidden=(16,), epochs=2, iwae_k=8).fit(digits[:300])
    vae.save(tmp_path / "run")
    a = vaekit.AnomalyDetector(FrozenEstimator(vae), iwae_k=8, threshold_quantile=0.1).fit(digits[300:500])
    b = vaekit.AnomalyDetector(str(tmp_path / "run"), iwae_k=8, threshold_quantile=0.1).fit(digits[300:500])
    np.testing.assert_array_equal(a.score_samples(digits[:30]), b.score_samples(digits[:30]))
    assert abs((a.predict(digits[300:500]) == -1).mean() - 0.1) < 0.01  # the quantile of what fit saw
    assert a.vae_ is vae


def one_line(err):
    msg = str(err.value)
    assert "\n" not in msg and msg
    return msg


def test_bad_inputs_give_one_line_errors(digits):
    vae = vaekit.VAE(**SMALL).fit(digits[:100])
    with pytest.raises(DataError) as e:
        vae.transform(digits[:5, :10])
    assert "10 features" in one_line(e) and "64" in one_line(e)
    with pytest.raises(EstimatorNotFittedError) as e:
        vaekit.VAE().transform(digits[:5])
    assert "fit(X)" in one_line(e)
    with pytest.raises(DataError) as e:
        vaekit.VAE(**SMALL).fit(digits[:1])
    assert "1 sample" in one_line(e)
    with pytest.raises(DataError) as e:
        vae.inverse_transform(np.zeros((2, 5)))
    assert "latent_dim = 2" in one_line(e)
    bad_nan = digits[:10].copy()
    bad_nan[0, 0] = np.nan
    with pytest.raises(DataError) as e:
        vae.score_samples(bad_nan)
    assert "NaN" in one_line(e)
    for kw, needle in [({"contamination": 0.7}, "contamination"), ({"contamination": "some"}, "contamination"),
                       ({"threshold_quantile": 1.5}, "threshold_quantile"), ({"method": "mahalanobis"}, "iwae"),
                       ({"contamination": 0.1, "threshold_quantile": 0.1}, "not both"), ({"iwae_k": 0}, "iwae_k")]:
        with pytest.raises(UsageError) as e:
            vaekit.AnomalyDetector(vaekit.VAE(**SMALL), **kw).fit(digits[:50])
        assert needle in one_line(e), kw
    with pytest.raises(UsageError) as e:
        vaekit.VAE(latent_dim=0).fit(digits[:50])
    assert "--latent-dim" in one_line(e)
    det = vaekit.AnomalyDetector(FrozenEstimator(vae)).fit(digits[:50])
    with pytest.raises(DataError) as e:
        det.predict(digits[:5, :3])
    assert "3 features" in one_line(e)
    assert clone(det).get_params()["method"] == "iwae"
