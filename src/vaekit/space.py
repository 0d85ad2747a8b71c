"""Old import path of :mod:`vaekit.tuning.space` (moved there; kept so existing code keeps working)."""

import sys

from .tuning import space as _module

sys.modules[__name__] = _module
