"""MovieLens raw releases as GroupLens ships them.

- ml-100k: `u.data` (tab: user, item, rating, timestamp), `u.item` (pipe-separated, latin-1:
  id | title | release date | video date | IMDb URL | 19 genre flags), `u.genre`.
- ml-1m / ml-10m: `ratings.dat` (`::`-separated), `movies.dat` (id::title::Genre|Genre),
  latin-1 for ml-1m.
- ml-latest / ml-latest-small / ml-20m / ml-25m: `ratings.csv`, `movies.csv` (UTF-8, quoted).
"""

from __future__ import annotations

import csv
from pathlib import Path

from recllm.data.build import Loaded, drop_unknown_items, make_catalog, make_interactions
from recllm.data.formats import DataFormat
from recllm.data.options import LoadOptions
from recllm.data.readers import read_delimited, require_ids, to_number, to_timestamp
from recllm.data.schema import plural_noun
from recllm.errors import RecllmError

# u.genre's order, used when u.genre is absent.
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")
LAYOUTS = {"u.data": "100k", "ratings.dat": "dat", "ratings.csv": "csv"}
MOVIELENS_FILES = ("u.data", "u.item", "u.genre", "ratings.dat", "movies.dat", "ratings.csv", "movies.csv")


def movielens_layout(folder: Path) -> str | None:
    """'100k', 'dat' or 'csv' when `folder` holds a MovieLens raw release, else None."""
    return next((kind for name, kind in LAYOUTS.items() if (folder / name).is_file()), None)


def load_movielens(folder: Path, options: LoadOptions) -> Loaded:
    """Load a MovieLens raw release folder (any of the three layouts)."""
    layout = movielens_layout(folder)
    if layout is None:
        raise RecllmError("not a MovieLens folder: expected u.data, ratings.dat or ratings.csv",
                          where=str(folder))
    loader = {"100k": _load_100k, "dat": _load_dat, "csv": _load_csv}[layout]
    loaded = loader(folder, options)
    loaded.domain = options.domain or "movie"
    loaded.domain_plural = options.domain_plural or plural_noun(loaded.domain)
    loaded.meta["format"] = f"movielens-{layout}"
    return drop_unknown_items(loaded)


def _ratings(path: Path, frame, names: tuple[str, str, str, str]) -> object:
    user, item, rating, ts = names
    return make_interactions(require_ids(frame, user, path), require_ids(frame, item, path),
                             to_timestamp(frame, ts, path), to_number(frame, rating, path))


def _load_100k(folder: Path, options: LoadOptions) -> Loaded:
    enc = options.encoding or "latin-1"
    data_path, item_path = folder / "u.data", folder / "u.item"
    names = ("user_id", "item_id", "rating", "timestamp")
    inter = _ratings(data_path, read_delimited(data_path, sep="\t", encoding=enc, header=False, names=names), names)
    genres = _read_genres(folder / "u.genre", enc)
    item_names = ("item_id", "title", "release_date", "video_release_date", "imdb_url", *genres)
    items = read_delimited(item_path, sep="|", encoding=enc, header=False, names=item_names)
    flags = items[list(genres)].to_numpy() == "1"
    genre_lists = [[g for g, on in zip(genres, row) if on] for row in flags]
    years = items["release_date"].str[-4:]  # "01-Jan-1995"; the title's year is the fallback
    catalog, notes = make_catalog(require_ids(items, "item_id", item_path).tolist(), items["title"].tolist(),
                                  where=str(item_path), domain=options.domain or "movie",
                                  years=None if years.eq("").all() else _title_year_first(items["title"], years),
                                  genres=genre_lists)
    return Loaded(inter, catalog, files=[data_path, item_path], meta=notes)


def _title_year_first(titles, release_years) -> list:
    """The year in the title ("(1995)") is what people know; release dates are a fallback."""
    from recllm.data.titles import split_year

    return [split_year(t)[1] or (y if y.isdigit() else None) for t, y in zip(titles, release_years)]


