"""Old import path of :mod:`vaekit.evaluation.report` (moved there; kept so existing code keeps working)."""

import sys

from .evaluation import report as _module

sys.modules[__name__] = _module
