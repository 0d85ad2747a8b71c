"""Data kinds: one module per kind of data (images, tables, arrays; later interactions, sequences, series,
audio). A kind claims a source, loads it, splits it, fits its preprocessing, names its default likelihood and
writes outputs in its own format. Code outside this package asks the kind object, never the kind's name.

    from vaekit.data.kinds import kind_of
    kind_of(ds.kind).write(values, out)          # .png for images, .csv with the table's columns, .npy
"""

from __future__ import annotations

from .array import ArrayKind
from .audio import AudioKind
from .base import DataKind
from .image import ImageKind
from .interactions import InteractionsKind
from .series import SeriesKind
from .sequences import SequenceKind
from .table import TableKind

#: every kind, in the order sources are offered to them (the first that claims a source loads it);
#: ``interactions`` claims nothing by itself: the family that needs it asks for it by name (``load_source(kind=)``)
#: (``audio`` before ``image``: the image kind claims every folder)
KINDS: dict[str, DataKind] = {k.name: k for k in (AudioKind(), ImageKind(), TableKind(), ArrayKind(),
                                                  InteractionsKind(), SeriesKind(),
                                                  SequenceKind())}


def kind_of(name: str) -> DataKind:
    """The kind registered under ``name`` (a :class:`~vaekit.data.Dataset`'s ``kind`` or a run's
    ``data.kind``); unknown names get the plain array kind's behaviour."""
    return KINDS.get(name, KINDS["array"])


__all__ = ["DataKind", "KINDS", "kind_of"]
