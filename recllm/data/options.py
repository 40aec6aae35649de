"""Loader options: one typed model shared by every format, the cache key and the CLI flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from recllm.data.formats import FORMATS  # the registry's names, built-ins and plugins
from recllm.errors import did_you_mean
from recllm.options import StrictOptions


class LoadOptions(StrictOptions):
    """How to read a dataset and which interactions to keep.

    Reading: `format` (auto-detected when None), column mapping for tables
    (`user_col`, `item_col`, `time_col`, `rating_col`; catalog `id_col`, `title_col`,
    `genres_col`, `description_col`), `items` (a separate catalog file), `sep`, `encoding`.
    Filtering, applied in this order: `min_rating` (keep rating >= threshold), `duplicates`
    (repeated (user, item) pairs: keep the "first" or "last" in time, or "all"), `k_core`
    (iteratively drop users and items with fewer than k interactions).
    """

    format: str | None = Field(None, description="dataset format (default: detected from the path)")
    user_col: str | None = Field(None, description="user id column of an interactions table (default: found by name)")
    item_col: str | None = Field(None, description="item id column of an interactions table (default: found by name)")
    time_col: str | None = Field(None, description="timestamp column, numbers or dates (optional; default: found by name)")
    rating_col: str | None = Field(None, description="rating column (optional; default: found by name)")
    id_col: str | None = Field(None, description="item id column of the catalog file")
    title_col: str | None = Field(None, description="title column of the catalog (or of the interactions table, which then builds the catalog)")
    genres_col: str | None = Field(None, description="genres/categories column of the catalog")
    description_col: str | None = Field(None, description="description column of the catalog")
    items: str | None = Field(None, description="catalog table for a `table` dataset (without it or --title-col, item ids are the titles)",
                              json_schema_extra={"metavar": "PATH"})
    sep: str | None = Field(None, description="field separator of a text table (default: by extension, else sniffed)")
    encoding: str | None = Field(None, description="text encoding (default utf-8; latin-1 for MovieLens .dat and u.* files)")
    min_rating: float | None = Field(None, description="keep interactions rated at least R (the positives)",
                                     json_schema_extra={"metavar": "R"})
    duplicates: Literal["first", "last", "all"] = Field(
        "first", description="repeated (user, item) pairs: keep the first in time (default), the last, or all")
    k_core: int | None = Field(None, ge=1, description="iteratively drop users and items with fewer than K interactions",
                               json_schema_extra={"metavar": "K"})
    domain: str | None = Field(None, description="singular noun for the items in prompts (default: movie for MovieLens, by category for "
                               "Amazon, item otherwise)",
                               json_schema_extra={"metavar": "NOUN"})
    domain_plural: str | None = Field(None, description="plural noun (default: --domain + s)",
                                      json_schema_extra={"metavar": "NOUN"})
    merge_duplicates: bool = Field(True, description="merge items listed twice under two ids (same title "
                                   "key, year and article; see recllm/data/dedupe.py)")
    cache: bool = Field(True, description="use the cached Arrow tables (--no-cache: read the files again)")

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

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        if value is not None and value not in FORMATS:
            raise ValueError(f"unknown format {value!r}{did_you_mean(value, FORMATS)}; known: {', '.join(FORMATS)}")
        return value
