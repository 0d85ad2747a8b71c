"""Old import path of :mod:`vaekit.core.networks` (moved there; kept so existing code keeps working)."""

import sys

from .core import networks as _module

sys.modules[__name__] = _module
