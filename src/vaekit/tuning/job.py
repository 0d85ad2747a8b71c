"""What a ``vaekit tune`` search is asked to do and what it gives back: the choices (samplers, pruners,
metrics), the :class:`Job` every worker receives as plain values, the Optuna sampler and pruner it makes from
them, and the :class:`TuneResult`. Optuna is imported inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .space import SearchSpace, parse_space

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("median", "hyperband", "none")
METRICS = {"val_elbo": "validation −ELBO of the best weights (1-sample ELBO, β = 1), nats per example",
           "val_iwae": "validation −IWAE bound (k samples), nats per example",
           "val_recon": "validation reconstruction NLL, nats per example",
           "val_ndcg@100": "validation NDCG@100 of the best weights (recommenders; higher is better)"}
#: metrics the study maximizes (its direction); every other one is minimized
MAXIMIZED = ("val_ndcg@100",)


@dataclass
class TuneResult:
    """What a ``tune`` call left behind (values in nats per example, lower is better; for ``val_ndcg@100``
    NDCG@100, higher is better)."""

    tune_dir: Path
    study: str
    storage: str
    metric: str
    counts: dict[str, int]
    target: int
    best_value: float | None = None
    best_trial: int | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_run: Path | None = None
    interrupted: bool = False
    timed_out: bool = False

    @property
    def finished(self) -> int:
        return self.counts.get("finished", 0)


@dataclass
class Job:
    """Everything a worker needs, as plain (picklable) values: it crosses into spawned worker processes."""

    tune_dir: str
    url: str
    study: str
    sampler: str
    pruner: str
    target: int  # finished trials the study should reach
    metric: str
    iwae_k: int
    seed: int
    space: dict  # SearchSpace.to_dict()
    base: dict  # the fixed TrainConfig settings of every trial
    epochs: int
    deadline: float | None  # time.time() after which no new trial starts
    worker: int = 0
    threads: int | None = None  # torch threads of a spawned worker
    parent: int | None = None  # a spawned worker stops when its parent process is gone
    quiet: bool = False
    log: str | None = None  # --log: each trial's run goes to this tracker (vaekit.tracking)
    log_uri: str | None = None  # MLflow's tracking URI (the tune folder's mlruns unless given)

    def search_space(self) -> SearchSpace:
        """The search space, rebuilt from its plain form."""
        d = self.space
        return parse_space({**d["fixed"], **d["params"]}, "space")


def make_sampler(name: str, space: SearchSpace, seed: int, trials: int):
    """The Optuna sampler ``name`` (one of :data:`SAMPLERS`) seeded with ``seed``; ``trials`` sizes TPE's
    random start-up."""
    import optuna

    if name == "grid":  # the same seed in every worker: trial k runs grid point k of one shuffled order
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(4, min(10, trials // 3)),
                                      multivariate=True, constant_liar=True)


def make_pruner(name: str, epochs: int):
    """``median``: stop a trial whose best validation −ELBO so far is worse than the median of completed
    trials at the same epoch (after 4 completed trials and a warm-up of epochs/5); ``hyperband``:
    successive halving brackets from epochs/10 to ``epochs``; ``none``."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=max(1, epochs // 5))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, epochs // 10), max_resource=epochs,
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


def format_params(params: dict) -> str:
    """``params`` as one short line, ``lr=0.001 hidden=256,128`` (floats to 3 significant digits)."""
    def one(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}"
        if isinstance(v, list):
            return ",".join(str(x) for x in v)
        return str(v)

    return " ".join(f"{k}={one(v)}" for k, v in params.items())
