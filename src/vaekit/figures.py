"""Old import path of :mod:`vaekit.evaluation.figures` (moved there; kept so existing code keeps working)."""

import sys

from .evaluation import figures as _module

sys.modules[__name__] = _module
