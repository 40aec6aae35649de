"""One work, one id: catalog items listed twice under two ids are merged at load time.

ML-100K lists 18 films twice ("Chasing Amy" is both 246 and 268). A title names one of them
only, so a target held out under the other id can never be matched, and a history can show
the same film twice. Merging maps every interaction of a duplicate id to the canonical id (the
first in catalog order) and drops the duplicate from the catalog; `meta["merged_duplicate_items"]`
counts them. `LoadOptions(merge_duplicates=False)` keeps every id.

Two items are the same work when they share the key every matcher uses (`title_key`), the
year, and the leading article (ML-1M's "Boys, Les (1997)" and "Boys, The (1997)" are two
films), and nothing else they both state differs. Conservative where titles say less: items
without a year merge only when their raw titles are identical, and a different genre list or
description keeps them apart (two products named "USB Cable" with different descriptions are
two products).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from recllm.data.build import Loaded
from recllm.data.schema import Catalog
from recllm.data.titles import leading_article, title_key


def merge_duplicates(loaded: Loaded) -> int:
    """Merge duplicate items of `loaded` in place; returns how many ids were merged away."""
    table = loaded.catalog.table
    canonical: dict[tuple, Any] = {}  # identity -> first item id
    merged: dict[str, str] = {}  # duplicate id -> canonical id
    years = table["year"].astype("float64") if "year" in table.columns else pd.Series(float("nan"), table.index)
    raws = table["raw_title"] if "raw_title" in table.columns else table["title"]
    for item_id, title, raw, year in zip(table.index, table["title"], raws, years):
        key = title_key(str(title))
        if not key:
            continue
        known = year == year  # NaN: no year
        ident = (key, int(year), leading_article(str(title))) if known else (key, None, str(raw).strip())
        first = canonical.setdefault(ident, item_id)
        if first != item_id and _agree(table, first, item_id):
            merged[item_id] = first
    if merged:
        inter = loaded.interactions
        dup = inter["item_id"].isin(merged.keys())
        inter.loc[dup, "item_id"] = inter.loc[dup, "item_id"].map(merged)
        loaded.catalog = Catalog(table.drop(index=list(merged)))
    return len(merged)


def _agree(table: pd.DataFrame, a: str, b: str) -> bool:
    """Nothing both items state differs (a missing value agrees with anything)."""
    for column in ("genres", "description"):
        if column not in table.columns:
            continue
        x, y = table.at[a, column], table.at[b, column]
        if _missing(x) or _missing(y):
            continue
        if (sorted(map(str, x)) if column == "genres" else str(x).strip()) != \
                (sorted(map(str, y)) if column == "genres" else str(y).strip()):
            return False
    return True


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if hasattr(value, "__len__"):
        return len(value) == 0
    return bool(pd.isna(value))
