"""argparse flags generated from a pydantic options model, so a field's name, type, choices and
description are written once (in the model) and the CLI and `--help` follow.

    user_col: str | None = Field(None, description="user id column")   ->   --user-col COL
    duplicates: Literal["first", "last"] = "first"                     ->   --duplicates {first,last}
    cache: bool = True                                                  ->   --cache / --no-cache
    k_core: int | None                                                  ->   --k-core K (an int)
    fields: list[str]                                                   ->   --fields A,B (a comma list)

Every flag defaults to None (not given), so only what the user typed reaches the model and
the model's own defaults and validation stay the one source.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _plain(annotation: Any) -> Any:
    """`int` for `int | None`; the annotation itself otherwise."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def flag_kwargs(name: str, field: Any, choices: Sequence[str] | None = None) -> dict[str, Any]:
    """The `add_argument` keywords for one model field."""
    kind = _plain(field.annotation)
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    kwargs: dict[str, Any] = {"help": field.description}
    if kind is bool:
        return {**kwargs, "action": argparse.BooleanOptionalAction}
    if typing.get_origin(kind) is Literal:
        choices = choices or [str(c) for c in typing.get_args(kind)]
    if choices is not None:
        return {**kwargs, "choices": list(choices)}
    if typing.get_origin(kind) in (list, tuple):
        kwargs["type"] = _comma_list
    elif kind in (int, float):
        kwargs["type"] = kind
    kwargs["metavar"] = extra.get("metavar") or name.split("_")[-1].upper()
    return kwargs


def add_model_flags(group: argparse._ActionsContainer, model: type[BaseModel], *, prefix: str,
                    choices: dict[str, Sequence[str]] | None = None, skip: Iterable[str] = ()) -> None:
    """One `--field-name` flag per field of `model`, stored as `{prefix}{field}`."""
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        group.add_argument("--" + name.replace("_", "-"), dest=prefix + name, default=None,
                           **flag_kwargs(name, field, (choices or {}).get(name)))


def model_values(args: argparse.Namespace, model: type[BaseModel], *, prefix: str) -> dict[str, Any]:
    """The fields given on the command line (flags left out are not in the dict)."""
    return {name: value for name in model.model_fields
            if (value := getattr(args, prefix + name, None)) is not None}


def markdown_table(model: type[BaseModel], *, skip: Iterable[str] = ()) -> str:
    """The README's table of a model's options: keyword, flag, description (one source)."""
    rows = ["| option | CLI | meaning |", "|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        if _plain(field.annotation) is bool:
            flag = f"{flag}` / `--no-{name.replace('_', '-')}"
        rows.append(f"| `{name}` | `{flag}` | {field.description} |")
    return "\n".join(rows)
