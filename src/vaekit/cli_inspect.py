"""Old import path of :mod:`vaekit.cli.inspection` (moved there; kept so existing code keeps working)."""

import sys

from .cli import inspection as _module

sys.modules[__name__] = _module
