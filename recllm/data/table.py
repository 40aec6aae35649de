"""Generic interaction tables: CSV, TSV, JSONL or Parquet with a column mapping.

Columns are found by name when not mapped: user (`user_id`, `userId`, `user`, `uid`,
`reviewerID`), item (`item_id`, `movieId`, `parent_asin`, `asin`, `item`, `iid`), time
(`timestamp`, `time`, `ts`, `date`, `datetime`, `unixReviewTime`), rating (`rating`, `score`,
`overall`, `stars`). Time may be numbers or dates; numbers that are too large for seconds are
read as milliseconds (> 1e11), microseconds (> 1e14) or nanoseconds (> 1e17).

The catalog comes from `items` (a second table: `id_col`, `title_col`, `genres_col`,
`description_col`), or from a `title_col` in the interactions table, or else from the item
ids themselves (useful when the ids are titles).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd

from recllm.data.build import Loaded, drop_unknown_items, make_catalog, make_interactions
from recllm.data.columns import TITLE_COLS
from recllm.data.detect import _suffix, is_jsonl
from recllm.data.formats import DataFormat
from recllm.data.options import LoadOptions
from recllm.data.readers import (as_numbers, iter_text_lines, read_delimited, read_jsonl, read_parquet, read_text,
                                 require_columns, require_ids, require_rows, to_number, to_timestamp)
from recllm.data.schema import plural_noun
from recllm.errors import RecllmError

USER_COLS = ("user_id", "userId", "user", "uid", "reviewerID", "customer_id")
ITEM_COLS = ("item_id", "movieId", "parent_asin", "asin", "item", "iid", "itemId", "product_id")
TIME_COLS = ("timestamp", "time", "ts", "date", "datetime", "unixReviewTime", "created_at")
RATING_COLS = ("rating", "score", "overall", "stars")
GENRE_COLS = ("genres", "genre", "categories", "category")
DESCRIPTION_COLS = ("description", "desc", "overview", "plot", "summary")
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".jsonl", ".json", ".ndjson", ".parquet", ".pq")


def read_table(path: Path, options: LoadOptions) -> pd.DataFrame:
    """Any supported table file, with a `_line` column for error messages."""
    suffix = _suffix(path)
    encoding = options.encoding or "utf-8"
    if suffix in (".parquet", ".pq"):
        return read_parquet(path)
    if is_jsonl(path):
        if _first_line(path, encoding).lstrip().startswith("["):  # a JSON array, not JSON Lines
            text = read_text(path, encoding)
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as exc:
                raise RecllmError(f"malformed JSON: {exc.msg}", where=f"{path}:{exc.lineno}") from None
            return _array_frame(rows, path)
        return read_jsonl(path, encoding)
    sep = options.sep or ("\t" if suffix in (".tsv", ".tab") else None)
    if sep is None:
        sep = _sniff(_first_line(path, encoding))
    return read_delimited(path, sep=sep, encoding=encoding, quoting=csv.QUOTE_MINIMAL)


def _array_frame(rows, path: Path) -> pd.DataFrame:
    """A JSON array of objects as a table; `_line` is the 1-based element number."""
    bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
    if bad is not None:
        raise RecllmError(f"element {bad + 1} of the JSON array is {_json_kind(rows[bad])}, "
                          "expected an object ({\"user_id\": ..., \"item_id\": ...})", where=str(path),
                          hint="write one object per interaction (a JSON array or JSON Lines)")
    frame = pd.DataFrame(rows)
    frame["_line"] = np.arange(1, len(frame) + 1)
    return frame


def _json_kind(value) -> str:
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}
    return kinds.get(type(value), "null")


def _first_line(path: Path, encoding: str) -> str:
    """The first non-blank line, read without loading the whole file."""
    lines = iter_text_lines(path, encoding)
    try:
        return next((line for _, line in lines if line.strip()), "")
    finally:
        lines.close()


def _sniff(first: str) -> str:
    return max(("\t", ",", ";", "|"), key=first.count) if any(c in first for c in "\t,;|") else ","


def pick(frame: pd.DataFrame, given: str | None, candidates: tuple[str, ...], role: str,
         path: Path, required: bool = True) -> str | None:
    """The mapped column, else the first candidate present; missing required ones list what exists."""
    if given:
        require_columns(frame, {role: given}, path)
        return given
    lower = {c.lower(): c for c in frame.columns if c != "_line"}
    found = next((lower[c.lower()] for c in candidates if c.lower() in lower), None)
    if found is None and required:
        columns = ", ".join(repr(c) for c in frame.columns if c != "_line")
        raise RecllmError(f"no {role} column (looked for {', '.join(candidates[:4])} ...); found columns: {columns}",
                          where=str(path), hint=f"name it with --{role}-col")
    return found


def timestamps(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """Seconds since the epoch; the unit of numeric times is inferred from their size."""
    numbers = as_numbers(frame[column])
    unit = "s"
    if numbers.notna().all() and len(numbers):
        big = float(numbers.abs().median())
        unit = "ns" if big > 1e17 else "us" if big > 1e14 else "ms" if big > 1e11 else "s"
    return to_timestamp(frame, column, path, unit=unit)


def split_genres(value) -> list[str] | None:
    """Genres as a list: JSON/Parquet lists stay; "A|B" splits; a plain string is one genre."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                return [str(v) for v in json.loads(text)]
            except json.JSONDecodeError:
                pass
        return [p.strip() for p in text.split("|") if p.strip()] or None
    return [str(v) for v in value]


