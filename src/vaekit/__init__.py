"""vaekit: variational autoencoders from your data to samples, latent codes and scores.

``vaekit.train(...)`` trains a run, ``vaekit.load(run_dir)`` loads one; both return a
:class:`~vaekit.api.TrainedVAE` with ``encode``, ``decode``, ``sample`` and ``reconstruct``.
Heavy modules (torch) are imported on first use, so ``import vaekit`` and ``vaekit --help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["train", "load", "evaluate", "tune", "TrainedVAE", "TrainConfig", "load_source", "VAE",
           "AnomalyDetector", "Recommender", "__version__"]

_LAZY = {
    "train": ("vaekit.api", "train"),
    "load": ("vaekit.api", "load"),
    "evaluate": ("vaekit.api", "evaluate"),
    "tune": ("vaekit.tuning", "tune"),
    "TrainedVAE": ("vaekit.trained", "TrainedVAE"),
    "TrainConfig": ("vaekit.config", "TrainConfig"),
    "load_source": ("vaekit.data", "load_source"),
    "VAE": ("vaekit.estimator", "VAE"),
    "AnomalyDetector": ("vaekit.estimator", "AnomalyDetector"),
    "Recommender": ("vaekit.recommender", "Recommender"),
}

if TYPE_CHECKING:  # pragma: no cover
    from .api import TrainedVAE, evaluate, load, train
    from .config import TrainConfig
    from .data import load_source
    from .tuning.study import tune
    from .estimator import VAE, AnomalyDetector
    from .recommender import Recommender


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'vaekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API, lazy names included (``dir(vaekit)`` and tab completion show them)."""
    return sorted(set(globals()) | set(__all__))
