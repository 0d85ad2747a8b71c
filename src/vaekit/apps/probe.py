"""Old import path of :mod:`vaekit.tasks.probe` (moved there; kept so existing code keeps working)."""

import sys

from ..tasks import probe as _module

sys.modules[__name__] = _module
