"""Hyperparameter search: the search space (:mod:`.space`), the Optuna study over ordinary runs
(:mod:`.study`) and what it writes (:mod:`.report`)."""

from .study import (  # noqa: F401 (the names `vaekit.tuning` had before it became a package)
    GRACE_S,
    HEARTBEAT_S,
    METRICS,
    PRUNERS,
    SAMPLERS,
    TUNE_JSON,
    TuneResult,
    make_pruner,
    make_sampler,
    open_storage,
    run_worker,
    trial_counts,
    tune,
)
