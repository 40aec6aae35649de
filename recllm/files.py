"""Reading the small user-written files recllm takes (YAML configs, JSONL answer files) with
one-line errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recllm.errors import RecllmError


def read_yaml_mapping(path: str | Path, *, what: str, hint: str) -> dict[str, Any]:
    """The mapping in a YAML file (`{}` when empty); `what` names it in errors ("a config
    file"), `hint` says what to pass when the file is missing."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise RecllmError(f"{what} not found", where=str(file), hint=hint)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RecllmError(f"not valid YAML: {str(exc).splitlines()[0]}", where=str(file)) from None
    if not isinstance(data, dict):
        raise RecllmError(f"{what} must be a mapping of keys to values", where=str(file))
    return data


def json_objects(path: Path, *, hint: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`file:line`, object) for each non-blank line of a JSONL file; a missing file, a line
    that is not JSON or not an object is an error naming it."""
    if not path.is_file():
        raise RecllmError("no such answers file", where=str(path), hint=hint)
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecllmError(f"not valid JSON ({exc.msg})", where=where) from None
            if not isinstance(row, dict):
                raise RecllmError("each line must be a JSON object", where=where)
            yield where, row
