"""Argument helpers shared by subcommands."""

from __future__ import annotations

from typing import Any

from recllm.errors import RecllmError


def parse_assignment(item: str, flag: str) -> tuple[str, Any]:
    """`KEY=VALUE` from a repeatable flag; the value is read as YAML, like config files
    (`8` -> 8, `true` -> True, `[a, b]` -> a list, anything else a string, empty -> None)."""
    import yaml

    key, sep, value = item.partition("=")
    if not sep or not key:
        raise RecllmError(f"{item!r} is not KEY=VALUE", where=flag)
    return key, (yaml.safe_load(value) if value else None)
