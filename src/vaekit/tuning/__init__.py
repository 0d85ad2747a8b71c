"""Hyperparameter search (``vaekit tune``): the search space (:mod:`.space`), the command (:mod:`.study`),
the study's database (:mod:`.storage`), samplers, pruners and results (:mod:`.job`), one trial
(:mod:`.objective`), the worker processes (:mod:`.workers`) and what a search writes (:mod:`.report`)."""

# the names `vaekit.tuning` had before it became a package
from .job import METRICS, PRUNERS, SAMPLERS, TuneResult, make_pruner, make_sampler  # noqa: F401
from .storage import GRACE_S, HEARTBEAT_S, open_storage, trial_counts  # noqa: F401
from .study import TUNE_JSON, tune  # noqa: F401
from .workers import run_worker  # noqa: F401
from .space import SearchSpace, load_space, parse_space  # noqa: F401,E402 (importable from vaekit.tuning, as before)
