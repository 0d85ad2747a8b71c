"""Evaluation and reporting: the numbers (−ELBO, IWAE bounds, active units; :mod:`.metrics`), latent-space
tools (:mod:`.latent`), figures (:mod:`.figures`) and the self-contained HTML report (:mod:`.report`)."""

from .metrics import (  # noqa: F401 (the names `vaekit.evaluation` had before it became a package)
    ACTIVE_THRESHOLD,
    active_units,
    collapse_warning,
    elbo_parts,
    elbo_summary,
    evaluate,
    evaluate_elbo,
    importance_bounds,
    iwae_bound,
    kl_per_dim,
    marginal_iwae,
    posterior_stats,
    reconstruction_error,
    reconstruction_errors,
)
from ..core.objectives import gaussian_kl  # noqa: F401,E402 (importable from vaekit.evaluation, as before)
