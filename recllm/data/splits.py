"""Evaluation splits: per user, what the model may see (history) and what it must find (target).

Both splits read interactions in the dataset's chronological order (user, timestamp, then
source row order), so the same data always gives the same cases.

- `leave_one_out`: test target = the user's last interaction, history = everything before it;
  validation target = the second to last, history = everything before that.
- `temporal_split`: one global cutoff time; test target = the user's first interaction at or
  after the cutoff (`targets` = all of them), history = everything before the cutoff.

Datasets without timestamps (Book-Crossing; `dataset.meta["timestamps"] is False`) have no
time order, and their file order is no substitute (BX lists each user's books by ISBN). For
them `order="random"` (what `order="auto"` picks) puts each user's interactions in a seeded
synthetic order: ascending `splitmix64(user_seed(seed, user_id, "order") XOR item_key)`, with
`item_key` the first 8 bytes (little-endian) of SHA-256(item id) and ties in source order. It
depends on nothing but (seed, user, item): the same on every run and machine, and unchanged for
the items that remain when others are filtered out. `order="time"` on such a dataset is an
error naming the missing `timestamp` column. Split.params / summary() say which order was used
and whether it is synthetic, so "last item" is never read as "latest".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np
import pandas as pd

from recllm.data.schema import RecDataset, UserCase
from recllm.errors import RecllmError
from recllm.seeding import user_seed

Order = Literal["auto", "time", "random"]
ORDERS = ("auto", "time", "random")


@dataclass
class Split:
    """Test and validation cases, and how many users had too little history to get one."""

    test: list[UserCase]
    valid: list[UserCase]
    skipped: int = 0  # users dropped from `test` (history shorter than min_history)
    skipped_valid: int = 0  # users without a validation case
    protocol: str = "leave_one_out"
    params: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"protocol": self.protocol, **self.params, "test_users": len(self.test),
                "valid_users": len(self.valid), "skipped": self.skipped,
                "skipped_valid": self.skipped_valid,
                "truncated_users": sum(1 for c in self.test if c.truncated)}


def has_timestamps(dataset: RecDataset | pd.DataFrame) -> bool:
    """False when the loader said its source has no time (`meta["timestamps"] is False`): the
    `timestamp` column then holds the source row order."""
    return getattr(dataset, "meta", {}).get("timestamps", True) is not False


def resolve_order(dataset: RecDataset | pd.DataFrame, order: str = "auto") -> str:
    """"time" or "random": `auto` picks time when the dataset has timestamps."""
    if order not in ORDERS:
        raise RecllmError(f"unknown order {order!r}", where="order", hint="use one of: auto, time, random")
    if order == "auto":
        return "time" if has_timestamps(dataset) else "random"
    if order == "time" and not has_timestamps(dataset):
        name = getattr(dataset, "name", "this dataset")
        raise RecllmError(f"time needs a `timestamp` column, and {name} has none (its "
                          "interactions carry no time)", where="order",
                          hint="use order: random (a seeded per-user shuffle), or leave order unset")
    return order


def order_info(dataset: RecDataset | pd.DataFrame, order: str = "auto", seed: int = 0) -> dict[str, Any]:
    """What results and stats record about the order a split used."""
    kind = resolve_order(dataset, order)
    if kind == "time":
        return {"order": "time", "synthetic": False}
    why = ("the dataset has no timestamps" if not has_timestamps(dataset)
           else "order: random was asked for")
    return {"order": "random", "synthetic": True, "order_seed": int(seed),
            "note": f"{why}: each user's items are in a seeded synthetic order, so the held-out "
                    "'last' item is a random one, not the latest"}


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on uint64 (wrapping arithmetic: the same on every machine)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def random_order(inter: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Row positions putting `inter` in the synthetic order: users in their order of first
    appearance, each user's rows by the key described in the module docstring."""
    user_codes, user_ids = pd.factorize(inter["user_id"])
    item_codes, item_ids = pd.factorize(inter["item_id"])
    # .tolist() first: iterating an Arrow-backed index directly is 2x slower
    user_keys = np.array([user_seed(seed, str(u), "order") for u in user_ids.tolist()], dtype=np.uint64)
    item_keys = np.array([int.from_bytes(hashlib.sha256(str(i).encode()).digest()[:8], "little")
                          for i in item_ids.tolist()], dtype=np.uint64)
    keys = _mix64(user_keys[user_codes] ^ item_keys[item_codes])
    return np.lexsort((keys, user_codes))  # stable: equal keys keep the source order


