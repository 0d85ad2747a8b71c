"""Old import path of :mod:`vaekit.cli.complete` (moved there; kept so existing code keeps working)."""

import sys

from .cli import complete as _module

sys.modules[__name__] = _module