def load_table(path: Path, options: LoadOptions) -> Loaded:
    """Load a generic interactions table (and catalog table) with the column mapping."""
    frame = read_table(path, options)
    require_rows(frame, path)
    user = pick(frame, options.user_col, USER_COLS, "user", path)
    item = pick(frame, options.item_col, ITEM_COLS, "item", path)
    time = pick(frame, options.time_col, TIME_COLS, "time", path, required=False)
    rating = pick(frame, options.rating_col, RATING_COLS, "rating", path, required=False)
    interactions = make_interactions(
        require_ids(frame, user, path), require_ids(frame, item, path),
        timestamps(frame, time, path) if time else None,
        to_number(frame, rating, path) if rating else None,
    )
    domain = options.domain or "item"
    meta = {"format": "table", "columns": {"user": user, "item": item, "time": time, "rating": rating}}
    files = [path]
    if options.items:
        items_path = Path(options.items).expanduser()
        catalog, notes = _catalog_table(items_path, options, item, domain)
        files.append(items_path)
    elif options.title_col:
        require_columns(frame, {"title": options.title_col}, path)
        first = frame.assign(_id=interactions["item_id"].to_numpy()).drop_duplicates("_id")
        catalog, notes = make_catalog(first["_id"].tolist(), first[options.title_col].tolist(),
                                      where=str(path), domain=domain)
    else:
        ids = pd.unique(interactions["item_id"]).tolist()
        catalog, notes = make_catalog(ids, ids, where=str(path), domain=domain)
        notes["catalog_from_ids"] = True
    plural = options.domain_plural or plural_noun(domain)
    return drop_unknown_items(Loaded(interactions, catalog, domain, plural, files, {**meta, **notes}))


def _catalog_table(path: Path, options: LoadOptions, item_col: str, domain: str,
                   frame: pd.DataFrame | None = None):
    """The catalog in an items table (`frame`: the table already read from `path`)."""
    frame = read_table(path, options) if frame is None else frame
    if frame.empty:
        raise RecllmError("the catalog is empty (no items)", where=str(path),
                          hint="check the file, or load without --items to use the item ids as titles")
    id_col = pick(frame, options.id_col, (item_col, *ITEM_COLS, "id"), "id", path)
    title = pick(frame, options.title_col, TITLE_COLS, "title", path)
    genres = pick(frame, options.genres_col, GENRE_COLS, "genres", path, required=False)
    desc = pick(frame, options.description_col, DESCRIPTION_COLS, "description", path, required=False)
    year = pick(frame, None, ("year", "release_year"), "year", path, required=False)
    return make_catalog(
        require_ids(frame, id_col, path).tolist(), frame[title].tolist(), where=str(path), domain=domain,
        years=frame[year].tolist() if year else None,
        genres=[split_genres(g) for g in frame[genres]] if genres else None,
        descriptions=frame[desc].tolist() if desc else None,
    )


def _detect(path: Path) -> bool:
    return path.is_file() and _suffix(path) in TABLE_SUFFIXES


def _files(path: Path, options: LoadOptions) -> tuple[Path, tuple[Path, ...]]:
    if path.is_dir():
        raise RecllmError("--format table needs a file, not a folder", where=str(path))
    items = [Path(options.items).expanduser()] if options.items else []
    if items and not items[0].is_file():
        raise RecllmError("catalog file (--items) not found", where=str(items[0]),
                          hint="pass the path of the item table, or load without --items")
    return path, (path, *items)


FORMAT = DataFormat(
    "table", "any CSV / TSV / JSONL (or a JSON array) / Parquet of interactions, with an optional catalog table "
    "(`items`)", _detect, load_table, _files, detected_by="`.csv .tsv .jsonl .json .parquet ...` (tried last)",
    fallback=True)
