"""Semi-supervised learning with M2 (Kingma et al. 2014): the model lives in :mod:`vaekit.families.m2` and
trains through the one :class:`~vaekit.training.Trainer`; this module keeps its old names importable and
the check of the ``--labeled`` count."""

from __future__ import annotations

from ..errors import UsageError
from ..families.m2 import M2, Classifier  # noqa: F401 (re-exported)


def check_labeled(labeled: int | None, n_labelled_available: int) -> int:
    if labeled is None:
        raise UsageError("--semi-supervised needs --labeled N, the number of training labels to keep "
                         "(or data whose unknown labels are marked -1)")
    if labeled < 1 or labeled > n_labelled_available:
        raise UsageError(f"--labeled {labeled} is out of range: the training split has {n_labelled_available} "
                         "labelled examples")
    return labeled
