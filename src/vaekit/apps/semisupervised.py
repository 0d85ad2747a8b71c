"""Semi-supervised learning with M2 (Kingma et al. 2014): the model lives in :mod:`vaekit.families.m2` and
trains through the one :class:`~vaekit.training.Trainer`; this module keeps their old names importable."""

from __future__ import annotations

from ..families.m2 import M2, Classifier, check_labeled  # noqa: F401 (re-exported)
