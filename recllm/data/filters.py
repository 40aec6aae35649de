"""Which interactions to keep, and in what order.

Applied by `load_dataset` in this order: positive threshold on rating, duplicate (user, item)
handling, k-core, then chronological sort. The sort is the stable tie-break every split relies
on: user, then timestamp, then the row order of the source file (`_order`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recllm.errors import RecllmError


def min_rating(frame: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """Keep interactions rated at least `threshold` (the "positives"); unrated rows go too."""
    if threshold is None:
        return frame
    if frame["rating"].isna().all():
        raise RecllmError(f"min_rating={threshold} asks for ratings, but this dataset has none",
                          hint="drop --min-rating, or map the rating column with --rating-col")
    return frame[(frame["rating"] >= threshold).to_numpy()]


def deduplicate(frame: pd.DataFrame, keep: str = "first") -> pd.DataFrame:
    """Repeated (user, item) pairs: keep the earliest ("first"), the latest ("last"), or "all".

    "Earliest" follows the chronological tie-break, so the result does not depend on how the
    source file happens to be ordered beyond that.
    """
    if keep == "all" or frame.empty:
        return frame
    # On integer codes and an index order, not sorted copies of the frame (big tables).
    users, _ = pd.factorize(frame["user_id"])
    items, item_ids = pd.factorize(frame["item_id"])
    pair = users.astype(np.int64) * max(len(item_ids), 1) + items
    order = np.lexsort((frame["_order"].to_numpy(), frame["timestamp"].to_numpy()))
    dup = np.empty(len(frame), dtype=bool)
    dup[order] = pd.Series(pair[order]).duplicated(keep=keep).to_numpy()
    return frame[~dup] if dup.any() else frame


def k_core(frame: pd.DataFrame, k: int | None) -> pd.DataFrame:
    """Iteratively drop users and items with fewer than `k` interactions until none remain.

    One pass is not enough: dropping a sparse item can push a user below k, and so on.
    """
    if not k or k <= 1:
        return frame
    while True:
        user_counts = frame["user_id"].map(frame["user_id"].value_counts())
        item_counts = frame["item_id"].map(frame["item_id"].value_counts())
        keep = ((user_counts >= k) & (item_counts >= k)).to_numpy()
        if keep.all():
            return frame
        frame = frame[keep]


def _user_order(users: pd.Series) -> np.ndarray:
    """Sort key for users: numeric when every id is a number ("2" before "10"), else text."""
    codes, unique = pd.factorize(users)
    unique = [str(u) for u in unique]
    numeric = all(u.isdigit() for u in unique)
    order = sorted(range(len(unique)), key=(lambda i: int(unique[i])) if numeric else unique.__getitem__)
    rank = np.empty(len(unique), dtype=np.int64)
    rank[order] = np.arange(len(unique))
    return rank[codes]


def chronological(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort by user, timestamp, then source row order; drop the helper column."""
    if frame.empty:
        return frame.drop(columns="_order").reset_index(drop=True)
    keys = np.lexsort((frame["_order"].to_numpy(), frame["timestamp"].to_numpy(), _user_order(frame["user_id"])))
    return frame.iloc[keys].drop(columns="_order").reset_index(drop=True)


def apply_filters(frame: pd.DataFrame, *, threshold: float | None, duplicates: str,
                  k: int | None, where: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """All filters in the documented order; an empty result is an error that says which step."""
    counts: dict[str, Any] = {"read": len(frame)}
    steps = [("min_rating", lambda f: min_rating(f, threshold)),
             ("duplicates", lambda f: deduplicate(f, duplicates)),
             ("k_core", lambda f: k_core(f, k))]
    for name, step in steps:
        before = len(frame)
        frame = step(frame)
        if len(frame) != before:
            counts[f"removed_by_{name}"] = before - len(frame)
        if frame.empty and before:
            value = {"min_rating": threshold, "duplicates": duplicates, "k_core": k}[name]
            raise RecllmError(f"no interactions left after {name}={value} (had {before:,})",
                              where=where, hint=f"relax {name.replace('_', '-')} and try again")
    if frame.empty:
        raise RecllmError("no interactions", where=where, hint="check that the file has data rows")
    return chronological(frame), counts
