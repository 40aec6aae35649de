"""What every classical baseline shares: the training matrix and ranking from scores.

Training data are every interaction except each evaluated user's held-out test target, so
popularity and co-occurrence never see what is being predicted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recllm.data.schema import Catalog, RecDataset, UserCase
from recllm.options import StrictOptions


@dataclass
class TrainData:
    """Items (the ones with interactions), their training counts, and the distinct
    (user, item) training pairs as index arrays."""

    items: np.ndarray            # item ids (str, object dtype), index i -> id
    index: dict[str, int]        # id -> index
    counts: np.ndarray           # training interactions per item (int64)
    users: dict[str, int]        # user id -> row
    user_codes: np.ndarray       # distinct (user, item) training pairs ...
    item_codes: np.ndarray       # ... as row / item indices
    # Each user's training interactions in time order (repeats kept): user r's items are
    # seq_items[seq_ptr[r]:seq_ptr[r + 1]] (sequential models); the catalog gives item text.
    seq_items: np.ndarray | None = None
    seq_ptr: np.ndarray | None = None
    catalog: Catalog | None = field(default=None, repr=False)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_users(self) -> int:
        return len(self.users)

    def indices(self, ids: Iterable[str]) -> np.ndarray:
        """Item indices of known ids (unknown ids are dropped)."""
        idx = self.index
        return np.fromiter((idx[i] for i in ids if i in idx), dtype=np.int64)

    def count_of(self) -> dict[str, int]:
        return dict(zip(self.items.tolist(), self.counts.tolist()))

    def sequence(self, user_id: str) -> np.ndarray | None:
        """A user's training items (indices) oldest first, or None for a user without any."""
        row = self.users.get(user_id)
        if row is None or self.seq_ptr is None:
            return None
        return self.seq_items[self.seq_ptr[row]:self.seq_ptr[row + 1]]

    def fingerprint(self) -> str:
        """SHA-256 (16 hex) of what a model trains on: item and user ids, the training pairs
        and sequences. It differs between splits and regimes (which targets are held out), so
        a fitted-model cache keyed by it never serves a model trained on other data."""
        import hashlib

        h = hashlib.sha256()
        for part in (self.items.tolist(), sorted(self.users, key=self.users.get)):
            h.update("\x1f".join(map(str, part)).encode())
            h.update(b"\x1e")
        for arr in (self.user_codes, self.item_codes, self.seq_items, self.seq_ptr):
            if arr is not None:
                h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
            h.update(b"\x1e")
        return h.hexdigest()[:16]

    @property
    def matrix(self):
        """Binary users x items scipy.sparse csr matrix of the training pairs."""
        from scipy import sparse

        data = np.ones(len(self.user_codes), dtype=np.float32)
        return sparse.csr_matrix((data, (self.user_codes, self.item_codes)),
                                 shape=(self.n_users, self.n_items))


def training_data(dataset: RecDataset, held_out: Sequence[UserCase], *, fraction: float = 1.0,
                  max_users: int | None = None, seed: int = 0) -> TrainData:
    """Every interaction of `dataset` except the held-out targets of `held_out` users.

    A cold-start regime keeps less (seeded, so every run of a config sees the same data):
    `max_users` keeps the training interactions of that many users (drawn uniformly), then
    `fraction` keeps that share of the remaining interactions (drawn uniformly). The item
    index stays the full one, so candidates and scores line up across regimes."""
    inter = dataset.interactions
    items = np.array(sorted(inter["item_id"].unique()), dtype=object)
    index = {item: i for i, item in enumerate(items.tolist())}
    if held_out:
        targets = pd.DataFrame({"user_id": [c.user_id for c in held_out],
                                "item_id": [c.target for c in held_out],
                                "timestamp": [c.target_timestamp for c in held_out]})
        targets["timestamp"] = targets["timestamp"].astype(inter["timestamp"].dtype)
        marked = inter[["user_id", "item_id", "timestamp"]].merge(
            targets.assign(_held=True), how="left", on=["user_id", "item_id", "timestamp"])
        train = inter[marked["_held"].isna().to_numpy()]
    else:
        train = inter
    if fraction < 1.0 or max_users is not None:
        train = _regime(train, fraction, max_users, seed)
    user_codes, user_ids = pd.factorize(train["user_id"], sort=True)
    item_codes = train["item_id"].map(index).to_numpy(dtype=np.int64)
    counts = np.bincount(item_codes, minlength=len(items)).astype(np.int64)
    # repeated (user, item) pairs count once in the co-occurrence matrix
    pairs = np.unique(user_codes.astype(np.int64) * len(items) + item_codes)
    # interactions are in time order within a user: a stable sort by user keeps it
    order = np.argsort(user_codes, kind="stable")
    seq_ptr = np.concatenate([[0], np.cumsum(np.bincount(user_codes, minlength=len(user_ids)))])
    return TrainData(items, index, counts, {u: i for i, u in enumerate(user_ids)},
                     pairs // len(items), pairs % len(items),
                     seq_items=item_codes[order], seq_ptr=seq_ptr.astype(np.int64),
                     catalog=dataset.catalog)


