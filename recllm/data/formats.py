"""Data formats: one registration per format holds its name, its detector and its reader.

Each format module ends with `FORMAT = DataFormat(...)`; FORMATS maps names to them lazily
("module:attr", recllm.registry), so validating `--format` or listing the choices imports no
reader. A plugin adds a format in one file plus an entry point:

    [project.entry-points."recllm.loaders"]
    myformat = "my_package.loader:FORMAT"

Detection (no `format` given) asks each format's `detect(path)` in registry order, built-ins
first, then plugins, then the catch-all `table` (any .csv/.jsonl/.parquet ... file), so a
plugin can claim a file that would otherwise be read as a generic table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recllm.registry import Registry

if TYPE_CHECKING:  # the readers import pandas; this module must not
    from recllm.data.build import Loaded
    from recllm.data.options import LoadOptions


def _just_the_path(path: Path, options: LoadOptions) -> tuple[Path, tuple[Path, ...]]:
    if path.is_dir():
        from recllm.errors import RecllmError

        raise RecllmError("this format reads a file, not a folder", where=str(path))
    return path, (path,)


@dataclass(frozen=True)
class DataFormat:
    """A dataset format: `detect(path)` says whether a path looks like it (for guessing),
    `files(path, options)` gives (the path the reader takes, every file it may read: the cache
    key), `read(path, options)` returns the Loaded interactions + catalog."""

    name: str
    description: str
    detect: Callable[[Path], bool]
    read: Callable[[Path, LoadOptions], Loaded]
    files: Callable[[Path, LoadOptions], tuple[Path, tuple[Path, ...]]] = _just_the_path
    detected_by: str = ""         # what a path of this format looks like (README table)
    fallback: bool = False        # tried after every other format (the generic table)
    merge_duplicates: bool = True  # default of LoadOptions.merge_duplicates when not given


FORMATS = Registry("data format", "recllm.loaders", {
    "movielens": "recllm.data.movielens:FORMAT",  # before atomic: a folder holding both is MovieLens
    "atomic": "recllm.data.atomic:FORMAT",
    "amazon": "recllm.data.amazon:FORMAT",
    "bookcrossing": "recllm.data.bookcrossing:FORMAT",
    "table": "recllm.data.table:FORMAT",
})


def format_names() -> list[str]:
    """Every known format name (built-ins, then plugins), without importing any reader."""
    return FORMATS.names()


def get_format(name: str) -> DataFormat:
    """The registration for `name`; a plugin entry that is not a DataFormat is one error."""
    found = FORMATS.get(name)
    if not isinstance(found, DataFormat):
        from recllm.errors import RecllmError

        raise RecllmError(f"data format {name!r} is registered as {type(found).__name__}, not a DataFormat",
                          hint="the entry point must name a recllm.data.formats.DataFormat object")
    return found


def detection_order() -> list[DataFormat]:
    """Formats in the order detection asks them: specific ones first, catch-alls last."""
    loaded = [get_format(n) for n in FORMATS.names()]
    return [f for f in loaded if not f.fallback] + [f for f in loaded if f.fallback]


def markdown_table() -> str:
    """The README's format table, from the registrations."""
    rows = ["| format | what it reads | detected by |", "|---|---|---|"]
    rows += [f"| `{f.name}` | {f.description} | {f.detected_by} |" for f in map(get_format, FORMATS.names())]
    return "\n".join(rows)
