"""Old import path of :mod:`vaekit.core.vae` (moved there; kept so existing code keeps working)."""

import sys

from .core import vae as _module

sys.modules[__name__] = _module
