"""Old import path of :mod:`vaekit.evaluation.latent` (moved there; kept so existing code keeps working)."""

import sys

from .evaluation import latent as _module

sys.modules[__name__] = _module
