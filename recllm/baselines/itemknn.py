"""Item-kNN: items are similar when the same users interacted with both (Sarwar et al. 2001).

sim(i, j) = |U_i ∩ U_j| / sqrt(|U_i| |U_j|)   (cosine on binary user-item co-occurrence)

Each item keeps its `neighbors` most similar items; a user's score for item i is the sum of
sim(j, i) over the items j in the user's shown (possibly truncated) history. Everything is
sparse matrix algebra (scipy), so ML-1M fits in a few seconds on two cores; memory is bounded
by the item count times `neighbors` plus one block of rows, and time is linear in interactions
(users above `max_user_items` contribute a seeded subset).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pydantic import Field

from recllm.baselines.base import Baseline, TrainData
from recllm.data.schema import UserCase
from recllm.options import StrictOptions


def cosine_neighbors(matrix, neighbors: int, block_entries: int = 1 << 23):
    """Item x item cosine similarity of a binary (users x items) csr matrix, top `neighbors`
    per row, diagonal removed. Returns a csr matrix whose row j holds sim(j, ·).

    Rows are computed in blocks and pruned at once, so the unpruned co-occurrence never holds
    more than about `block_entries` entries (one user with every item would otherwise make it
    items x items)."""
    from scipy import sparse

    x = matrix.tocsc().astype(np.float32)
    n = x.shape[1]
    norms = np.sqrt(np.asarray(x.sum(axis=0), dtype=np.float64).ravel())  # |U_i| (binary)
    xt = x.T.tocsr()
    step = max(1, block_entries // max(n, 1))
    parts = []
    for lo in range(0, n, step):
        co = (xt[lo:lo + step] @ x).tocoo()        # co[i - lo, j] = |U_i ∩ U_j|
        off = co.row + lo != co.col
        rows, cols, data = co.row[off], co.col[off], co.data[off]
        denom = norms[rows + lo] * norms[cols]
        vals = np.divide(data, denom, out=np.zeros(len(data)), where=denom > 0)
        block = sparse.csr_matrix((vals, (rows, cols)), shape=(co.shape[0], n))
        block.eliminate_zeros()
        parts.append(_prune_rows(block, neighbors))
    if not parts:
        return sparse.csr_matrix((n, n))
    return sparse.vstack(parts, format="csr")


def cap_user_items(user_codes: np.ndarray, item_codes: np.ndarray, cap: int, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """At most `cap` items per user (a seeded random subset for users above it), so the work of
    co-occurrence, sum over users of min(n_u, cap)^2, stays linear in interactions."""
    counts = np.bincount(user_codes)
    if not len(counts) or counts.max() <= cap:
        return user_codes, item_codes
    rng = np.random.default_rng(seed)
    keep = np.ones(len(user_codes), bool)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])  # pairs are sorted by user
    for u in np.flatnonzero(counts > cap):
        lo = starts[u]
        drop = rng.choice(counts[u], size=counts[u] - cap, replace=False)
        keep[lo + drop] = False
    return user_codes[keep], item_codes[keep]


def _prune_rows(sim, keep: int):
    """Keep the `keep` largest entries of each row (ties broken by column index)."""
    from scipy import sparse

    rows, cols, vals = [], [], []
    for r in range(sim.shape[0]):
        lo, hi = sim.indptr[r], sim.indptr[r + 1]
        c, v = sim.indices[lo:hi], sim.data[lo:hi]
        if len(v) > keep:
            top = np.lexsort((c, -v))[:keep]
            c, v = c[top], v[top]
        rows.append(np.full(len(c), r)), cols.append(c), vals.append(v)
    if not rows:
        return sim
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=sim.shape)


class ItemKNNOptions(StrictOptions):
    neighbors: int = Field(100, ge=1, description="similar items kept per item")
    # ML-1M's largest user has 2,314 items, so the default leaves it untouched; a 100,000-item
    # user would otherwise cost 10^10 pair updates.
    max_user_items: int = Field(5000, ge=1, description="users with more training items "
                                "contribute a seeded random subset of this many")


class ItemKNNBaseline(Baseline):
    """Item-based collaborative filtering with cosine similarity (see module docstring)."""

    name = "itemknn"
    Options = ItemKNNOptions
    trains = True

    def __init__(self, train: TrainData, seed: int = 0, options: ItemKNNOptions | None = None):
        super().__init__(train, seed, options)
        neighbors = self.neighbors = self.options.neighbors
        users, items = cap_user_items(train.user_codes, train.item_codes,
                                      self.options.max_user_items, seed)
        from scipy import sparse

        matrix = sparse.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)),
                                   shape=(train.n_users, train.n_items))
        self.sim = cosine_neighbors(matrix, neighbors)

    def scores(self, cases: Sequence[UserCase]) -> np.ndarray:
        if not cases:
            return np.zeros((0, self.train.n_items))
        hist = np.zeros((len(cases), self.train.n_items))
        for r, case in enumerate(cases):
            hist[r, self.train.indices(case.history)] = 1.0
        # Popularity as a tiny tie-breaker, so users with no usable history still get a ranking.
        tie = self.train.counts / (self.train.counts.max() + 1.0) * 1e-6
        return np.asarray((self.sim.T @ hist.T).T) + tie
