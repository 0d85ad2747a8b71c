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


# -- what the CLI prints for any exception (one line, capped) -------------------------------------------
MAX_MESSAGE = 500  # characters of an error line; a YAML "billion laughs" once made a 226 MB one
REPORT = "please report it with the command you ran (README, section Errors; VAEKIT_DEBUG=1 shows the traceback)"

# errno → (exit code, what happened, what to do); 2 = the user's environment, which the user can change
_OS_ERRORS = {
    "EACCES": (2, "permission denied", "check its permissions or choose another path"),
    "EPERM": (2, "operation not permitted", "check its permissions or choose another path"),
    "EROFS": (2, "read-only file system", "choose a writable location"),
    "ENOSPC": (2, "disk full", "free some space or write elsewhere"),
    "EDQUOT": (2, "disk quota exceeded", "free some space or write elsewhere"),
    "EFBIG": (2, "file too large for this file system", "write elsewhere"),
    "EISDIR": (2, "is a directory, where a file is expected", "give a file path"),
    "ENOTDIR": (2, "a part of the path is not a directory", "check the path"),
    "ENOENT": (2, "no such file or directory", "check the path"),
    "EEXIST": (2, "already exists", "choose another path"),
    "ENOTEMPTY": (2, "directory not empty", "choose another path"),
    "ELOOP": (2, "too many levels of symbolic links", "check the path's links"),
    "ENAMETOOLONG": (2, "file name too long", "choose a shorter path"),
    "EMFILE": (2, "too many open files", "raise the limit (ulimit -n)"),
    "ENFILE": (2, "too many open files in the system", "close other programs or raise the limit"),
    "ENOMEM": (2, "out of memory", "ask for less or use a machine with more memory"),
    "EIO": (1, "input/output error", "the disk or network file system failed; check it"),
}


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line (line breaks become spaces), cut to ``limit`` characters ending in "…"."""
    head = text[: limit + 1].replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return head if len(head) <= limit and len(text) <= limit else head[: limit - 1] + "…"


def _size(nbytes: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return ""  # unreachable


def is_out_of_memory(err: BaseException) -> bool:
    """A failed allocation: MemoryError, or torch's CPU/CUDA allocator errors (RuntimeError subclasses)."""
    if isinstance(err, MemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (type(err).__name__ == "OutOfMemoryError"
                                              or "can't allocate memory" in text or "out of memory" in text.lower())


def describe_exception(err: BaseException) -> tuple[str, int]:
    """(one-line message without the ``error:`` prefix, exit code) for any exception reaching the CLI.

    vaekit's own errors keep their message and code. Errors of the user's environment (files, disks,
    memory) name what happened and what to do, with exit 2 (exit 1 for a failing disk). Anything else is
    a vaekit bug: "internal error", exit 1, and where to report it.
    """
    import errno as _errno

    if isinstance(err, VaekitError):
        return one_line(str(err)), err.exit_code
    if isinstance(err, OSError) and err.errno is not None:
        name = _errno.errorcode.get(err.errno, "")
        code, what, fix = _OS_ERRORS.get(name, (1, err.strerror or name or "operating-system error", ""))
        path = err.filename
        if name in ("ENOSPC", "EDQUOT", "EFBIG"):
            text = f"{what} while writing {path}" if path else what
        elif name == "EROFS":
            text = f"cannot write {path}: {what}" if path else what
        elif name in ("EISDIR", "EEXIST", "ENOTEMPTY") and path:
            text = f"{path} {what}"
        else:
            text = f"{path}: {what}" if path else what
        if err.filename2:
            text += f" (with {err.filename2})"
        return one_line(f"{text}; {fix}" if fix else text), code
    if is_out_of_memory(err):
        import re

        m = re.search(r"allocate (\d+) bytes", str(err))
        asked = f" (an allocation of {_size(int(m.group(1)))})" if m else ""
        return one_line(f"out of memory{asked}; ask for less (a smaller -n, --batch-size or --image-size) "
                        "or use a machine with more memory"), 2
    if isinstance(err, RecursionError):
        return one_line("a file given to vaekit is nested too deeply to read (maximum recursion depth "
                        "exceeded); give a flatter file"), 2
    first = one_line(str(err).strip(), 300)
    return one_line(f"internal error: {type(err).__name__}{': ' + first if first else ''} — {REPORT}"), 1
