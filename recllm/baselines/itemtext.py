"""The text of an item for zero-shot text baselines: its title plus whatever the catalog knows.

"Title (Year). by Author. Genres: a, b. Description ..." — fields missing from a catalog are
left out, so the same recipe serves movies (title, year, genres), books (author) and products
(store, category, description). Items without a catalog row are their id.
"""

from __future__ import annotations

import hashlib

import numpy as np

TEXT_VERSION = "itemtext-1"       # bump when the recipe below changes (embeddings are cached by it)
AUTHOR_FIELDS = ("author", "authors", "store")
CATEGORY_FIELDS = ("genres", "main_category", "categories")
MAX_DESCRIPTION = 600             # characters: the encoders read ~256 tokens anyway


def _present(v) -> bool:
    if v is None:
        return False
    if isinstance(v, (list, tuple, np.ndarray)):
        return len(v) > 0
    try:
        import pandas as pd
        return not pd.isna(v) and str(v).strip() != ""
    except (TypeError, ValueError):
        return True


def item_texts(items: np.ndarray, catalog) -> list[str]:
    """One text per item id in `items` (TrainData.items order)."""
    table = catalog.table if catalog is not None else None
    cols = set(table.columns) if table is not None else set()
    out = []
    for item_id in items.tolist():
        if table is None or item_id not in table.index:
            out.append(str(item_id))
            continue
        row = table.loc[item_id]
        text = str(row["title"])
        if "year" in cols and _present(row["year"]):
            text += f" ({int(row['year'])})"
        parts = [text + "."]
        for f in AUTHOR_FIELDS:
            if f in cols and _present(row[f]):
                parts.append(f"by {row[f]}.")
                break
        for f in CATEGORY_FIELDS:
            if f in cols and _present(row[f]):
                v = row[f]
                v = ", ".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray)) else str(v)
                parts.append(f"Genres: {v}.")
                break
        if "description" in cols and _present(row["description"]):
            parts.append(str(row["description"])[:MAX_DESCRIPTION])
        out.append(" ".join(parts))
    return out


def texts_fingerprint(items: np.ndarray, texts: list[str]) -> str:
    """SHA-256 (16 hex) of the (id, text) pairs: the catalog as the text baselines read it."""
    h = hashlib.sha256(TEXT_VERSION.encode())
    for item_id, text in zip(items.tolist(), texts):
        h.update(f"{item_id}\x1f{text}\x1e".encode())
    return h.hexdigest()[:16]
