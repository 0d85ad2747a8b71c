"""``vaekit recommend``: the top items for each user of a history file, from a mult-vae / mult-dae run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import app, check_out_file, user_errors


@app.command()
@user_errors
def recommend(
    run: Path = typer.Argument(..., help="run directory of a mult-vae, mult-dae or recvae run"),
    data: Path = typer.Option(..., "--data", help="user,item[,rating] CSV/Parquet: the histories to fold in"),
    out: Path = typer.Option(..., "--out", help="FILE.csv of user,item,score,rank rows"),
    k: int = typer.Option(20, "--k", help="items per user"),
    user_column: Optional[str] = typer.Option(None, "--user-column", help="\\[default: as in training]"),
    item_column: Optional[str] = typer.Option(None, "--item-column", help="\\[default: as in training]"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it exists"),
) -> None:
    """Recommend the top K items each user has not seen yet (users seen in training or new ones: the history
    is folded in). Scores are the model's multinomial probabilities."""
    check_out_file(out, overwrite, (".csv",))
    from ..api import load
    from ..errors import DataError
    from ..tasks.recommend import read_histories, recommend as recommend_items, write_recommendations

    trained = load(run)
    if not data.is_file():
        raise DataError(f"no such file: {data} (give the user,item history to recommend for)")
    seen, clicks = read_histories(data, trained, user_column, item_column)
    recs = recommend_items(trained, seen, k, clicks=clicks)
    rows = write_recommendations(recs, out)
    if recs.unknown_rows or recs.skipped_users:
        typer.echo(f"note: ignored {recs.unknown_rows} history row(s) naming items the run never saw; "
                   f"{len(recs.skipped_users)} user(s) with no known clicked item got no recommendations", err=True)
    if recs.duplicate_rows:
        typer.echo(f"note: {recs.duplicate_rows} history row(s) repeat a (user, item) pair; each pair counts once",
                   err=True)
    typer.echo(f"wrote {rows} recommendations for {len(recs.items)} user(s) to {out}")
