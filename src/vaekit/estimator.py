"""scikit-learn faces: :class:`VAE` (a transformer and density estimator) and :class:`AnomalyDetector`.

Both follow scikit-learn's contract: ``__init__`` stores the hyperparameters as given, ``fit`` validates
them (one-line :class:`~vaekit.errors.UsageError`, a ``ValueError``) and sets attributes ending in ``_``;
they clone, pickle, and work inside ``Pipeline`` and ``GridSearchCV``. Training is :func:`vaekit.api.train`
on the in-memory array (no file), so an estimator's model is the model ``vaekit train`` would make.

``X`` is always 2-D ``[n_samples, n_features]``; a run trained on images takes flattened images.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, OutlierMixin, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data

from .errors import DataError, RunError, UsageError

__all__ = ["VAE", "AnomalyDetector"]


class EstimatorNotFittedError(UsageError, NotFittedError):
    """A method that needs a fitted estimator was called before ``fit`` (or ``load``)."""


def save_estimator_run(est: Any, class_name: str, path: str | os.PathLike, overwrite: bool,
                       history: list[dict]) -> Path:
    """A fitted estimator's run directory (``config.json`` with its parameters under ``"estimator"``,
    ``model.safetensors``, ``metrics.jsonl``: the layout of ``vaekit train --out``), written under the run's lock."""
    import contextlib

    from .runs import METRICS, WEIGHTS, atomic_write_text, json_text, prepare_run_dir, save_tensors

    out = Path(path)
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in est.get_params().items()}
    params["random_state"] = _seed(est.random_state)
    info = {**est.trained_.info, "estimator": {"class": class_name, "params": params}}
    with contextlib.ExitStack() as held:  # the run's lock, until every file is written
        prepare_run_dir(out, overwrite, info, held)
        save_tensors(out / WEIGHTS, est.trained_.model.state_dict())
        atomic_write_text(out / METRICS, "".join(json_text(r) + "\n" for r in history))
    return out


def _seed(random_state: Any) -> int:
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) and random_state >= 0:
        return int(random_state)
    try:
        return int(check_random_state(random_state).randint(0, 2**31 - 1))
    except ValueError as err:
        raise UsageError(f"random_state must be None, a non-negative int or a numpy RandomState; {err}") from None


def _validate(est: BaseEstimator, X: Any, reset: bool, allow_nan: bool = False) -> np.ndarray:
    """sklearn's input validation, its ValueErrors as one-line DataErrors (TypeErrors pass unchanged)."""
    try:
        return validate_data(est, X, reset=reset, dtype=np.float64,
                             ensure_all_finite="allow-nan" if allow_nan else True)
    except ValueError as err:
        lines = [s.strip() for s in str(err).splitlines() if s.strip() and not s.startswith("array=")]
        msg = " ".join(lines) or "invalid input X"
        if "NaN" in msg or "infinity" in msg:
            msg = ("X contains NaN or infinite values; fill or drop them (e.g. sklearn's SimpleImputer in a "
                   "Pipeline, or a --missing mask run's TrainedVAE.impute)")
        raise DataError(msg) from None


