"""scikit-learn face of the recommendation families: :class:`Recommender` (``mult-vae``, ``mult-dae``, ``recvae``).

``X`` is a user × item matrix: a scipy sparse matrix or a dense array, a stored value > 0 is a click (rows
are users, columns items). ``fit(X)`` trains through :func:`vaekit.api.train` on the in-memory matrix (no
file), with the strong-generalization split of ``vaekit train`` (validation users for early stopping on
NDCG@100), so the model is the one ``vaekit train --family …`` would make. ``predict(X, k)`` folds in each
row and returns its top ``k`` unseen items as column indices. The estimator follows scikit-learn's contract
(parameters stored as given, validated in ``fit``; attributes ending in ``_``; ``clone``/``get_params`` via
the signature).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from .errors import DataError, RunError, UsageError
from .estimator import EstimatorNotFittedError, _seed, save_estimator_run

__all__ = ["Recommender"]

FAMILIES = ("mult-vae", "mult-dae", "recvae")
#: parameters that map onto TrainConfig fields of the same name (None: the family's paper default)
_SETTINGS = ("latent_dim", "hidden", "dropout", "beta", "total_anneal_steps", "gamma", "lr", "weight_decay",
             "batch_size", "epochs", "patience")


def _matrix(X: Any, n_items: int | None = None):
    """``X`` as a CSR matrix of float32 clicks (stored value > 0 → 1); one-line DataErrors for what is not."""
    import scipy.sparse as sp

    try:
        m = sp.csr_matrix(X, dtype=np.float64) if sp.issparse(X) else sp.csr_matrix(np.asarray(X, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise DataError(f"X must be a user x item matrix of numbers (scipy sparse or a 2-D array): {err}") from None
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
        raise DataError(f"X must be a non-empty 2-D user x item matrix, got shape {list(m.shape)}")
    if not np.isfinite(m.data).all() or (m.data < 0).any():
        raise DataError("X must hold finite, non-negative values (a value > 0 is a click)")
    if n_items is not None and m.shape[1] != n_items:
        raise DataError(f"X has {m.shape[1]} item columns, the model was fitted on {n_items}; give the same "
                        "columns (items_ lists them)")
    out = sp.csr_matrix(((m.data > 0).astype(np.float32), m.indices, m.indptr), shape=m.shape)
    out.eliminate_zeros()
    out.sort_indices()
    return out


class Recommender(BaseEstimator):
    """A VAE recommender (Mult-VAE, Mult-DAE or RecVAE) as a scikit-learn estimator.

    ``family``: ``"mult-vae"`` (default), ``"mult-dae"`` or ``"recvae"``. The other parameters are the
    :class:`vaekit.config.TrainConfig` fields of the same name; None (the default for the model's sizes,
    ``dropout``, ``beta``, ``batch_size``…) takes the family's paper setting (hidden (600,), latent 200,
    input dropout 0.5, batch 500; β capped at 0.2 over 200,000 steps for mult-vae). ``validation_fraction``
    of the users (rows) are held out for early stopping on validation NDCG@100 (and one user as the test
    split ``vaekit train`` always keeps); ``random_state`` is the seed of the split and the weights.

    Fitted attributes: ``trained_`` (the :class:`~vaekit.trained.TrainedVAE`), ``items_`` (the item id of
    each column), ``n_features_in_``, ``n_iter_``, ``best_epoch_``, ``history_``.
    """

    def __init__(self, family: str = "mult-vae", latent_dim: int | None = None, hidden: tuple[int, ...] | None = None,
                 dropout: float | None = None, beta: float | None = None, total_anneal_steps: int | None = None,
                 gamma: float | None = None, lr: float = 1e-3, weight_decay: float = 0.0,
                 batch_size: int | None = None, epochs: int = 100, patience: int | None = 10,
                 validation_fraction: float = 0.1, device: str = "cpu", random_state: Any = 0,
                 verbose: bool = False):
        self.family = family
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.dropout = dropout
        self.beta = beta
        self.total_anneal_steps = total_anneal_steps
        self.gamma = gamma
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- fitting ---------------------------------------------------------------------------------
    def _settings(self, seed: int) -> dict[str, Any]:
        if self.family not in FAMILIES:
            raise UsageError(f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        out: dict[str, Any] = {"family": self.family, "val_fraction": self.validation_fraction, "seed": seed,
                               "device": self.device, "test_fraction": 0.01}
        for name in _SETTINGS:
            value = getattr(self, name)
            if value is None:  # the family's paper setting (patience None: see fit)
                continue
            if name == "hidden":
                try:
                    value = [int(value)] if isinstance(value, (int, np.integer)) else [int(h) for h in value]
                except (TypeError, ValueError):
                    raise UsageError(f"hidden must be a tuple of layer sizes like (600,), got {value!r}") from None
            out[name] = value
        return out

    def fit(self, X: Any, y: Any = None) -> "Recommender":
        """Train on the user × item matrix ``X`` (rows with no click are left out); ``y`` is ignored."""
        import torch

        from . import api
        from .config import make_config
        from .data import Dataset
        from .data.interactions import Interactions, torch_csr

        seed = _seed(self.random_state)
        cfg = make_config(None, data="in-memory matrix", **self._settings(seed))
        if self.patience is None:  # make_config takes None as "unset"; here it means "no early stopping"
            cfg = cfg.model_copy(update={"patience": None})
        m = _matrix(X)
        rows = np.flatnonzero(np.diff(m.indptr) > 0)
        if len(rows) < 3:
            raise DataError(f"Recommender needs at least 3 users with a click to fit (training and validation "
                            f"users), got {len(rows)}; give more rows")
        inter = Interactions(m[rows], [str(r) for r in rows], [str(j) for j in range(m.shape[1])])
        ds = Dataset(x=torch_csr(inter.matrix), kind="interactions", name="in-memory matrix", interactions=inter)
        with torch.random.fork_rng(devices=[]):  # training seeds torch; leave the caller's RNG as it was
            trained = api.train(ds, config=cfg, report=False, progress=bool(self.verbose))
        self._fitted(trained)
        return self

    def _fitted(self, trained: Any) -> None:
        self.trained_ = trained
        self.items_ = list(trained.info["data"]["items"])
        self.n_features_in_ = len(self.items_)
        result = trained.result
        self.history_ = list(result.history) if result is not None else []
        self.n_iter_ = int(result.epochs_run) if result is not None else len(self.history_)
        self.best_epoch_ = int(result.best_epoch) if result is not None else \
            (max(self.history_, key=lambda r: r.get("val_ndcg@100", 0.0))["epoch"] if self.history_ else 0)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "trained_")

    def _check_fitted(self) -> None:
        if not hasattr(self, "trained_"):
            raise EstimatorNotFittedError("this Recommender is not fitted yet; call fit(X) first "
                                          "(or Recommender.load(run_dir))")

    # -- uses ------------------------------------------------------------------------------------
    def _scores(self, m: Any, batch_size: int = 1024):
        """Item logits of each row of the CSR matrix ``m``, batch by batch (a generator of (rows, x, scores))."""
        import torch

        from .data.interactions import dense_rows

        model, dev = self.trained_.model.eval(), self.trained_.device
        with torch.no_grad():
            for s in range(0, m.shape[0], batch_size):
                x = dense_rows(m, slice(s, s + batch_size)).to(dev)
                yield s, x, model.scores(x).float()

    def predict(self, X: Any, k: int = 20) -> np.ndarray:
        """The top ``k`` items of each row that the row has not clicked, as column indices best first,
        ``[n_users, k]`` (int64). A row with fewer than ``k`` unseen items is padded with −1; a row with no
        click gets the model's ranking for an empty history."""
        self._check_fitted()
        n_items = self.n_features_in_
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise UsageError(f"k must be a positive number of items, got {k!r}")
        if k > n_items:
            raise UsageError(f"k {k} is more than the catalogue of {n_items} items; ask for at most {n_items}")
        from .core.ranking import mask_seen

        m = _matrix(X, n_items)
        out = np.full((m.shape[0], int(k)), -1, dtype=np.int64)
        for s, x, scores in self._scores(m):
            top = mask_seen(scores, x).topk(int(k), dim=1)
            idx = top.indices.cpu().numpy()
            idx[~np.isfinite(top.values.cpu().numpy())] = -1
            out[s: s + len(x)] = idx
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        """The model's multinomial distribution over the catalogue for each row (``[n_users, n_items]``, rows
        sum to 1), given the row's clicks; items already clicked are not removed."""
        import torch

        self._check_fitted()
        m = _matrix(X, self.n_features_in_)
        out = np.empty(m.shape, dtype=np.float64)
        for s, x, scores in self._scores(m):
            out[s: s + len(x)] = torch.softmax(scores, dim=1).double().cpu().numpy()
        return out

    def score(self, X: Any, y: Any = None) -> float:
        """Mean NDCG@100 (higher is better), so ``GridSearchCV`` ranks settings as papers do.

        With ``y`` (same shape as ``X``): the items of ``y`` are the held-out ones, ranked given ``X``'s.
        Without: 20% of the items of each row with 5 or more clicks are held out (drawn with
        ``random_state``) and ranked given the other 80%, Liang et al.'s protocol. Rows with no held-out
        item do not count; no such row at all is a one-line DataError."""
        from .core.ranking import split_metrics
        from .data.interactions import _split_items

        self._check_fitted()
        m = _matrix(X, self.n_features_in_)
        if y is None:
            rng = np.random.default_rng(_seed(self.random_state))
            fold, held = _split_items(m, np.arange(m.shape[0]), rng)
        else:
            fold, held = m, _matrix(y, self.n_features_in_)
            if held.shape != fold.shape:
                raise DataError(f"y must have the shape of X {list(fold.shape)}, got {list(held.shape)}")
        if held.nnz == 0:
            raise DataError("no row has items to score (without y, a row needs 5 or more clicks); give y, the "
                            "held-out items, or users with more clicks")
        res = split_metrics(self.trained_.model.eval().scores, fold, held, {"ndcg@100": 100}, 1024,
                            self.trained_.device)
        return float(res["ndcg@100"])

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write a run directory (``config.json`` with the id maps, ``model.safetensors``, ``metrics.jsonl``,
        the layout of ``vaekit train --out``), readable by :meth:`load`, :func:`vaekit.load` and the CLI
        (``vaekit recommend`` names items by their column numbers)."""
        self._check_fitted()
        return save_estimator_run(self, "vaekit.Recommender", path, overwrite, self.history_)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> "Recommender":
        """A fitted estimator from a recommendation run directory (:meth:`save` or ``vaekit train --out``):
        its columns are the run's items (``items_``, in ``config.json`` order)."""
        import json

        from . import api
        from .runs import METRICS

        trained = api.load(path, device=device)
        cfg = trained.config
        if cfg.family not in FAMILIES:
            raise RunError(f"{path} is not a recommendation run (family {cfg.family or 'vae'}); load it with "
                           "vaekit.VAE.load or vaekit.load")
        saved = (trained.info.get("estimator") or {}).get("params") or {}
        params = {name: getattr(cfg, name) for name in _SETTINGS}
        params.update(family=cfg.family, hidden=tuple(cfg.hidden), validation_fraction=cfg.val_fraction,
                      random_state=cfg.seed)
        valid = cls().get_params()
        params.update({k: (tuple(v) if k == "hidden" and v is not None else v) for k, v in saved.items()
                       if k in valid})
        params["device"] = device
        est = cls(**params)
        metrics = Path(path) / METRICS
        est._fitted(trained)
        est.history_ = [json.loads(s) for s in metrics.read_text().splitlines() if s.strip()] \
            if metrics.is_file() else []
        est.n_iter_ = len(est.history_)
        est.best_epoch_ = max(est.history_, key=lambda r: r.get("val_ndcg@100", 0.0))["epoch"] \
            if est.history_ else 0
        return est
