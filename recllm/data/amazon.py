"""Amazon Reviews 2023 (McAuley Lab): `<Category>.jsonl` reviews + `meta_<Category>.jsonl` items.

Reviews carry `user_id`, `parent_asin` (the product; `asin` is one variant of it), `rating`
and `timestamp` in milliseconds; `title` there is the review's title, not the product's. The
meta file carries the product `title`, `categories`, `description` (a list of paragraphs),
`main_category` and `store` (the author for books). Either file may be gzipped.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

from recllm.data.build import Loaded, drop_unknown_items, make_catalog, make_interactions
from recllm.data.detect import is_jsonl
from recllm.data.formats import DataFormat
from recllm.data.options import LoadOptions
from recllm.data.readers import read_jsonl, require_ids, require_rows, to_number, to_timestamp
from recllm.errors import RecllmError

# Domain nouns by category file name (what a prompt calls the items); others are "product".
DOMAINS = {
    "Books": ("book", "books"), "Kindle_Store": ("book", "books"),
    "Movies_and_TV": ("movie or TV show", "movies and TV shows"),
    "CDs_and_Vinyl": ("album", "albums"), "Digital_Music": ("album", "albums"),
    "Video_Games": ("video game", "video games"), "Magazine_Subscriptions": ("magazine", "magazines"),
}
META_FIELDS = ("parent_asin", "title", "main_category", "categories", "description", "store")


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


def category(path: Path) -> str:
    """"All_Beauty" from ".../All_Beauty.jsonl.gz"."""
    return path.name.split(".")[0].removeprefix("meta_")


def load_amazon(path: Path, options: LoadOptions) -> Loaded:
    """Load a review file and its meta file (found next to it)."""
    pair = amazon_pair(path)
    if pair is None:
        raise RecllmError("no meta_ file next to this review file", where=str(path),
                          hint="Amazon 2023 needs e.g. All_Beauty.jsonl and meta_All_Beauty.jsonl side by side")
    review_path, meta_path = pair
    encoding = options.encoding or "utf-8"
    user_col, item_col = options.user_col or "user_id", options.item_col or "parent_asin"
    time_col, rating_col = options.time_col or "timestamp", options.rating_col or "rating"
    reviews = read_jsonl(review_path, encoding, fields=(user_col, item_col, time_col, rating_col))
    require_rows(reviews, review_path)
    _require_present(reviews, {"user": user_col, "item": item_col, "time": time_col}, review_path)
    interactions = make_interactions(
        require_ids(reviews, user_col, review_path), require_ids(reviews, item_col, review_path),
        to_timestamp(reviews, time_col, review_path, unit="ms"),
        to_number(reviews, rating_col, review_path, allow_missing=True) if reviews[rating_col].notna().any() else None,
    )
    meta = read_jsonl(meta_path, encoding, fields=META_FIELDS)
    if meta.empty:
        raise RecllmError("the catalog is empty (no items)", where=str(meta_path))
    _require_present(meta, {"id": "parent_asin", "title": options.title_col or "title"}, meta_path)
    main = meta["main_category"].tolist()
    genres = [cats if cats else ([m] if m else None) for cats, m in zip(meta["categories"], main)]
    default_domain = DOMAINS.get(category(review_path), ("product", "products"))
    domain = options.domain or default_domain[0]
    catalog, notes = make_catalog(
        require_ids(meta, "parent_asin", meta_path).tolist(), meta[options.title_col or "title"].tolist(),
        where=str(meta_path), domain=domain, genres=genres, descriptions=meta["description"].tolist(),
        extra={"main_category": main, "store": meta["store"].tolist()}, parse_titles=False,
    )
    plural = options.domain_plural or (default_domain[1] if domain == default_domain[0] else domain + "s")
    loaded = Loaded(interactions, catalog, domain, plural, [review_path, meta_path],
                    {"format": "amazon-2023", "category": category(review_path), **notes})
    return drop_unknown_items(loaded)


def _require_present(frame, wanted: dict[str, str], path: Path) -> None:
    """read_jsonl fills absent keys with None; a field absent from every record is missing."""
    absent = [f"{col!r} ({role})" for role, col in wanted.items() if frame[col].isna().all()]
    if absent and len(frame):
        found = ", ".join(map(repr, frame.attrs.get("keys", [])))
        raise RecllmError(f"missing field {', '.join(absent)}; found fields: {found}", where=str(path),
                          hint="map the fields with --user-col/--item-col/--time-col/--rating-col/--title-col")


def _detect(path: Path) -> bool:
    if path.is_dir():
        return amazon_pair(path) is not None
    return is_jsonl(path) and (path.name.startswith("meta_") or (_looks_amazon(path) and amazon_pair(path) is not None))


def _files(path: Path, options: LoadOptions) -> tuple[Path, tuple[Path, ...]]:
    pair = amazon_pair(path)
    if pair is None:
        raise RecllmError("Amazon 2023 data needs the review file and its meta_ file side by side",
                          where=str(path), hint="put e.g. All_Beauty.jsonl and meta_All_Beauty.jsonl in one folder")
    return pair[0], pair


FORMAT = DataFormat(
    "amazon", "Amazon Reviews 2023: `<Category>.jsonl` reviews + `meta_<Category>.jsonl` (either may be `.gz`); "
    "items are `parent_asin`, titles/categories/description/store from the meta file, timestamps in ms",
    _detect, load_amazon, _files, detected_by="a `meta_` file next to the review file (or their folder)")
