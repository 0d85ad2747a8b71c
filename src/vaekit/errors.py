"""Errors a user can act on.

Every error raised for bad input is a :class:`UsageError`; its message is one line that names the
problem and what to do. The CLI prints it and exits with code 2 (the usage-error convention).
"""

from __future__ import annotations


class VaekitError(Exception):
    """Base class of vaekit's own errors."""

    exit_code = 1


class UsageError(VaekitError, ValueError):
    """Bad input from the user: a missing file, a malformed table, a setting out of range."""

    exit_code = 2


class DataError(UsageError):
    """The data a user pointed vaekit at cannot be used as it is."""


class RunError(UsageError):
    """A run directory that is missing, foreign, finished, or inconsistent with its weights."""


class TrainingError(VaekitError):
    """Training cannot go on (a non-finite loss); the last good checkpoint is kept."""
