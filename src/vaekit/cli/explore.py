"""``vaekit explore``: serve a run's latent explorer on a local web page (see :mod:`vaekit.explorer`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from .common import app, user_errors


@app.command("explore")
@user_errors
def explore(
    run: Path = typer.Argument(..., help="run directory"),
    data: Optional[str] = typer.Option(None, "--data", help="data to map \\[default: the test split of the run's "
                                       "own data (validation when it has no test split)]"),
    port: int = typer.Option(8000, "--port", help="TCP port (0: any free port)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on; anything but loopback lets "
                             "other machines use the explorer"),
    method: str = typer.Option("pca", "--method", help="pca or tsne: how latents over 2-D are mapped"),
    limit: int = typer.Option(2000, "--limit", help="map at most this many examples"),
) -> None:
    """A local web page: the 2-D map of encoded data, decode any point, sliders by KL, interpolation."""
    if method not in ("pca", "tsne"):
        raise UsageError(f"--method must be pca or tsne, got {method!r}")
    if not 3 <= limit <= 100_000:
        raise UsageError(f"--limit must be between 3 and 100000, got {limit}")
    from ..explorer.app import bind, create_app, require_packages, server, url

    require_packages()  # before anything is loaded: one line naming the extra
    sock = bind(host, port)
    try:
        from ..explorer.session import open_explorer

        explorer = open_explorer(run, data, method, limit)
        if host not in ("127.0.0.1", "localhost", "::1"):
            typer.echo(f"note: listening on {host}: anyone who can reach this machine can use the explorer", err=True)
        typer.echo(f"exploring {run}: {explorer.n} examples of {explorer.data.source} at {url(sock)} (Ctrl-C stops)")
        server(create_app(explorer, host), log_level="warning").run(sockets=[sock])
    finally:
        sock.close()
