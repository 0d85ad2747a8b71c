"""Implicit feedback: a ``user,item[,rating]`` table as a sparse user × item matrix (CSR, scipy, on the host),
its user and item id maps, and the strong-generalization split of Liang et al. (2018): validation and test
users are held out whole; for each, 80% of their items are folded in (the model's input) and 20% scored.

Only a batch is ever dense (:func:`dense_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ._common import one_line
from .dataset import Split

#: the fraction of a held-out user's items that is scored (the rest is folded in), as in Liang et al.
HELDOUT_FRACTION = 0.2
#: held-out users with fewer items are folded in whole and not scored (Liang et al.'s code: 5)
MIN_SCORED_USER_ITEMS = 5


@dataclass
class Interactions:
    """A binary user × item matrix (``scipy.sparse.csr_matrix`` of float32 ones) and the ids of its rows
    (``users``) and columns (``items``), as text."""

    matrix: Any
    users: list[str]
    items: list[str]

    def fingerprint_parts(self) -> list[np.ndarray]:
        m = self.matrix
        return [m.indptr.astype(np.int64), m.indices.astype(np.int64), np.asarray(m.shape, dtype=np.int64)]


@dataclass
class InteractionSplit(Split):
    """A split of users: ``fold`` (CSR) is what the encoder sees (all items of a training user, 80% of a
    held-out user's), ``heldout`` (CSR, same rows; None for training) the items scored; ``x`` is ``fold`` as a
    torch sparse CSR tensor (its shape and length are the split's)."""

    fold: Any = None
    heldout: Any = None
    user_index: np.ndarray | None = None  # rows of the full matrix (into Interactions.users)


def column_strings(table, name: str, path: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(name)
    if col.null_count:
        raise DataError(f"column {name!r} of {path} has {col.null_count} empty cell(s); fill or drop those rows")
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    return col.to_pylist()


def _codes(table, name: str, path: Path) -> tuple[np.ndarray, list[str]]:
    """(each row's id code, the distinct ids in sorted order) of a column, without a Python string per row:
    pyarrow's dictionary encoding, then the codes renumbered by sorted id."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(name)
    if col.null_count:
        raise DataError(f"column {name!r} of {path} has {col.null_count} empty cell(s); fill or drop those rows")
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    enc = pc.dictionary_encode(col.combine_chunks())
    ids = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    order = np.argsort(ids.astype(str), kind="stable")
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    return rank[enc.indices.to_numpy(zero_copy_only=False)], [str(v) for v in ids[order]]


def read_interactions(path: Path, *, user_column: str = "user", item_column: str = "item",
                      rating_column: str = "rating", min_rating: float | None = None,
                      min_user_items: int = 1) -> Interactions:
    """Read a CSV/Parquet of interactions into an :class:`Interactions` (ids sorted as text).

    With ``min_rating`` only rows rated at least that count (as 1); without it every row is a click.
    Users with fewer than ``min_user_items`` items are dropped (after the rating filter). A repeated
    (user, item) row, a missing column and an empty result are one-line :class:`DataError` s."""
    from .table_io import read_table

    return interactions_from_table(read_table(path), path, user_column=user_column, item_column=item_column,
                                   rating_column=rating_column, min_rating=min_rating, min_user_items=min_user_items)


def interactions_from_table(table, path: Path | str, *, user_column: str = "user", item_column: str = "item",
                            rating_column: str = "rating", min_rating: float | None = None,
                            min_user_items: int = 1) -> Interactions:
    """:func:`read_interactions` of a pyarrow table already read (``path`` names it in messages)."""
    import scipy.sparse as sp

    needed = [user_column, item_column] + ([rating_column] if min_rating is not None else [])
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        flags = {user_column: "--user-column", item_column: "--item-column", rating_column: "--rating-column"}
        raise DataError(f"{path} has no column {missing[0]!r} (columns: {', '.join(table.column_names[:10])}); "
                        f"name it with {flags[missing[0]]}")
    u, u_ids = _codes(table, user_column, path)
    i, i_ids = _codes(table, item_column, path)
    if min_rating is not None:
        try:
            r = table.column(rating_column).to_numpy(zero_copy_only=False).astype(np.float64)
        except (TypeError, ValueError):
            raise DataError(f"column {rating_column!r} of {path} is not numeric; --min-rating needs numbers") from None
        keep = r >= min_rating
        u, i = u[keep], i[keep]
    if len(u) == 0:
        raise DataError(f"{path} has no interactions" + (f" rated >= {min_rating:g}" if min_rating is not None else "")
                        + "; check the file" + (" or lower --min-rating" if min_rating is not None else ""))
    pairs = u.astype(np.int64) * len(i_ids) + i
    uniq, first, counts = np.unique(pairs, return_index=True, return_counts=True)
    if len(uniq) < len(pairs):
        dup = int(first[np.argmax(counts > 1)])
        raise DataError(f"{path} has {len(pairs) - len(uniq)} repeated (user, item) row(s), e.g. user "
                        f"{u_ids[u[dup]]!r} item {i_ids[i[dup]]!r}; keep one row per pair")
    m = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(len(u_ids), len(i_ids)))
    return _thin(m, [str(v) for v in u_ids], [str(v) for v in i_ids], min_user_items, path)


def _thin(m: Any, u_ids: list[str], i_ids: list[str], min_user_items: int, path: Path) -> Interactions:
    """Drop users with fewer than ``min_user_items`` items (at least 1), and the items no user has left."""
    u_ids, i_ids = np.asarray(u_ids, dtype=object), np.asarray(i_ids, dtype=object)
    rows = np.flatnonzero(np.diff(m.indptr) >= max(min_user_items, 1))
    m, u_ids = m[rows], u_ids[rows]
    cols = np.flatnonzero(np.asarray(m.sum(0)).ravel() > 0)
    m, i_ids = m[:, cols].tocsr(), i_ids[cols]
    if m.shape[0] == 0:
        raise DataError(f"no user of {path} has {max(min_user_items, 1)} or more items; lower --min-user-items")
    m.sort_indices()
    return Interactions(m, [str(v) for v in u_ids], [str(v) for v in i_ids])


MATRIX_SUFFIXES = (".npz", ".mtx")


def read_matrix(path: Path, *, min_rating: float | None = None, min_user_items: int = 1) -> Interactions:
    """A users × items matrix saved by ``scipy.sparse.save_npz`` (``.npz``, never unpickled) or as Matrix
    Market (``.mtx``): a stored value > 0 is a click (with ``min_rating``: a value >= it). Users and items are
    named by their row and column numbers."""
    import scipy.io
    import scipy.sparse as sp

    try:
        m = sp.load_npz(path) if path.suffix.lower() == ".npz" else scipy.io.mmread(str(path))
        m = sp.csr_matrix(m)
    except (ValueError, OSError, KeyError, TypeError, EOFError) as exc:
        how = "scipy.sparse.save_npz" if path.suffix.lower() == ".npz" else "scipy.io.mmwrite"
        raise DataError(one_line(f"cannot read {path} as a sparse users x items matrix ({exc}); save it with "
                                 f"{how}")) from None
    if m.dtype.kind not in "biuf" or (m.dtype.kind == "f" and not np.isfinite(m.data).all()):
        raise DataError(f"{path} must hold finite numbers (clicks or ratings), not {m.dtype}")
    keep = m.data >= min_rating if min_rating is not None else m.data > 0
    m = sp.csr_matrix((keep.astype(np.float32), m.indices, m.indptr), shape=m.shape)
    m.eliminate_zeros()
    if m.nnz == 0:
        raise DataError(f"{path} has no interactions" + (f" rated >= {min_rating:g}" if min_rating is not None
                                                          else "") + "; check the file")
    return _thin(m, [str(r) for r in range(m.shape[0])], [str(c) for c in range(m.shape[1])], min_user_items, path)


def torch_csr(m: Any) -> torch.Tensor:
    """A scipy CSR matrix as a torch sparse CSR tensor (float32): the splits' ``x`` (shape and length)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                       torch.from_numpy(m.indices.astype(np.int64)),
                                       torch.from_numpy(m.data.astype(np.float32)), size=m.shape,
                                       check_invariants=False)


def dense_rows(m: Any, rows: np.ndarray | slice | None = None) -> torch.Tensor:
    """Rows of a CSR matrix as a dense float32 tensor (one batch)."""
    part = m if rows is None else m[rows]
    return torch.from_numpy(np.asarray(part.toarray(), dtype=np.float32))


def _split_items(m: Any, rows: np.ndarray, rng: np.random.Generator) -> tuple[Any, Any]:
    """(fold-in, held-out) CSR matrices of ``rows``: each user with at least ``MIN_SCORED_USER_ITEMS`` items
    has ``int(0.2 n)`` of them, drawn with ``rng``, held out."""
    import scipy.sparse as sp

    sub = m[rows].tocsr()
    fold_r, fold_c, held_r, held_c = [], [], [], []
    for r in range(sub.shape[0]):
        items = sub.indices[sub.indptr[r]: sub.indptr[r + 1]]
        n = len(items)
        held = np.zeros(n, dtype=bool)
        if n >= MIN_SCORED_USER_ITEMS:
            held[rng.choice(n, size=int(HELDOUT_FRACTION * n), replace=False)] = True
        fold_r.append(np.full(int((~held).sum()), r)), fold_c.append(items[~held])
        held_r.append(np.full(int(held.sum()), r)), held_c.append(items[held])
    shape = sub.shape

    def csr(r: list, c: list) -> Any:
        rr = np.concatenate(r) if r else np.zeros(0, np.int64)
        cc = np.concatenate(c) if c else np.zeros(0, np.int64)
        out = sp.csr_matrix((np.ones(len(rr), np.float32), (rr, cc)), shape=shape)
        out.sort_indices()
        return out

    return csr(fold_r, fold_c), csr(held_r, held_c)


def split_interactions(inter: Interactions, val_fraction: float, test_fraction: float,
                       seed: int) -> tuple[InteractionSplit, InteractionSplit, InteractionSplit]:
    """Strong generalization (Liang et al. 2018): users shuffled with ``seed``; ``val_fraction`` and
    ``test_fraction`` of them held out whole, each with 20% of its items scored and the rest folded in."""
    m = inter.matrix
    n = m.shape[0]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_val = int(round(val_fraction * n)) if n >= 3 else 0
    n_test = int(round(test_fraction * n)) if n >= 3 else 0
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    parts = (np.sort(perm[n_val + n_test:]), np.sort(perm[:n_val]), np.sort(perm[n_val:n_val + n_test]))
    out = []
    for k, rows in enumerate(parts):
        if k == 0:
            fold, held = m[rows].tocsr(), None
        else:
            fold, held = _split_items(m, rows, rng)
        out.append(InteractionSplit(x=torch_csr(fold), fold=fold, heldout=held, user_index=rows))
    return tuple(out)  # type: ignore[return-value]
