"""Assemble what a loader read into the shared schema: typed interactions and a Catalog.

Every loader ends here, so titles, years and dtypes come out the same whatever the format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recllm.data.schema import Catalog
from recllm.data.titles import TitleParts, split_title
from recllm.errors import RecllmError

# Column order of Catalog.table: the schema's fields, then `alternates` (titles in parentheses).
TABLE_COLUMNS = ("title", "raw_title", "year", "genres", "description", "domain", "alternates")


@dataclass
class Loaded:
    """What a format loader returns: interactions in source row order plus the catalog."""

    interactions: pd.DataFrame  # user_id, item_id, timestamp, rating, _order
    catalog: Catalog
    domain: str = "item"
    domain_plural: str = "items"
    files: list[Path] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def make_interactions(
    users: Sequence, items: Sequence, timestamps: Sequence | None, ratings: Sequence | None
) -> pd.DataFrame:
    """Interactions with the schema's dtypes; `_order` keeps the source row order (tie-break).

    Without timestamps the row order stands in for time, as the schema documents.
    """
    n = len(users)
    order = np.arange(n, dtype=np.int64)
    frame = pd.DataFrame({
        # pd.array, not a Python object per id: Arrow strings under pandas 3 (memory ~ the text)
        "user_id": pd.array(users, dtype=str),
        "item_id": pd.array(items, dtype=str),
        "timestamp": order if timestamps is None else np.asarray(timestamps, dtype=np.int64),
        "rating": np.full(n, np.nan) if ratings is None else np.asarray(ratings, dtype=np.float64),
        "_order": order,
    })
    frame["user_id"] = frame["user_id"].astype(str)
    frame["item_id"] = frame["item_id"].astype(str)
    return frame


def make_catalog(
    ids: Sequence[str],
    raw_titles: Sequence[str | None],
    *,
    where: str,
    domain: str,
    years: Sequence | None = None,
    genres: Sequence | None = None,
    descriptions: Sequence | None = None,
    extra: dict[str, Sequence] | None = None,
    parse_titles: bool = True,
) -> tuple[Catalog, dict[str, Any]]:
    """A Catalog from parallel columns; display title, year and alternates from `split_title`.

    An explicit year column wins over the year in the title. Missing titles fall back to the
    item id (RecBole's ml-1m uses "Title (Year)" as the id). Duplicate ids keep the first row.
    `parse_titles=False` keeps titles as written (product names: "(Book 1)" is no alternate).
    Returns the catalog and notes for `RecDataset.meta`.
    """
    if len(ids) == 0:
        raise RecllmError("the catalog is empty (no items)", where=where,
                          hint="check that the item file has rows, or load without it")
    notes: dict[str, Any] = {}
    rows_title, rows_year, rows_alt, rows_raw = [], [], [], []
    for i, item_id in enumerate(ids):
        raw = raw_titles[i] if raw_titles is not None else None
        raw = item_id if raw is None or (isinstance(raw, float) and np.isnan(raw)) or not str(raw).strip() else str(raw)
        parts = split_title(raw) if parse_titles else TitleParts(raw, " ".join(raw.split()))
        year = _year(years[i]) if years is not None else None
        rows_raw.append(raw)
        rows_title.append(parts.display)
        rows_year.append(year if year is not None else parts.year)
        rows_alt.append(list(parts.alternates))
    table = pd.DataFrame({
        "item_id": pd.Series(list(ids), dtype=str),
        "title": rows_title,
        "raw_title": rows_raw,
        "year": pd.array(rows_year, dtype="Int64"),
        "genres": [_genre_list(g) for g in genres] if genres is not None else [None] * len(ids),
        "description": [_text(d) for d in descriptions] if descriptions is not None else [None] * len(ids),
        "domain": domain,
        "alternates": rows_alt,
    })
    for name, values in (extra or {}).items():
        table[name] = list(values)
    duplicated = table["item_id"].duplicated()
    if duplicated.any():
        notes["duplicate_catalog_ids"] = int(duplicated.sum())
        table = table[~duplicated]
    return Catalog(table.set_index("item_id")), notes


def _year(value: Any) -> int | None:
    try:
        year = int(float(value))
    except (TypeError, ValueError):
        return None
    return year if 1000 <= year <= 3000 else None


def _genre_list(value: Any) -> list[str] | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        parts = [value] if value else []
    else:
        parts = [str(v) for v in value]
    parts = [p.strip() for p in parts if p and str(p).strip()]
    return parts or None


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (list, tuple, np.ndarray)):  # Amazon writes descriptions as lists
        value = "\n".join(str(v) for v in value if v)
    value = str(value).strip()
    return value or None


def drop_unknown_items(loaded: Loaded) -> Loaded:
    """Drop interactions whose item has no catalog entry (no title to show or match)."""
    known = loaded.interactions["item_id"].isin(loaded.catalog.table.index)
    if len(known) and not known.any():
        example = loaded.interactions["item_id"].iloc[0]
        catalog_example = loaded.catalog.table.index[0]
        raise RecllmError(
            f"no interaction's item is in the catalog (interactions say {example!r}, "
            f"the catalog has ids like {catalog_example!r})",
            where=str(loaded.files[-1]) if loaded.files else None,
            hint="check the id columns: --item-col for interactions, --id-col for the catalog",
        )
    if not known.all():
        loaded.meta["dropped_unknown_items"] = int((~known).sum())
        loaded.interactions = loaded.interactions[known.to_numpy()].reset_index(drop=True)
    return loaded