def _regime(train: pd.DataFrame, fraction: float, max_users: int | None, seed: int) -> pd.DataFrame:
    """The seeded subset of `train` a cold-start regime may see (rows keep their order)."""
    rng = np.random.default_rng([seed, 0x7EA1])
    if max_users is not None:
        users = train["user_id"].unique()
        if max_users < len(users):
            keep = rng.choice(len(users), size=max_users, replace=False)
            train = train[train["user_id"].isin(users[np.sort(keep)])]
    if fraction < 1.0:
        n = int(round(len(train) * fraction))
        rows = np.sort(rng.choice(len(train), size=n, replace=False))
        train = train.iloc[rows]
    return train


class Baseline(ABC):
    """Scores items for users; ranking (exclusions, candidates, top-k) is shared.

    A baseline declares its settings as `Options` (a StrictOptions model: the eval config's
    `baseline_options: {name: {...}}` is validated against it, unknown keys refused) and
    whether it `trains` (fits a model on the training interactions, so it is logged and timed)."""

    name = "baseline"
    Options: type[StrictOptions] = StrictOptions
    trains = False

    def __init__(self, train: TrainData, seed: int = 0, options: StrictOptions | None = None):
        self.train, self.seed = train, seed
        self.options = options if options is not None else self.Options()
        # How the model was fitted (seconds, device, cache hit ...), for results.json.
        self.fit_info: dict[str, Any] = {}

    @abstractmethod
    def scores(self, cases: Sequence[UserCase]) -> np.ndarray:
        """Dense (users, items) scores over `train.items`; higher is better."""

    def rank(self, cases: Sequence[UserCase], k: int,
             candidates: Sequence[Sequence[str] | None] | None = None,
             exclude_history: bool = True) -> list[list[str]]:
        """Top-k item ids per user: over `candidates[u]` when given (in their shown order for
        ties), else over every item the user has not seen (`case.seen`: the whole history
        before the target, not only the window a prompt shows)."""
        out: list[list[str]] = []
        step = max(1, (1 << 22) // max(self.train.n_items, 1))  # bound the dense block's memory
        for start in range(0, len(cases), step):
            block = cases[start:start + step]
            table = self.scores(block)
            for row, case in enumerate(block):
                cands = candidates[start + row] if candidates is not None else None
                out.append(self._top(table[row], case, k, cands, exclude_history))
        return out

    def _top(self, scores: np.ndarray, case: UserCase, k: int, cands: Sequence[str] | None,
             exclude_history: bool) -> list[str]:
        if cands is not None:
            idx = [self.train.index.get(c, -1) for c in cands]
            s = np.array([scores[i] if i >= 0 else -np.inf for i in idx])
            order = np.argsort(-s, kind="stable")[:k]
            return [cands[i] for i in order]
        s = scores.astype(float, copy=True)
        if exclude_history:
            s[self.train.indices(case.seen)] = -np.inf
        k_eff = min(k, len(s))
        top = np.argpartition(-s, k_eff - 1)[:k_eff] if k_eff < len(s) else np.arange(len(s))
        # Stable order among ties: by score, then item index.
        top = top[np.lexsort((top, -s[top]))]
        return [self.train.items[i] for i in top if np.isfinite(s[i])]


def require_data(train: TrainData, name: str, *, items: int = 2, users: int = 1,
                 pairs: int = 2) -> None:
    """Refuse to train on too little: a model fitted to a handful of pairs ranks by noise."""
    have = {"items": train.n_items, "users": train.n_users, "training interactions": len(train.user_codes)}
    need = {"items": items, "users": users, "training interactions": pairs}
    for what, n in need.items():
        if have[what] < n:
            from recllm.errors import RecllmError
            raise RecllmError(f"baseline {name!r} needs at least {n} {what} to train on; the "
                              f"training data have {have[what]}", where=f"baselines: {name}",
                              hint="use a larger dataset (or users / min_history that keep more), "
                                   "or drop this baseline")
