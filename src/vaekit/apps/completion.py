"""Old import path of :mod:`vaekit.tasks.completion` (moved there; kept so existing code keeps working)."""

import sys

from ..tasks import completion as _module

sys.modules[__name__] = _module
