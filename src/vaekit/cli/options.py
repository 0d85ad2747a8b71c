"""The options of ``vaekit train``, generated from :class:`~vaekit.config.TrainConfig`'s fields: a new setting
is one field there (type, default, range, ``description``) and it becomes ``--its-name`` here, with its help
and default, and reaches the config under its own name. Unset flags stay None and never override YAML."""

from __future__ import annotations

import inspect
import types
from typing import Any, Optional, Union, get_args, get_origin

import typer

from ..config import TrainConfig, flag_name
from .common import int_list

#: fields whose option the command writes itself (``--data`` lists the sources it accepts)
HAND_WRITTEN = ("data",)


def with_default(text: str, field: str) -> str:
    """``text`` plus TrainConfig's default for ``field``, read from the model (never re-typed here), so
    `vaekit train --help` shows the defaults while the flags themselves stay None and never override YAML."""
    value = TrainConfig.model_fields[field].get_default(call_default_factory=True)
    if value is None:
        return text
    if isinstance(value, bool):
        shown = str(value).lower()
    elif isinstance(value, list):
        shown = ",".join(str(v) for v in value)
    else:
        shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text} \\[default: {shown}]"  # \\[: a literal bracket in rich markup


def _base(annotation: Any) -> Any:
    """The annotation without ``| None``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _list_item(annotation: Any) -> Any | None:
    """The item type of a list field (``hidden: list[int]``), else None."""
    base = _base(annotation)
    return get_args(base)[0] if get_origin(base) is list else None


def _cli_type(annotation: Any) -> type:
    """What the option parses: int, float and bool as themselves; names (Literal) and lists as text."""
    base = _base(annotation)
    return base if base in (int, float, bool, str) else str


def config_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per TrainConfig field (except :data:`HAND_WRITTEN`), each a Typer option."""
    params = []
    for name, field in TrainConfig.model_fields.items():
        if name in HAND_WRITTEN:
            continue
        kind, flag = _cli_type(field.annotation), flag_name(name)
        help_text = field.description or ""
        if _list_item(field.annotation) is not None:
            help_text += " (comma-separated)"
        decls = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
        option = typer.Option(None, *decls, help=with_default(help_text, name))
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=Optional[kind]))
    return params


def config_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig settings among a command's arguments: unset options dropped, comma lists parsed."""
    out: dict[str, Any] = {}
    for name, field in TrainConfig.model_fields.items():
        value = values.get(name)
        if value is None or name in HAND_WRITTEN:
            continue
        item = _list_item(field.annotation)
        if item is int:
            value = int_list(value, flag_name(name))
        elif item is not None:
            value = [v.strip() for v in value.split(",") if v.strip()] or None
        if value is not None:
            out[name] = value
    return out
