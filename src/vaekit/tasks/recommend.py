"""Recommendations from a trained ``mult-vae``/``mult-dae`` run: fold in any user's history (a user seen in
training or a new one: the encoder only needs the items), rank the catalogue by the decoder's multinomial
probabilities and return the top k items that are not in the history.

Histories name items by the run's own ids (``config.json["data"]["items"]``); items the run never saw are
ignored and counted, and a user left with no known item is skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, UsageError


@dataclass
class Recommendations:
    """Per user (in input order), the top items as (item id, probability) best first; what was left out."""

    items: dict[str, list[tuple[str, float]]]
    unknown_rows: int = 0  # history rows naming an item the run never saw (ignored)
    skipped_users: list[str] = field(default_factory=list)  # no known item left in their history
    duplicate_rows: int = 0  # history rows repeating a (user, item) pair (counted once)


def _catalogue(trained: Any) -> list[str]:
    items = trained.info.get("data", {}).get("items")
    from ..families import FAMILIES, family_name

    if FAMILIES[family_name(trained.config)].example_model or not items:
        raise UsageError(f"{trained.run_dir or 'this model'} is not a recommendation run (train one with "
                         "--family mult-vae on a user,item file); it cannot recommend")
    return items


def recommend(trained: Any, histories: dict[str, list[str]], k: int, batch_size: int = 1024,
              clicks: dict[str, list[str]] | None = None) -> Recommendations:
    """The top ``k`` unseen items of each user in ``histories`` (user id → item ids seen). ``clicks`` (same
    shape; default: the histories) are what is folded in, when only part of what a user has seen counts as a
    click (ratings below the run's ``min_rating``); every item of ``histories`` is excluded all the same."""
    items = _catalogue(trained)
    n_items = len(items)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise UsageError(f"--k must be a positive number of items, got {k!r}")
    if k > n_items:
        raise UsageError(f"--k {k} is more than the run's catalogue of {n_items} items; ask for at most {n_items}")
    if not histories:
        raise DataError("the history is empty: give at least one user with one item")
    index = {item: j for j, item in enumerate(items)}
    clicks = histories if clicks is None else clicks
    unknown, users, seen_rows, click_rows, skipped, duplicates = 0, [], [], [], [], 0
    for user, seen in histories.items():
        known = [index[i] for i in seen if i in index]
        unknown += len(seen) - len(known)
        duplicates += len(known) - len(set(known))
        clicked = [index[i] for i in clicks.get(user, []) if i in index]
        if not clicked:
            skipped.append(user)
            continue
        users.append(user)
        seen_rows.append(sorted(set(known)))
        click_rows.append(sorted(set(clicked)))
    if not users:
        raise DataError(f"no user's history names an item the run knows ({unknown} unknown item row(s)); "
                        f"the run's items look like {', '.join(map(repr, items[:3]))}")
    model, dev = trained.model.eval(), trained.device
    out: dict[str, list[tuple[str, float]]] = {}
    with torch.no_grad():
        for s in range(0, len(users), batch_size):
            x = _dense(click_rows[s: s + batch_size], n_items).to(dev)
            seen = _dense(seen_rows[s: s + batch_size], n_items).to(dev)
            prob = torch.softmax(model.scores(x).float(), dim=1).masked_fill(seen > 0, -1.0)
            top = prob.topk(k, dim=1)
            for r, user in enumerate(users[s: s + batch_size]):
                out[user] = [(items[j], float(p)) for j, p in zip(top.indices[r].tolist(), top.values[r].tolist())
                             if p >= 0]  # fewer than k when the history covers nearly the whole catalogue
    return Recommendations(out, unknown, skipped, duplicates)


def _dense(rows: list[list[int]], n_items: int) -> torch.Tensor:
    x = torch.zeros(len(rows), n_items)
    for r, cols in enumerate(rows):
        x[r, cols] = 1.0
    return x


def read_histories(path: Path, trained: Any, user_column: str | None = None, item_column: str | None = None
                   ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(everything each user has seen, what counts as a click) from a user,item[,rating] file, with the
    run's column names unless given and its ``min_rating`` (rows rated below it are seen, not clicks)."""
    from ..data.table_io import read_table

    cfg = trained.config
    ucol, icol = user_column or cfg.user_column, item_column or cfg.item_column
    table = read_table(path)
    for col, flag in ((ucol, "--user-column"), (icol, "--item-column")):
        if col not in table.column_names:
            raise DataError(f"{path} has no column {col!r} (columns: {', '.join(table.column_names[:10])}); "
                            f"name it with {flag}")
    from ..data.interactions import column_strings

    users, items = column_strings(table, ucol, path), column_strings(table, icol, path)
    if not users:
        raise DataError(f"{path} has no rows: give at least one user,item row")
    rated = cfg.min_rating is not None and cfg.rating_column in table.column_names
    ratings = table.column(cfg.rating_column).to_numpy(zero_copy_only=False).astype(float) if rated else None
    seen: dict[str, list[str]] = {}
    clicks: dict[str, list[str]] = {}
    for r, (u, i) in enumerate(zip(users, items)):
        seen.setdefault(u, []).append(i)
        clicks.setdefault(u, [])
        if ratings is None or ratings[r] >= cfg.min_rating:
            clicks[u].append(i)
    return seen, clicks


def write_recommendations(recs: Recommendations, out: Path) -> int:
    """``user,item,score,rank`` rows (score: the multinomial probability), atomically; returns the row count."""
    import csv
    import io

    from ..runs import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["user", "item", "score", "rank"])
    n = 0
    for user, ranked in recs.items.items():
        for rank, (item, p) in enumerate(ranked, 1):
            w.writerow([user, item, f"{p:.6g}", rank])
            n += 1
    atomic_write_text(out, buf.getvalue())
    return n
