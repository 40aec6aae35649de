"""Candidate lists, decided per user before the model answers (see recllm.evaluate.protocols):

- sampled: the held-out positive plus N negatives (LLMRank uses N = 19), drawn uniformly or by
  training popularity from items the user has never interacted with, then shuffled;
- retrieved: the top N of a baseline for the user, as the first stage of a two-stage system
  would give; the positive may be missing (a miss for everyone);
- re-asks: the same candidates re-shuffled, and the answers merged into one ranking.

Every random choice is seeded by (run seed, user id), so a user's candidates do not depend on
which other users are evaluated, on batch order, or on resuming.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recllm.baselines.base import Baseline, TrainData
from recllm.seeding import user_seed
from recllm.data.schema import UserCase
from recllm.errors import RecllmError

@dataclass(frozen=True)
class CandidateSet:
    """Items shown to the model in this order; `target_position` is the 0-based position of the
    held-out item in `items` (None when a retriever missed it)."""

    items: tuple[str, ...]
    target_position: int | None


def shuffled(items: Sequence[str], seed: int, user_id: str, ask: int = 0) -> list[str]:
    """A per-user, per-ask seeded permutation (ask 0 is the first showing)."""
    rng = np.random.default_rng(user_seed(seed, user_id, f"shuffle:{ask}"))
    return [items[i] for i in rng.permutation(len(items))]


def _position(items: Sequence[str], target: str) -> int | None:
    try:
        return list(items).index(target)
    except ValueError:
        return None


class NegativeSampler:
    """Draws N negatives per user from the items with training interactions.

    `uniform`: every unseen item equally likely. `popularity`: probability proportional to the
    item's training count (harder negatives; items never interacted with in training are never
    drawn). Rejection sampling against the user's seen items, with an exact fallback.
    """

    def __init__(self, train: TrainData, n: int, sampling: str = "uniform", seed: int = 0):
        if sampling not in ("uniform", "popularity"):
            raise RecllmError(f"unknown negative sampling {sampling!r}",
                              hint="use 'uniform' or 'popularity'")
        self.train, self.n, self.sampling, self.seed = train, n, sampling, seed
        drawable = train.counts > 0 if sampling == "popularity" else np.ones(train.n_items, bool)
        self.drawable = int(drawable.sum())
        if self.drawable < n + 1:
            raise RecllmError(
                f"the dataset has {self.drawable} items to draw from but the protocol needs "
                f"1 positive + {n} negatives",
                where="negatives", hint=f"ask for at most {max(self.drawable - 1, 0)} negatives "
                "or use a bigger dataset")
        weights = train.counts.astype(float) if sampling == "popularity" else np.ones(train.n_items)
        self.cdf = np.cumsum(weights) / weights.sum()

    def available(self, seen_idx: np.ndarray) -> int:
        """How many items this user could still get as negatives."""
        if self.sampling == "popularity":
            return self.drawable - int((self.train.counts[seen_idx] > 0).sum())
        return self.drawable - len(seen_idx)

    def sample(self, user_id: str, seen: set[str]) -> list[str]:
        rng = np.random.default_rng(user_seed(self.seed, user_id, "negatives"))
        seen_idx = np.unique(self.train.indices(seen))
        if self.available(seen_idx) < self.n:
            raise _NotEnough(f"fewer than {self.n} unseen items left to draw negatives from")
        blocked = set(seen_idx.tolist())
        picked: list[int] = []
        for _ in range(20):  # rejection rounds; each draws more than is needed
            draws = np.searchsorted(self.cdf, rng.random(2 * self.n + 8), side="right")
            for i in draws.tolist():
                if i not in blocked:
                    blocked.add(i)
                    picked.append(i)
                    if len(picked) == self.n:
                        return [self.train.items[j] for j in picked]
        # Exact fallback for users who have seen most of the catalog.
        mask = np.ones(self.train.n_items, bool)
        mask[list(blocked)] = False
        if self.sampling == "popularity":
            mask &= self.train.counts > 0
        pool = np.flatnonzero(mask)
        p = self.train.counts[pool] / self.train.counts[pool].sum() \
            if self.sampling == "popularity" else None
        rest = rng.choice(pool, size=self.n - len(picked), replace=False, p=p)
        return [self.train.items[j] for j in [*picked, *rest.tolist()]]


class _NotEnough(Exception):
    """A user for whom the protocol cannot be built (counted as a skip, with the reason)."""


def seen_items(case: UserCase, all_seen: dict[str, set[str]] | None) -> set[str]:
    """Everything the user ever interacted with (whole dataset when known, else everything
    before the target, plus the targets)."""
    if all_seen is not None and case.user_id in all_seen:
        return all_seen[case.user_id]
    return {*case.seen, *case.targets}


def sampled_candidates(cases: Sequence[UserCase], sampler: NegativeSampler, seed: int,
                       all_seen: dict[str, set[str]] | None, shuffle: bool = True
                       ) -> tuple[list[CandidateSet | None], list[str | None]]:
    """Positive + N negatives per user; None with a reason for users that cannot get them."""
    out: list[CandidateSet | None] = []
    reasons: list[str | None] = []
    for case in cases:
        try:
            negatives = sampler.sample(case.user_id, seen_items(case, all_seen))
        except _NotEnough as exc:
            out.append(None)
            reasons.append(str(exc))
            continue
        items = [case.target, *negatives]
        if shuffle:
            items = shuffled(items, seed, case.user_id)
        out.append(CandidateSet(tuple(items), _position(items, case.target)))
        reasons.append(None)
    return out, reasons


def retrieved_candidates(cases: Sequence[UserCase], retriever: Baseline, n: int, seed: int,
                         shuffle: bool = True) -> list[CandidateSet]:
    """The retriever's top n unseen items per user; the positive is there only if retrieved."""
    tops = retriever.rank(list(cases), n, exclude_history=True)
    out = []
    for case, items in zip(cases, tops):
        if shuffle:
            items = shuffled(items, seed, case.user_id)
        out.append(CandidateSet(tuple(items), _position(items, case.target)))
    return out


def merge_rankings(rankings: Sequence[Sequence[str]], method: str = "mrr") -> list[str]:
    """Merge the answers to re-shuffled showings of the same candidates into one ranking.

    - `mrr`: score(c) = (1/A) * sum_a 1/rank_a(c), 0 where ask a did not rank c;
    - `borda`: score(c) = (1/A) * sum_a (L_a - rank_a(c) + 1) / L_a, with L_a the length of
      ask a's list, 0 where c is absent.
    Only items some ask ranked appear (no padding); ties keep first-seen order.
    """
    if method not in ("mrr", "borda"):
        raise RecllmError(f"unknown bootstrap merge {method!r}", hint="use 'mrr' or 'borda'")
    scores: dict[str, float] = {}
    for ranking in rankings:
        n = len(ranking)
        for r, item in enumerate(ranking, start=1):
            gain = 1.0 / r if method == "mrr" else (n - r + 1) / n
            scores[item] = scores.get(item, 0.0) + gain
    order = list(scores)  # insertion order = first seen
    return sorted(order, key=lambda item: (-scores[item], order.index(item)))
