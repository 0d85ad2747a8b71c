"""Old import path of :mod:`vaekit.tuning.report` (moved there; kept so existing code keeps working)."""

import sys

from .tuning import report as _module

sys.modules[__name__] = _module
