"""Old import path of :mod:`vaekit.cli.anomaly` (moved there; kept so existing code keeps working)."""

import sys

from .cli import anomaly as _module

sys.modules[__name__] = _module
