"""Linear probe: how much of the labels a VAE's latent space makes linearly readable.

The standard test of representation learning: fit a logistic regression on the latent means of ``N``
labelled training examples and report its test accuracy, beside the same classifier on the raw inputs
with the same ``N`` labels.
"""

from __future__ import annotations

import numpy as np


from ..data import Dataset
from ..data.kinds import kind_of
from ..errors import UsageError


def choose_labeled(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` labelled examples, stratified by class when every class can get one."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    if n >= len(y):
        return idx
    counts = np.bincount(y)
    stratify = y if n >= (counts > 0).sum() and counts[counts > 0].min() >= 2 else None
    chosen, _ = train_test_split(idx, train_size=n, random_state=seed, stratify=stratify)
    return np.sort(chosen)


def _accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(train_y)) < 2:
        return float((test_y == train_y[0]).mean())  # one class seen: the classifier can only say that one
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    clf.fit(train_x, train_y)
    return float(clf.score(test_x, test_y))


def linear_probe(trained, ds: Dataset, labeled: int, seed: int = 0) -> dict:
    """Test accuracy of logistic regression on latent means vs on raw inputs, each from ``labeled`` labels.

    The data are split like the run's own (its seed and fractions); labels come from the training split,
    accuracy is measured on the test split.
    """
    if trained.model.cond_dim:
        raise UsageError("probe needs an unconditional run (a conditional VAE's latents need the label to encode)")
    if ds.y is None:
        raise UsageError(f"probe needs labels and {ds.name} has none; use labelled data")
    cfg = trained.config
    train, _, test = kind_of(ds.kind).split(ds, cfg)
    keep_tr, keep_te = train.y >= 0, test.y >= 0  # labels of -1 are unknown
    train.x, train.y, test.x, test.y = train.x[keep_tr], train.y[keep_tr], test.x[keep_te], test.y[keep_te]
    if len(test) == 0:
        raise UsageError(f"the test split of {ds.name} has no labels to measure accuracy on")
    if labeled < 1 or labeled > len(train):
        raise UsageError(f"--labeled must be between 1 and the {len(train)} labelled training examples, got {labeled}")
    ytr = train.y.numpy()
    pick = choose_labeled(ytr, labeled, seed)
    zs_train = trained.encode(train.x[pick]).numpy()
    zs_test = trained.encode(test.x).numpy()
    flat = lambda t: t.reshape(len(t), -1).numpy()  # noqa: E731
    yte = test.y.numpy()
    return {
        "labeled": int(labeled),
        "n_test": int(len(test)),
        "classes": int(len(np.unique(ds.y.numpy()))),
        "latent_dim": trained.latent_dim,
        "accuracy_latent": _accuracy(zs_train, ytr[pick], zs_test, yte),
        "accuracy_raw": _accuracy(flat(train.x[pick]), ytr[pick], flat(test.x), yte),
        "classifier": "StandardScaler + LogisticRegression (scikit-learn)",
    }


__all__ = ["linear_probe", "choose_labeled"]
