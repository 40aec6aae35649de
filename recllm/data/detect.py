"""Tell a dataset's format from its path, and list the files a load will read (for the cache key).

Folders: MovieLens raw (u.data / ratings.dat / ratings.csv), RecBole atomic (*.inter), Amazon
Reviews 2023 (a review JSONL next to its meta_ JSONL). Files: `.inter` is atomic; a JSONL whose
first record has `parent_asin` and `user_id` (or a `meta_` file) is Amazon; CSV, TSV, JSONL and
Parquet are generic tables. `--format` overrides the guess.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

from recllm.data.movielens import movielens_layout
from recllm.data.options import LoadOptions
from recllm.errors import RecllmError

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".jsonl", ".json", ".ndjson", ".parquet", ".pq")
MOVIELENS_FILES = ("u.data", "u.item", "u.genre", "ratings.dat", "movies.dat", "ratings.csv", "movies.csv")


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


def amazon_pair(path: Path) -> tuple[Path, Path] | None:
    """(reviews, meta) for an Amazon 2023 file or folder, when the pair can be found."""
    if path.is_dir():
        metas = sorted(p for p in path.iterdir() if p.name.startswith("meta_") and is_jsonl(p))
        for meta in metas:
            review = path / meta.name[len("meta_"):]
            if review.exists():
                return review, meta
        return None
    if path.name.startswith("meta_"):
        review = path.with_name(path.name[len("meta_"):])
        return (review, path) if review.exists() else None
    meta = path.with_name("meta_" + path.name)
    return (path, meta) if meta.exists() else None


def _looks_amazon(path: Path) -> bool:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            first = json.loads(f.readline(1 << 20))
    except (OSError, ValueError, EOFError, zlib.error):  # a corrupt file: its loader says why
        return False
    return isinstance(first, dict) and "parent_asin" in first and ("user_id" in first or "title" in first)


def detect(path: Path, options: LoadOptions) -> Plan:
    """The plan for loading `path`; an error that lists what was found when no format fits."""
    if not path.exists():
        raise RecllmError("no such file or folder", where=str(path))
    fmt = options.format
    if fmt is None:
        fmt = _guess(path)
    if fmt == "movielens":
        folder = path if path.is_dir() else path.parent
        return Plan(fmt, folder, tuple(folder / n for n in MOVIELENS_FILES if (folder / n).exists()))
    if fmt == "atomic":
        from recllm.data.atomic import find_inter

        inter = find_inter(path)
        extra = [inter.with_suffix(s) for s in (".item",) if inter.with_suffix(s).exists()]
        return Plan(fmt, inter, (inter, *extra))
    if fmt == "amazon":
        pair = amazon_pair(path)
        if pair is None:
            raise RecllmError("Amazon 2023 data needs the review file and its meta_ file side by side",
                              where=str(path), hint="put e.g. All_Beauty.jsonl and meta_All_Beauty.jsonl in one folder")
        return Plan(fmt, pair[0], pair)
    if path.is_dir():
        raise RecllmError("--format table needs a file, not a folder", where=str(path))
    items = [Path(options.items).expanduser()] if options.items else []
    if items and not items[0].is_file():
        raise RecllmError("catalog file (--items) not found", where=str(items[0]),
                          hint="pass the path of the item table, or load without --items")
    return Plan("table", path, (path, *items))


def _guess(path: Path) -> str:
    if path.is_dir():
        if movielens_layout(path):
            return "movielens"
        if any(path.glob("*.inter")):
            return "atomic"
        if amazon_pair(path):
            return "amazon"
        found = ", ".join(sorted(p.name for p in path.iterdir())[:12]) or "nothing"
        raise RecllmError(
            f"cannot tell the dataset format of this folder; found: {found}", where=str(path),
            hint="pass a file, or --format atomic|movielens|amazon|table",
        )
    if _suffix(path) == ".inter":
        return "atomic"
    if path.name in ("u.data", "ratings.dat") or (path.name == "ratings.csv" and (path.parent / "movies.csv").exists()):
        return "movielens"
    if is_jsonl(path) and (path.name.startswith("meta_") or (_looks_amazon(path) and amazon_pair(path))):
        return "amazon"
    if _suffix(path) in TABLE_SUFFIXES:
        return "table"
    raise RecllmError(f"cannot tell the format of a {path.suffix or 'suffix-less'} file", where=str(path),
                      hint="pass --format atomic|movielens|amazon|table (tables: .csv .tsv .jsonl .parquet)")
