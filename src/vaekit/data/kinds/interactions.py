"""Interactions (implicit feedback for recommendation): a ``user,item[,rating]`` CSV/Parquet as a sparse
user × item matrix (:mod:`vaekit.data.interactions`), split by users as Liang et al. (2018) do.

Claim rule: a CSV/Parquet is also a table, and a file alone cannot say which it is, so this kind never claims
a source by itself; it is chosen by the setting that needs it: a family whose ``data_kind`` is
``"interactions"`` (``mult-vae``, ``mult-dae``) loads its data with ``load_source(..., kind="interactions")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import DataError
from ..dataset import Dataset
from .base import DataKind


class InteractionsKind(DataKind):
    name = "interactions"
    bernoulli_ok = False
    sparse = True
    loss_note = "losses are multinomial log-likelihoods of a user's items"

    def claims(self, source: str, path: Path | None) -> bool:
        return False  # chosen by the family (see the module's docstring), never by the file alone

    def named(self, source: str) -> bool:
        from ..recsys import is_recsys_source

        return is_recsys_source(source)  # ml-20m (downloaded into the cache), netflix:PATH

    def load(self, source: str, path: Path | None, *, user_column: str = "user", item_column: str = "item",
             rating_column: str = "rating", min_rating: float | None = None, min_user_items: int = 1,
             cache_dir: Any = None, download: bool = True, **_: Any) -> Dataset:
        from ..interactions import MATRIX_SUFFIXES, interactions_from_table, read_interactions, read_matrix, torch_csr
        from ..tables import is_table_path

        if self.named(source):  # columns renamed to user,item,rating by the loader: the defaults fit
            from ..recsys import load_recsys_table

            table = load_recsys_table(source, cache_dir, download)
            inter = interactions_from_table(table, source, min_rating=min_rating, min_user_items=min_user_items)
        elif path is not None and path.is_file() and path.suffix.lower() in MATRIX_SUFFIXES:
            inter = read_matrix(path, min_rating=min_rating, min_user_items=min_user_items)
        elif path is None or not path.is_file() or not is_table_path(path):
            raise DataError(f"interactions are read from a .csv/.parquet file of user,item rows or a users x items "
                            f"matrix (.npz from scipy.sparse.save_npz, .mtx), not {source}")
        else:
            inter = read_interactions(path, user_column=user_column, item_column=item_column,
                                      rating_column=rating_column, min_rating=min_rating,
                                      min_user_items=min_user_items)
        return Dataset(x=torch_csr(inter.matrix), kind=self.name, name=source, interactions=inter)

    def load_options(self, config: Any, info: dict) -> dict[str, Any]:
        return {"kind": self.name, **source_options(config)}

    def split(self, ds: Dataset, config: Any):
        from ..interactions import split_interactions

        return split_interactions(ds.interactions, config.val_fraction, config.test_fraction, config.seed)

    def default_likelihood(self, in_unit: bool, mixed: bool) -> str:
        return "multinomial"


def source_options(config: Any) -> dict[str, Any]:
    """The loader settings of interactions in a config (column names, rating filter, thin users)."""
    return {"user_column": config.user_column, "item_column": config.item_column,
            "rating_column": config.rating_column, "min_rating": config.min_rating,
            "min_user_items": config.min_user_items}
