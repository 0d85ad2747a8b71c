"""Old import path of :mod:`vaekit.tasks.anomaly` (moved there; kept so existing code keeps working)."""

import sys

from ..tasks import anomaly as _module

sys.modules[__name__] = _module
