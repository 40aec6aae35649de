"""Tell a dataset's format from its path, and list the files a load will read (for the cache key).

Each format's own registration (recllm/data/formats.py) says whether a path looks like it and
which files it reads; this module only asks them in order. `--format` overrides the guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recllm.data.formats import detection_order, format_names, get_format
from recllm.data.options import LoadOptions
from recllm.errors import RecllmError


@dataclass(frozen=True)
class Plan:
    """Which loader reads `path`, and every file it may read."""

    format: str
    path: Path
    files: tuple[Path, ...]


def _suffix(path: Path) -> str:
    """".jsonl" for "x.jsonl.gz": compression does not change the format."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def is_jsonl(path: Path) -> bool:
    return _suffix(path) in (".jsonl", ".json", ".ndjson")


def detect(path: Path, options: LoadOptions) -> Plan:
    """The plan for loading `path`; an error that lists what was found when no format fits."""
    if not path.exists():
        raise RecllmError("no such file or folder", where=str(path))
    fmt = get_format(options.format) if options.format else _guess(path)
    reads, files = fmt.files(path, options)
    return Plan(fmt.name, reads, files)


def _guess(path: Path):
    for fmt in detection_order():
        if fmt.detect(path):
            return fmt
    choices = "|".join(format_names())
    if path.is_dir():
        found = ", ".join(sorted(p.name for p in path.iterdir())[:12]) or "nothing"
        raise RecllmError(f"cannot tell the dataset format of this folder; found: {found}", where=str(path),
                          hint=f"pass a file, or --format {choices}")
    raise RecllmError(f"cannot tell the format of a {path.suffix or 'suffix-less'} file", where=str(path),
                      hint=f"pass --format {choices} (tables: .csv .tsv .jsonl .parquet)")
