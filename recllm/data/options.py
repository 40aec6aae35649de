"""Loader options: one typed model shared by every format, the cache key and the CLI flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from recllm.options import StrictOptions

FORMATS = ("atomic", "movielens", "amazon", "table")


class LoadOptions(StrictOptions):
    """How to read a dataset and which interactions to keep.

    Reading: `format` (auto-detected when None), column mapping for tables
    (`user_col`, `item_col`, `time_col`, `rating_col`; catalog `id_col`, `title_col`,
    `genres_col`, `description_col`), `items` (a separate catalog file), `sep`, `encoding`.
    Filtering, applied in this order: `min_rating` (keep rating >= threshold), `duplicates`
    (repeated (user, item) pairs: keep the "first" or "last" in time, or "all"), `k_core`
    (iteratively drop users and items with fewer than k interactions).
    """

    format: Literal["atomic", "movielens", "amazon", "table"] | None = None
    user_col: str | None = None
    item_col: str | None = None
    time_col: str | None = None
    rating_col: str | None = None
    id_col: str | None = None
    title_col: str | None = None
    genres_col: str | None = None
    description_col: str | None = None
    items: str | None = Field(None, description="catalog file for a generic interactions table")
    sep: str | None = None
    encoding: str | None = None
    min_rating: float | None = None
    duplicates: Literal["first", "last", "all"] = "first"
    k_core: int | None = Field(None, ge=1)
    domain: str | None = None
    domain_plural: str | None = None
    merge_duplicates: bool = Field(True, description="merge items listed twice under two ids (same title "
                                   "key, year and article; see recllm/data/dedupe.py)")
    cache: bool = True

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            import codecs

            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r} (try utf-8 or latin-1)") from None
        return value

    def reading(self) -> dict:
        """The options that change what is read from the files (the rest filter afterwards)."""
        skip = {"min_rating", "duplicates", "k_core", "cache"}
        return self.model_dump(exclude=skip)
