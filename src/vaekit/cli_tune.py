"""Old import path of :mod:`vaekit.cli.tune` (moved there; kept so existing code keeps working)."""

import sys

from .cli import tune as _module

sys.modules[__name__] = _module
