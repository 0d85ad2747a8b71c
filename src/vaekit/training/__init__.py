"""Training: the one :class:`Trainer` every model family goes through (loop, β schedule, LR schedules,
early stopping on the objective's metric, checkpoints and exact resume, non-finite guard, progress)."""

from .parts import (  # noqa: F401 (the names `vaekit.training` had before it became a package)
    beta_at,
    compile_networks,
    load_optimizer_state,
    make_optimizer,
    make_scheduler,
    optimizer_state,
    resolve_device,
)
from .trainer import EpochCallback, TrainResult, Trainer  # noqa: F401
from ..core.objectives import evaluate_elbo  # noqa: F401 (importable from vaekit.training, as before)
