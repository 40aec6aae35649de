"""RecDataset <-> Hugging Face `datasets`: for people who hold their data as a DatasetDict.

    dd = ds.to_hf()                 # DatasetDict {"interactions", "catalog"}
    dd.push_to_hub(...) / dd.save_to_disk(path)
    back = RecDataset.from_hf(dd)   # the same interactions and catalog

The catalog split carries every column of `Catalog.table` (title, raw_title, year, genres ...)
with `item_id`; the dataset's name and domain nouns travel in `info.description` as JSON.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd

from recllm.data.schema import INTERACTION_COLUMNS, Catalog
from recllm.errors import RecllmError

if TYPE_CHECKING:
    from recllm.data.schema import RecDataset


def to_hf(dataset: "RecDataset"):
    from datasets import Dataset, DatasetDict, DatasetInfo

    about = json.dumps({"recllm": {"name": dataset.name, "domain": dataset.domain,
                                   "domain_plural": dataset.domain_plural,
                                   "source": dataset.source}})
    info = DatasetInfo(description=about)
    inter = dataset.interactions[list(INTERACTION_COLUMNS)].reset_index(drop=True)
    table = dataset.catalog.table.copy()
    table["year"] = table["year"].astype("float64")  # nullable Int64 -> NaN for Arrow
    catalog = table.rename_axis("item_id").reset_index()
    return DatasetDict({"interactions": Dataset.from_pandas(inter, info=info, preserve_index=False),
                        "catalog": Dataset.from_pandas(catalog, info=info, preserve_index=False)})


def from_hf(data, *, name: str | None = None) -> "RecDataset":
    """A RecDataset from a DatasetDict with "interactions" (user_id, item_id, timestamp,
    rating) and "catalog" (item_id, title, ...) splits, e.g. one made by `to_hf`."""
    from recllm.data.schema import RecDataset

    missing = [s for s in ("interactions", "catalog") if s not in data]
    if missing:
        raise RecllmError(f"the DatasetDict has no {' and no '.join(map(repr, missing))} split",
                          hint="pass DatasetDict({'interactions': ..., 'catalog': ...})")
    inter = data["interactions"].to_pandas()
    absent = [c for c in INTERACTION_COLUMNS if c not in inter.columns]
    if absent:
        raise RecllmError(f"interactions lack the column(s) {', '.join(absent)}",
                          where="interactions", hint=f"columns needed: {', '.join(INTERACTION_COLUMNS)}")
    inter = inter.assign(user_id=inter["user_id"].astype(str), item_id=inter["item_id"].astype(str),
                         timestamp=inter["timestamp"].astype("int64"),
                         rating=inter["rating"].astype("float64"))
    inter = inter.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    table = data["catalog"].to_pandas()
    if "item_id" not in table.columns or "title" not in table.columns:
        raise RecllmError("the catalog needs item_id and title columns", where="catalog")
    table = table.assign(item_id=table["item_id"].astype(str)).set_index("item_id")
    if "year" in table.columns:
        table["year"] = table["year"].astype("Int64")
    for col in ("genres", "alternates"):
        if col in table.columns:
            table[col] = [list(v) if v is not None and not _scalar_missing(v) else None
                          for v in table[col]]
    about = _about(data["interactions"])
    return RecDataset(name or about.get("name") or "hf", inter, Catalog(table),
                      domain=about.get("domain", "item"),
                      domain_plural=about.get("domain_plural", "items"),
                      source=about.get("source") or "datasets.DatasetDict")


def _about(split) -> dict[str, Any]:
    try:
        return json.loads(split.info.description or "{}").get("recllm", {})
    except (ValueError, AttributeError):
        return {}


def _scalar_missing(v: Any) -> bool:
    return not hasattr(v, "__len__") and pd.isna(v)
