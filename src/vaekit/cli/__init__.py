"""The ``vaekit`` command line: a thin face over :mod:`vaekit.api` (no maths here), commands grouped by job.

- :mod:`.train`: ``vaekit train`` (its options generated from ``TrainConfig`` by :mod:`.options`);
- :mod:`.use`: sample, reconstruct, encode, denoise;
- :mod:`.inspection`: evaluate, report, interpolate, traverse, latent-map, probe, classify;
- :mod:`.complete`: impute, inpaint; :mod:`.anomaly`: score; :mod:`.tune`: tune; :mod:`.export`: export (ONNX);
- :mod:`.recommend`: recommend; :mod:`.explore`: explore (the browser explorer); :mod:`.series`: forecast (and the
  series branches of score/impute/evaluate); :mod:`.audio`: convert (and the audio branches of sample, reconstruct,
  interpolate); :mod:`.sequences`: the string branches of sample/reconstruct/encode/interpolate; :mod:`.optimize`:
  optimize (molecules);
- :mod:`.common`: the app, the one place failures become one line and an exit code, shared helpers.

Flag names and the run-directory layout are stable: users' scripts rely on them. Bad input ends in one
line on stderr naming the problem and the fix, and exit code 2. torch is imported only inside the
commands that need it, so ``vaekit --help`` starts quickly.
"""

from __future__ import annotations

import typer

from . import anomaly, complete, export, inspection, train, tune, use  # noqa: F401 (each registers its commands)
from . import recommend  # noqa: F401,E402 (vaekit recommend)
from . import explore  # noqa: F401,E402 (vaekit explore)
from . import series  # noqa: F401,E402 (vaekit forecast; the series branches of score and impute)
from . import audio  # noqa: F401,E402 (vaekit convert; audio branches of reconstruct, sample, interpolate)
from . import optimize  # noqa: F401,E402 (vaekit optimize: seq-vae runs of molecules)
from .common import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    from .._threads import cli_environment

    problem = cli_environment()  # before torch is imported: OpenMP reads its settings once, when it starts
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise SystemExit(2)
    app(prog_name="vaekit")
