"""The two baselines every LLM recommender must beat: random and most-popular."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recllm.baselines.base import Baseline
from recllm.seeding import user_seed
from recllm.data.schema import UserCase


class RandomBaseline(Baseline):
    """Uniform random scores, seeded per (run seed, user): the floor any method must clear.

    Expected HR@k in candidate ranking with C candidates is k / C; NDCG@10 with 1+19 is
    (1/20) * sum_{r=1..10} 1/log2(r+1) = 0.227.
    """

    name = "random"

    def scores(self, cases: Sequence[UserCase]) -> np.ndarray:
        n = self.train.n_items
        return np.stack([np.random.default_rng(user_seed(self.seed, c.user_id, "random")).random(n)
                         for c in cases]) if cases else np.zeros((0, n))


class PopularityBaseline(Baseline):
    """Most-popular: score(i) = number of training interactions of item i, for every user.

    Training excludes the held-out test targets, so a test item's own test interactions never
    raise its score (LLMRank counts popularity over the whole dataset; see the README).
    """

    name = "popularity"

    def scores(self, cases: Sequence[UserCase]) -> np.ndarray:
        return np.broadcast_to(self.train.counts.astype(float), (len(cases), self.train.n_items))
