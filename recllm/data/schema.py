"""The data model every other part reads: interactions, a catalog, and per-user evaluation cases."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp", "rating")
CATALOG_COLUMNS = ("item_id", "title", "raw_title", "year", "genres", "description", "domain")


class Catalog(Mapping[str, str]):
    """`item_id -> display title`, backed by a table with the optional fields.

    `table` is indexed by `item_id` (string) with columns `title` (display), `raw_title`,
    `year` (nullable Int64), `genres` (list of str or None), `description`, `domain`.
    """

    def __init__(self, table: pd.DataFrame):
        self.table = table
        self._titles: dict[str, str] = dict(zip(table.index, table["title"]))

    def __getitem__(self, item_id: str) -> str:
        return self._titles[item_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._titles)

    def __len__(self) -> int:
        return len(self._titles)

    def item(self, item_id: str) -> dict[str, Any]:
        """All fields of one item, missing values as None (for prompt templates)."""
        row = self.table.loc[item_id]
        return {"item_id": item_id, **{k: (None if _is_missing(v) else v) for k, v in row.items()}}


def plural_noun(noun: str) -> str:
    """English plural of a domain noun given without its plural ("movie" -> "movies",
    "series" -> "series", "story" -> "stories", "box" -> "boxes")."""
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun if noun.endswith("series") else noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _is_missing(value: Any) -> bool:
    return value is None or (not isinstance(value, (list, tuple)) and pd.isna(value))


@dataclass
class RecDataset:
    """Interactions plus a catalog.

    `interactions` columns: `user_id`, `item_id` (str), `timestamp` (int64 seconds since the
    epoch, or the row order where a source has no time), `rating` (float, NaN when implicit),
    sorted by user, timestamp and then the row order of the source file (the stable tie-break).
    `domain` is the singular noun templates use ("movie", "book"); `domain_plural` its plural.
    """

    name: str
    interactions: pd.DataFrame
    catalog: Catalog
    domain: str = "item"
    domain_plural: str = "items"
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """SHA-256 (hex, 16 chars) of the interactions and the catalog's titles: what a resumed
        run checks so that it never mixes answers computed on two versions of the data."""
        import hashlib

        h = hashlib.sha256()
        cols = list(INTERACTION_COLUMNS)
        h.update(pd.util.hash_pandas_object(self.interactions[cols], index=False).to_numpy().tobytes())
        h.update(pd.util.hash_pandas_object(self.catalog.table["title"], index=True).to_numpy().tobytes())
        return h.hexdigest()[:16]

    def to_hf(self):
        """This dataset as a Hugging Face DatasetDict {"interactions", "catalog"}."""
        from recllm.data.hf import to_hf
        return to_hf(self)

    @classmethod
    def from_hf(cls, data, *, name: str | None = None) -> "RecDataset":
        """A RecDataset from a DatasetDict with "interactions" and "catalog" splits."""
        from recllm.data.hf import from_hf
        return from_hf(data, name=name)

    def stats(self) -> dict[str, Any]:
        inter = self.interactions
        users, items = inter["user_id"].nunique(), inter["item_id"].nunique()
        n = len(inter)
        return {
            "name": self.name,
            "domain": self.domain,
            "users": int(users),
            "items": int(items),
            "catalog_items": len(self.catalog),
            "interactions": int(n),
            "density": n / (users * items) if users and items else 0.0,
            "interactions_per_user": n / users if users else 0.0,
            "rated": bool(inter["rating"].notna().any()) if n else False,
            "timestamps": self.meta.get("timestamps", True) is not False,
            "source": self.source,
        }


@dataclass(frozen=True)
class UserCase:
    """One user's evaluation case: what the model may see, and the held-out target it may not.

    `history` holds item ids oldest first, with `ratings` and `timestamps` aligned to it;
    `truncated` counts the oldest items cut by a history limit. `targets` holds every held-out
    item, `target` first (leave-one-out: just `target`; a temporal split: all items after the
    cutoff); it defaults to `(target,)`.

    `history` is what a prompt may show (cut to the most recent `max_history`); `seen` is every
    item the user interacted with before the target, cut or not: what may never be recommended,
    counted as a repeat, or drawn as a negative. It defaults to the items of `history`.
    """

    user_id: str
    history: tuple[str, ...]
    ratings: tuple[float, ...]
    timestamps: tuple[int, ...]
    target: str
    target_timestamp: int
    truncated: int = 0
    targets: tuple[str, ...] = ()
    seen: frozenset[str] = frozenset()
    time_ordered: bool = True  # False: the history's order is synthetic (no timestamps)

    def __post_init__(self) -> None:
        if not self.targets:
            object.__setattr__(self, "targets", (self.target,))
        if not self.seen:
            object.__setattr__(self, "seen", frozenset(self.history))