def reorder(dataset: RecDataset, order: str = "auto", seed: int = 0) -> RecDataset:
    """The dataset with its interactions in the order a split uses (the same object for time
    order); what trained sequence baselines should read, so they see the split's order.
    `timestamp` values are kept, so held-out targets are still found by them."""
    from dataclasses import replace

    info = order_info(dataset, order, seed)
    if info["order"] == "time":
        return dataset
    rows = random_order(dataset.interactions, seed)
    inter = dataset.interactions.iloc[rows].reset_index(drop=True)
    return replace(dataset, interactions=inter, meta={**dataset.meta, "order": info})


def _user_blocks(inter: pd.DataFrame, *, by_time: bool = True):
    """Arrays of the ordered interactions and each user's [start, end) block. `by_time=False`:
    the rows are already in a synthetic order (random_order), users contiguous; keep it."""
    users = inter["user_id"].to_numpy()
    times = inter["timestamp"].to_numpy()
    change = np.flatnonzero(users[1:] != users[:-1]) + 1
    starts = np.concatenate([[0], change]) if len(users) else np.array([], dtype=np.int64)
    ends = np.concatenate([change, [len(users)]]) if len(users) else np.array([], dtype=np.int64)
    ordered = not by_time or len(set(users[starts])) == len(starts) and bool(
        np.all((np.diff(times) >= 0) | np.isin(np.arange(1, len(times)), change)))
    if not ordered:  # not a load_dataset result: sort stably, keeping row order for ties
        inter = inter.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
        return _user_blocks(inter)
    return (users, inter["item_id"].to_numpy(), inter["rating"].to_numpy(dtype=np.float64),
            times.astype(np.int64), starts, ends)


def _ordered_blocks(dataset: RecDataset | pd.DataFrame, order: str, seed: int):
    """(_user_blocks arrays, order_info) for the order asked for."""
    info = order_info(dataset, order, seed)
    inter = dataset.interactions if isinstance(dataset, RecDataset) else dataset
    if info["order"] == "random":
        inter = inter.iloc[random_order(inter, seed)].reset_index(drop=True)
        return _user_blocks(inter, by_time=False), info
    return _user_blocks(inter), info


def _case(user, items, ratings, times, lo: int, hi: int, target: int, max_history: int | None,
          targets: tuple[str, ...] = (), time_ordered: bool = True) -> UserCase:
    """History = rows [lo, hi), most recent `max_history` kept; seen = all of rows [lo, hi);
    target = row `target`."""
    cut = max(0, hi - lo - max_history) if max_history is not None else 0
    seen = frozenset(items[lo:hi].tolist())
    lo += cut
    return UserCase(
        user_id=str(user), history=tuple(items[lo:hi].tolist()), ratings=tuple(ratings[lo:hi].tolist()),
        timestamps=tuple(times[lo:hi].tolist()), target=str(items[target]),
        target_timestamp=int(times[target]), truncated=cut, targets=targets, seen=seen,
        time_ordered=time_ordered,
    )


def _check(max_history: int | None, min_history: int) -> None:
    if max_history is not None and max_history < 1:
        raise RecllmError(f"max_history must be at least 1, got {max_history}")
    if min_history < 0:
        raise RecllmError(f"min_history must be at least 0, got {min_history}")