def _read_genres(path: Path, encoding: str) -> tuple[str, ...]:
    if not path.exists():
        return ML100K_GENRES
    frame = read_delimited(path, sep="|", encoding=encoding, header=False, names=("genre", "index"))
    return tuple(frame.sort_values("index", key=lambda s: s.astype(int))["genre"])


def _load_dat(folder: Path, options: LoadOptions) -> Loaded:
    enc = options.encoding or "latin-1"
    data_path, item_path = folder / "ratings.dat", folder / "movies.dat"
    names = ("user_id", "item_id", "rating", "timestamp")
    inter = _ratings(data_path, read_delimited(data_path, sep="::", encoding=enc, header=False, names=names), names)
    items = read_delimited(item_path, sep="::", encoding=enc, header=False, names=("item_id", "title", "genres"))
    return _with_catalog(inter, items, item_path, options, [data_path, item_path])


def _load_csv(folder: Path, options: LoadOptions) -> Loaded:
    enc = options.encoding or "utf-8"
    data_path, item_path = folder / "ratings.csv", folder / "movies.csv"
    frame = read_delimited(data_path, sep=",", encoding=enc, quoting=csv.QUOTE_MINIMAL)
    _require_movielens(frame, data_path, ("userId", "movieId", "rating", "timestamp"))
    frame = frame.rename(columns={"userId": "user_id", "movieId": "item_id"})
    inter = _ratings(data_path, frame, ("user_id", "item_id", "rating", "timestamp"))
    items = read_delimited(item_path, sep=",", encoding=enc, quoting=csv.QUOTE_MINIMAL)
    _require_movielens(items, item_path, ("movieId", "title", "genres"))
    items = items.rename(columns={"movieId": "item_id"})
    return _with_catalog(inter, items, item_path, options, [data_path, item_path])


def _require_movielens(frame, path: Path, columns: tuple[str, ...]) -> None:
    """A ratings.csv that is not MovieLens's says so, instead of failing on a missing column."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ", ".join(repr(c) for c in frame.columns if c != "_line")
        raise RecllmError(f"not a MovieLens {path.name}: no column {', '.join(map(repr, missing))}; "
                          f"found columns: {found}", where=str(path),
                          hint=f"load the file itself as a table (recllm data stats {path}), or "
                          "--format table with --user-col/--item-col")


def _with_catalog(inter, items, item_path: Path, options: LoadOptions, files: list[Path]) -> Loaded:
    genres = [[] if g == "(no genres listed)" else g.split("|") for g in items["genres"]]
    catalog, notes = make_catalog(require_ids(items, "item_id", item_path).tolist(), items["title"].tolist(),
                                  where=str(item_path), domain=options.domain or "movie", genres=genres)
    return Loaded(inter, catalog, files=files, meta=notes)


def _detect(path: Path) -> bool:
    if path.is_dir():
        return movielens_layout(path) is not None
    return path.name in ("u.data", "ratings.dat") or (path.name == "ratings.csv" and (path.parent / "movies.csv").exists())


def _files(path: Path, options: LoadOptions) -> tuple[Path, tuple[Path, ...]]:
    folder = path if path.is_dir() else path.parent
    return folder, tuple(folder / n for n in MOVIELENS_FILES if (folder / n).exists())


FORMAT = DataFormat(
    "movielens", "GroupLens releases: ml-100k (`u.data`, `u.item`, `u.genre`; latin-1, pipe-separated); ml-1m / "
    "ml-10m (`ratings.dat`, `movies.dat`; `::`-separated, latin-1); ml-latest, ml-latest-small, ml-20m, ml-25m "
    "(`ratings.csv`, `movies.csv`, UTF-8)", _detect, load_movielens, _files,
    detected_by="`u.data`, `ratings.dat`, or `ratings.csv` next to `movies.csv` (or their folder)")
