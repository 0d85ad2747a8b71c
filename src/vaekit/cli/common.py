"""What every command shares: the Typer app, the one place failures become one line and an exit code, and
small helpers for flags and outputs."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from ..errors import UsageError, describe_exception, one_line


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Variational autoencoders: train on your data, then sample, reconstruct and encode.")


def fail(message: str, code: int) -> None:
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code)

# typer.Exit/Abort and click's usage errors (typer vendors click in recent versions) pass through untouched


TYPER_EXITS = (typer.Exit, typer.Abort, *[c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"])


def user_errors(fn: Callable) -> Callable:
    """Turn every exception into one capped line on stderr and an exit code (see errors.describe_exception):
    vaekit's own errors (2 for bad input), the environment's OS and memory errors (2; 1 for a failing disk),
    anything else "internal error" (1). ``VAEKIT_DEBUG=1`` prints the traceback first."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TYPER_EXITS:
            raise  # typer's own exits and usage errors
        except Exception as err:  # noqa: BLE001 - the one place every failure becomes one line
            if os.environ.get("VAEKIT_DEBUG", "") not in ("", "0"):
                import traceback

                traceback.print_exception(err, file=sys.stderr)
            if _said_by_rank0(err):
                raise typer.Exit(2)
            message, code = describe_exception(err)
            fail(message, code)

    return wrapper


def _said_by_rank0(err: Exception) -> bool:
    """Before a torchrun world forms, every rank meets the same user error: rank 0 alone says it."""
    if os.environ.get("RANK", "0") in ("", "0") or not isinstance(err, UsageError):
        return False
    dist = sys.modules.get("vaekit.training.distributed")
    return dist is None or not dist.joined


def int_list(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return []
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated integers like 400,200, got {text!r}") from None


def check_out_file(out: Path, overwrite: bool, suffixes: tuple[str, ...]) -> None:
    if out.suffix.lower() not in suffixes:
        raise UsageError(f"--out {out} has an unsupported suffix; use one of {', '.join(suffixes)}")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; pass --overwrite to replace it or choose another --out")


def write_array(values, out: Path, kind: str, columns: list[str] | None = None,
                 schema: list[dict] | None = None) -> None:
    """Write examples in the format of ``out`` (PNG grid for images, .npy, or .csv with the data's columns;
    a mixed-type table's CSV names categories), atomically: see :meth:`vaekit.data.kinds.DataKind.write`."""
    from ..data.kinds import kind_of

    kind_of(kind).write(values, out, columns, schema)


def user_condition(trained, label: Optional[str], attributes: Optional[str], n: int):
    """Condition rows from --label / --attributes (None for unconditional runs; errors for mismatches)."""
    cond = trained.conditioning
    if cond is None:
        if label is not None or attributes is not None:
            raise UsageError("this run is not conditional; drop --label/--attributes")
        return None
    if label is not None and attributes is not None:
        raise UsageError("give --label or --attributes, not both")
    if label is not None:
        return cond.labels([label] * n)
    if attributes is not None:
        from ..conditions import parse_attributes

        return cond.attributes(parse_attributes(attributes), n)
    what = f"--label (one of {', '.join(cond.classes or [])})" if cond.kind == "label" \
        else f"--attributes ({', '.join(f'{c}=...' for c in cond.columns or [])})"
    raise UsageError(f"this run is a conditional VAE: pass {what}")


def read_results(run: Path) -> dict:
    from ..runs import RESULTS, read_json

    p = run / RESULTS
    return read_json(p) if p.is_file() else {}


SPLIT_HELP = "all rows of --data, or its train, validation or test split (split like the run's own data)"


def pick_split(trained, ds, split: str, source: str):
    """Keep only ``split`` of a loaded dataset (``all`` keeps it as loaded), split as the run's data was."""
    names = ("train", "validation", "test")
    if split == "all":
        return ds
    if split not in names:
        raise UsageError(f"--split must be all, train, validation or test, got {split!r}")
    part = trained.kind.split(ds, trained.config)[names.index(split)]
    if len(part) == 0:
        raise UsageError(f"the {split} split of {source} is empty; choose another --split")
    ds.x, ds.y, ds.attributes, ds.test_x, ds.test_y = part.x, part.y, part.a, None, None
    return ds