def leave_one_out(dataset: RecDataset | pd.DataFrame, *, max_history: int | None = None,
                  min_history: int = 1, order: Order = "auto", seed: int = 0) -> Split:
    """Per user: last interaction = test target, second to last = validation target.

    A user needs `min_history` items before a target to get that case; the rest are counted
    in `skipped` / `skipped_valid`. `max_history` keeps only the most recent items of each
    history and records how many were cut in `UserCase.truncated`. `order` ("auto", "time",
    "random") and `seed` (of the synthetic order) are described in the module docstring.
    """
    _check(max_history, min_history)
    (users, items, ratings, times, starts, ends), info = _ordered_blocks(dataset, order, seed)
    test, valid, skipped, skipped_valid = [], [], 0, 0
    timed = not info.get("synthetic")
    for lo, hi in zip(starts.tolist(), ends.tolist()):
        user = users[lo]
        if hi - lo - 1 >= min_history:
            test.append(_case(user, items, ratings, times, lo, hi - 1, hi - 1, max_history,
                              time_ordered=timed))
        else:
            skipped += 1
        if hi - lo - 2 >= min_history and hi - lo >= 2:
            valid.append(_case(user, items, ratings, times, lo, hi - 2, hi - 2, max_history,
                               time_ordered=timed))
        else:
            skipped_valid += 1
    params = {"max_history": max_history, "min_history": min_history, **info}
    return Split(test, valid, skipped, skipped_valid, "leave_one_out", params)


def resolve_cutoff(inter: pd.DataFrame, cutoff: int | float | str) -> int:
    """Seconds since the epoch from a timestamp, a date string, or a fraction in (0, 1)
    (that quantile of all interaction times: 0.9 puts the last 10% of time after it)."""
    if isinstance(cutoff, str):
        try:
            when = datetime.fromisoformat(cutoff)
        except ValueError:
            raise RecllmError(f"cutoff {cutoff!r} is not a date", hint="use e.g. 2002-01-01 or a Unix time") from None
        when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        return int(when.timestamp())
    if isinstance(cutoff, float) and 0 < cutoff < 1:
        return int(np.quantile(inter["timestamp"].to_numpy(), cutoff, method="higher"))
    return int(cutoff)


def temporal_split(dataset: RecDataset | pd.DataFrame, cutoff: int | float | str, *,
                   max_history: int | None = None, min_history: int = 1) -> Split:
    """One global cutoff time for everybody (no peeking at the future of other users).

    Test: users with an interaction at or after the cutoff; history = their interactions
    before it; target = the first one after it, `targets` = all of them (repeats removed).
    Validation: leave-one-out inside each test user's pre-cutoff history.
    """
    _check(max_history, min_history)
    if not has_timestamps(dataset):  # a cutoff in row numbers would look like time
        name = getattr(dataset, "name", "this dataset")
        raise RecllmError(f"a temporal split needs a `timestamp` column, and {name} has none",
                          where="split", hint="use leave-one-out (its order: random is a seeded shuffle)")
    inter = dataset.interactions if isinstance(dataset, RecDataset) else dataset
    at = resolve_cutoff(inter, cutoff)
    users, items, ratings, times, starts, ends = _user_blocks(inter)
    test, valid, skipped, skipped_valid, no_future = [], [], 0, 0, 0
    for lo, hi in zip(starts.tolist(), ends.tolist()):
        split = lo + int(np.searchsorted(times[lo:hi], at, side="left"))
        if split == hi:
            no_future += 1
            continue
        if split - lo < min_history:
            skipped += 1
            continue
        future = tuple(dict.fromkeys(items[split:hi].tolist()))
        test.append(_case(users[lo], items, ratings, times, lo, split, split, max_history, future))
        if split - lo - 1 >= min_history and split > lo:
            valid.append(_case(users[lo], items, ratings, times, lo, split - 1, split - 1, max_history))
        else:
            skipped_valid += 1
    params = {"cutoff": at, "max_history": max_history, "min_history": min_history,
              "users_without_future": no_future}
    return Split(test, valid, skipped, skipped_valid, "temporal", params)
