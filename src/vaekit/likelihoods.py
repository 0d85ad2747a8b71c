"""Old import path of :mod:`vaekit.core.likelihoods` (moved there; kept so existing code keeps working)."""

import sys

from .core import likelihoods as _module

sys.modules[__name__] = _module