class VAE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """A variational autoencoder as a scikit-learn estimator.

    ``fit(X)`` trains on the rows of ``X`` (a ``validation_fraction`` of them held out for early stopping);
    ``transform`` gives posterior means (``[n, latent_dim]``), ``inverse_transform`` decodes latent codes,
    ``sample(n)`` draws new rows, ``score_samples`` estimates log p(x) (IWAE with ``iwae_k`` samples, nats
    per example, in the units of ``X``: higher is more normal) and ``score`` is its mean, so
    ``GridSearchCV`` picks the setting with the best held-out likelihood.

    Parameters mirror :class:`vaekit.config.TrainConfig` (``random_state`` is its ``seed``).
    ``standardize``: ``"auto"`` standardizes the columns (stored scaler, like ``vaekit train`` on a table)
    unless ``likelihood="bernoulli"`` (data in [0, 1], e.g. flattened images), which models values as given.
    """

    def __init__(self, latent_dim: int = 8, hidden: tuple[int, ...] = (128, 64), likelihood: str = "auto",
                 standardize: str | bool = "auto", beta: float = 1.0, kl_warmup: int = 0, free_bits: float = 0.0,
                 dropout: float = 0.0, lr: float = 1e-3, weight_decay: float = 0.0, batch_size: int = 64,
                 epochs: int = 100, patience: int | None = 10, validation_fraction: float = 0.1,
                 iwae_k: int = 50, device: str = "cpu", random_state: Any = 0, verbose: bool = False):
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.likelihood = likelihood
        self.standardize = standardize
        self.beta = beta
        self.kl_warmup = kl_warmup
        self.free_bits = free_bits
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.iwae_k = iwae_k
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- fitting ---------------------------------------------------------------------------------
    def _config(self, seed: int):
        from .config import make_config

        hidden = self.hidden
        if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
            hidden = [int(hidden)]
        try:
            hidden = [int(h) for h in hidden]
        except (TypeError, ValueError):
            raise UsageError(f"hidden must be a tuple of layer sizes like (128, 64), got {self.hidden!r}") from None
        if not isinstance(self.iwae_k, (int, np.integer)) or isinstance(self.iwae_k, bool) or self.iwae_k < 1:
            raise UsageError(f"iwae_k must be a positive integer, got {self.iwae_k!r}")
        if self.standardize not in ("auto", True, False):
            raise UsageError(f"standardize must be 'auto', True or False, got {self.standardize!r}")
        cfg = make_config(None, model="mlp", latent_dim=self.latent_dim, hidden=hidden, likelihood=self.likelihood,
                          beta=self.beta, kl_warmup=self.kl_warmup, free_bits=self.free_bits, dropout=self.dropout,
                          lr=self.lr, weight_decay=self.weight_decay, batch_size=self.batch_size,
                          epochs=self.epochs, patience=self.patience, val_fraction=self.validation_fraction,
                          seed=seed, device=self.device)
        return cfg if self.patience is not None else cfg.model_copy(update={"patience": None})

    def fit(self, X: Any, y: Any = None) -> "VAE":
        """Train on the rows of ``X`` ``[n_samples, n_features]``; ``y`` is ignored."""
        import torch

        from . import api
        from .data import Dataset, dataset_from_array, split_dataset

        seed = _seed(self.random_state)
        cfg = self._config(seed)
        X = _validate(self, X, reset=True)
        n = X.shape[0]
        if n < 3:
            raise DataError(f"VAE needs at least 3 samples to fit (training and validation rows), got {n} "
                            f"sample{'s' if n != 1 else ''}; give more rows")
        standardize = self.likelihood != "bernoulli" if self.standardize == "auto" else bool(self.standardize)
        names = [str(c) for c in self.feature_names_in_] if hasattr(self, "feature_names_in_") else None
        ds = dataset_from_array(X, kind="table" if standardize else "array", columns=names,
                                name="in-memory array", holdout_test=False)
        with torch.random.fork_rng(devices=[]):  # training seeds torch; leave the caller's RNG as it was
            trained = api.train(ds, config=cfg, report=False, progress=bool(self.verbose))
        self.trained_ = trained
        self.n_iter_ = int(trained.result.epochs_run)
        self.best_epoch_ = int(trained.result.best_epoch)
        self.history_ = list(trained.result.history)
        index = Dataset(x=torch.arange(n)[:, None], test_x=torch.empty(0, 1, dtype=torch.long))
        val = split_dataset(index, val_fraction=cfg.val_fraction, seed=cfg.seed)[1]
        self.validation_index_ = val.x[:, 0].long().numpy()
        self._n_features_out = int(cfg.latent_dim)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "trained_")

    def _check_fitted(self) -> None:
        if not hasattr(self, "trained_"):
            raise EstimatorNotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first "
                                          "(or VAE.load(run_dir))")

    # -- data in model units ---------------------------------------------------------------------
    def _model_input(self, X: Any):
        """Validated ``X`` as a tensor in the model's units (reshaped to images, tables standardized)."""
        import torch

        self._check_fitted()
        X = _validate(self, X, reset=False)
        t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).reshape(len(X), *self.trained_.shape)
        return self.trained_.to_model_units(t)

    def _scores(self, X: Any, score: str, k: int, seed: int) -> np.ndarray:
        """Per-row scores; a ``--missing mask`` run also scores rows with NaN cells (log p of the observed ones)."""
        self._check_fitted()
        X = _validate(self, X, reset=False, allow_nan=self.trained_.config.missing == "mask")
        return self.trained_.anomaly_scores(X, score, k, seed)

    # -- uses ------------------------------------------------------------------------------------
    def transform(self, X: Any) -> np.ndarray:
        """Posterior means E[z|x], ``[n_samples, latent_dim]``."""
        from .evaluation.metrics import posterior_stats

        xt = self._model_input(X)
        mu, _ = posterior_stats(self.trained_.model, xt)
        return mu.double().numpy()

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Means of p(x|z) for latent codes ``X`` ``[n, latent_dim]``, in the units of the training data."""
        self._check_fitted()
        d = self.trained_.latent_dim
        try:
            Z = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("latent codes must be numeric") from None
        if Z.ndim != 2 or Z.shape[1] != d:
            raise DataError(f"latent codes must have shape [n, {d}] (latent_dim = {d}), got {list(Z.shape)}")
        if not np.isfinite(Z).all():
            raise DataError("latent codes contain NaN or infinite values")
        out = self.trained_.decode(Z.astype(np.float32))
        return out.reshape(len(Z), -1).double().numpy()

    def sample(self, n_samples: int = 1, random_state: Any = None) -> np.ndarray:
        """``n_samples`` new rows: means of p(x|z), z ~ N(0, I) (``random_state`` None: the estimator's)."""
        self._check_fitted()
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise UsageError(f"n_samples must be a positive integer, got {n_samples!r}")
        seed = _seed(self.random_state if random_state is None else random_state)
        out = self.trained_.sample(int(n_samples), seed=seed)
        return out.reshape(int(n_samples), -1).double().numpy()

    def score_samples(self, X: Any) -> np.ndarray:
        """IWAE (k = ``iwae_k``) estimate of log p(x) for each row, nats, in the units of ``X`` (for
        standardized columns the log-Jacobian −Σ log σ_j is included); higher is more normal."""
        self._check_fitted()
        return self._scores(X, "iwae", int(self.iwae_k), _seed(self.random_state))

    def score(self, X: Any, y: Any = None) -> float:
        """Mean estimated log-likelihood of the rows of ``X`` (nats per example)."""
        return float(np.mean(self.score_samples(X)))

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write a run directory (``config.json`` + ``model.safetensors`` + ``metrics.jsonl``, the layout of
        ``vaekit train --out``), readable by :meth:`load`, :func:`vaekit.load` and the CLI."""
        self._check_fitted()
        return save_estimator_run(self, "vaekit.VAE", path, overwrite, getattr(self, "history_", []))

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> "VAE":
        """A fitted estimator from any run directory (``VAE.save`` or ``vaekit train --out``).

        Conditional and semi-supervised runs need conditions the estimator cannot take; load those
        with :func:`vaekit.load`.
        """
        import json

        from . import api
        from .runs import METRICS

        trained = api.load(path, device=device)
        if trained.model.cond_dim:
            raise RunError(f"{path} is a conditional run; the estimator takes unconditional runs only "
                           "(use vaekit.load for conditional ones)")
        cfg = trained.config
        saved = (trained.info.get("estimator") or {}).get("params") or {}
        params = dict(latent_dim=cfg.latent_dim, hidden=tuple(cfg.hidden), likelihood=cfg.likelihood,
                      standardize=trained.scaler is not None, beta=cfg.beta, kl_warmup=cfg.kl_warmup,
                      free_bits=cfg.free_bits, dropout=cfg.dropout, lr=cfg.lr, weight_decay=cfg.weight_decay,
                      batch_size=cfg.batch_size, epochs=cfg.epochs, patience=cfg.patience,
                      validation_fraction=cfg.val_fraction, device=device, random_state=cfg.seed)
        valid = cls().get_params()
        params.update({k: (tuple(v) if k == "hidden" else v) for k, v in saved.items() if k in valid})
        params["device"] = device
        est = cls(**params)
        est.trained_ = trained
        est.n_features_in_ = int(np.prod(trained.shape))
        metrics = Path(path) / METRICS
        est.history_ = [json.loads(s) for s in metrics.read_text().splitlines() if s.strip()] \
            if metrics.is_file() else []
        est.n_iter_ = len(est.history_)
        est.best_epoch_ = min(est.history_, key=lambda r: r["val_loss"])["epoch"] if est.history_ else 0
        est._n_features_out = int(trained.latent_dim)
        return est


class AnomalyDetector(OutlierMixin, BaseEstimator):
    """Outlier detection with a VAE, with the conventions of scikit-learn's outlier detectors.

    ``vae``: a :class:`VAE` (cloned and fitted on ``X``; None: ``VAE()``), a fitted one wrapped in
    ``sklearn.frozen.FrozenEstimator`` (used as it is), or a run directory path (loaded, not retrained).
    ``method``: ``"iwae"`` (default; IWAE log-likelihood with ``iwae_k`` samples), ``"elbo"`` or ``"recon"``
    (minus the squared reconstruction error); higher is more normal.

    The threshold ``offset_`` (``decision_function = score_samples − offset_``, ``predict`` gives −1 below
    it and +1 otherwise):

    - ``contamination`` a float in (0, 0.5]: that fraction of the rows given to ``fit`` score below it;
    - ``threshold_quantile`` q in (0, 1): the q-quantile of held-out normal data: the VAE's validation rows
      when it is trained here, all of ``X`` for a prefit VAE (run directory or frozen);
    - neither (``contamination="auto"``): as ``threshold_quantile=0.01``.
    """

    def __init__(self, vae: Any = None, *, method: str = "iwae", iwae_k: int = 100, contamination: Any = "auto",
                 threshold_quantile: float | None = None, random_state: Any = 0):
        self.vae = vae
        self.method = method
        self.iwae_k = iwae_k
        self.contamination = contamination
        self.threshold_quantile = threshold_quantile
        self.random_state = random_state

    def _fit_vae(self, X: np.ndarray) -> tuple[VAE, bool]:
        """(the fitted VAE, whether it was trained here)."""
        v = self.vae
        if v is None or isinstance(v, VAE):
            return (VAE() if v is None else clone(v)).fit(X), True
        if isinstance(v, (str, os.PathLike)):
            return VAE.load(v), False
        inner = getattr(v, "estimator", None)
        if isinstance(inner, VAE) and type(v).__name__ == "FrozenEstimator":
            inner._check_fitted()
            return inner, False
        raise UsageError(f"vae must be a vaekit.VAE, a FrozenEstimator of a fitted one, or a run directory "
                         f"path; got {type(v).__name__}")

    def fit(self, X: Any, y: Any = None) -> "AnomalyDetector":
        """Fit (or load) the VAE and set the threshold ``offset_``; ``y`` is ignored."""
        import warnings

        from .tasks.anomaly import DEFAULT_QUANTILE, check_score_settings, quantile_warning, threshold

        check_score_settings(self.method, self.iwae_k, self.contamination, self.threshold_quantile)
        seed = _seed(self.random_state)
        X = _validate(self, X, reset=True, allow_nan=isinstance(self.vae, (str, os.PathLike)))
        vae, trained_here = self._fit_vae(X)
        if vae.trained_.config.missing != "mask" and np.isnan(X).any():  # only a --missing mask run takes NaN
            _validate(self, X, reset=False)
        if X.shape[1] != vae.n_features_in_:
            raise DataError(f"X has {X.shape[1]} features, but the VAE was trained on {vae.n_features_in_}; "
                            "give rows like the training data")
        self.vae_ = vae
        self._seed_ = seed
        scores = self.score_samples(X)
        if self.contamination != "auto":
            self.offset_ = threshold(scores, float(self.contamination))
        else:
            q = DEFAULT_QUANTILE if self.threshold_quantile is None else float(self.threshold_quantile)
            ref = scores[vae.validation_index_] if trained_here else scores
            note = quantile_warning(len(ref), q, "validation" if trained_here else "fitted",
                                    "fit on more rows (or a larger validation_fraction of the VAE), use a larger "
                                    "threshold_quantile, or set contamination")
            if note:
                warnings.warn(note, UserWarning, stacklevel=2)
            self.offset_ = threshold(ref, q)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "offset_"):
            raise EstimatorNotFittedError("this AnomalyDetector is not fitted yet; call fit(X) first")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "offset_")

    def score_samples(self, X: Any) -> np.ndarray:
        """Per-row normality scores (higher is more normal; see ``method``)."""
        if not hasattr(self, "vae_"):
            self._check_fitted()
        X = _validate(self, X, reset=False, allow_nan=self.vae_.trained_.config.missing == "mask")
        return self.vae_._scores(X, self.method, int(self.iwae_k), self._seed_)

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) − offset_``: negative for anomalies."""
        self._check_fitted()
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for inliers, −1 for anomalies."""
        return np.where(self.decision_function(X) < 0, -1, 1)
