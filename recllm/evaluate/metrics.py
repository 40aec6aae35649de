"""Ranking metrics as pure, vectorized functions (RecBole `metrics.py` style).

Every ranking metric takes `pos_index`, a boolean matrix of shape (users, max_k) where
`pos_index[u, i]` says whether the item at rank i+1 of user u's list is relevant, and
`pos_len`, the number of relevant items per user (1 under leave-one-out). It returns a float
matrix of the same shape whose column k-1 holds the metric @k, so one pass gives every K.
A list shorter than max_k is padded with False: a missing slot is never a hit.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recllm.registry import Registry

def hits_matrix(ranked: Sequence[Sequence[str]], relevant: Sequence[Collection[str]],
                max_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(pos_index, pos_len) for ranked lists of item ids against sets of relevant ids."""
    pos = np.zeros((len(ranked), max_k), dtype=bool)
    for u, (items, rel) in enumerate(zip(ranked, relevant)):
        for i, item in enumerate(items[:max_k]):
            if item in rel:
                pos[u, i] = True
    pos_len = np.array([len(r) for r in relevant], dtype=np.int64)
    return pos, pos_len


def hit(pos_index: np.ndarray, pos_len: np.ndarray | None = None) -> np.ndarray:
    """HR@k: 1 if any relevant item is in the top k, else 0.

    .. math:: \\mathrm{HR@}k = \\mathbb{1}\\left[\\sum_{i=1}^{k} rel_i > 0\\right]
    """
    return (np.cumsum(pos_index, axis=1) > 0).astype(float)


def recall(pos_index: np.ndarray, pos_len: np.ndarray) -> np.ndarray:
    """Recall@k: share of the relevant items found in the top k (= HR@k with one target).

    .. math:: \\mathrm{Recall@}k = \\frac{\\sum_{i=1}^{k} rel_i}{|R_u|}
    """
    return np.cumsum(pos_index, axis=1) / np.maximum(pos_len, 1)[:, None]


def precision(pos_index: np.ndarray, pos_len: np.ndarray | None = None) -> np.ndarray:
    """Precision@k: share of the top k that is relevant (a list shorter than k still divides by k).

    .. math:: \\mathrm{Precision@}k = \\frac{1}{k}\\sum_{i=1}^{k} rel_i
    """
    return np.cumsum(pos_index, axis=1) / np.arange(1, pos_index.shape[1] + 1)


def mrr(pos_index: np.ndarray, pos_len: np.ndarray | None = None) -> np.ndarray:
    """MRR@k: reciprocal rank of the first relevant item within the top k, else 0.

    .. math:: \\mathrm{MRR@}k = \\frac{1}{\\mathrm{rank}_u} \\text{ if } \\mathrm{rank}_u \\le k \\text{ else } 0
    """
    n, max_k = pos_index.shape
    first = np.where(pos_index.any(axis=1), pos_index.argmax(axis=1), max_k)
    ks = np.arange(max_k)
    out = np.where(ks[None, :] >= first[:, None], 1.0 / (first[:, None] + 1.0), 0.0)
    return out


def ndcg(pos_index: np.ndarray, pos_len: np.ndarray) -> np.ndarray:
    """NDCG@k with binary relevance: DCG over the ideal DCG of min(|R_u|, k) hits at the top.

    .. math::
        \\mathrm{DCG@}k = \\sum_{i=1}^{k} \\frac{rel_i}{\\log_2(i+1)}, \\quad
        \\mathrm{IDCG@}k = \\sum_{i=1}^{\\min(|R_u|, k)} \\frac{1}{\\log_2(i+1)}, \\quad
        \\mathrm{NDCG@}k = \\frac{\\mathrm{DCG@}k}{\\mathrm{IDCG@}k}

    With one target at rank r this is 1/log2(r+1) when r <= k.
    """
    n, max_k = pos_index.shape
    discount = 1.0 / np.log2(np.arange(2, max_k + 2))
    dcg = np.cumsum(pos_index * discount, axis=1)
    ideal_len = np.minimum(pos_len[:, None], np.arange(1, max_k + 1)[None, :])
    idcg_table = np.concatenate([[0.0], np.cumsum(discount)])
    idcg = idcg_table[ideal_len]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def map_(pos_index: np.ndarray, pos_len: np.ndarray) -> np.ndarray:
    """MAP@k: mean of Precision@i over the ranks i <= k that hold a relevant item.

    .. math:: \\mathrm{AP@}k = \\frac{1}{\\min(|R_u|, k)} \\sum_{i=1}^{k} rel_i \\cdot \\mathrm{Precision@}i

    With one target at rank r this equals MRR@k (1/r when r <= k).
    """
    max_k = pos_index.shape[1]
    ranks = np.arange(1, max_k + 1)
    precision_at = np.cumsum(pos_index, axis=1) / ranks
    summed = np.cumsum(precision_at * pos_index, axis=1)
    denom = np.minimum(pos_len[:, None], ranks[None, :])
    return np.divide(summed, denom, out=np.zeros_like(summed), where=denom > 0)


# --- the registry ----------------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    """What a metric is: `kind` ("ranking", "validity" or "beyond-accuracy"), its direction,
    for ranking metrics `fn(pos_index, pos_len)` (see the module docstring), whether samples
    store it per user, and the report column it fills (None: results.json only; the `headline`
metric comes first). A plugin adds
    one by pointing a `recllm.metrics` entry point at a Metric."""

    name: str
    kind: str
    higher_is_better: bool
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    per_user: bool = False
    column: str | None = None
    headline: bool = False       # the report's first column of its kind, with its interval


METRICS = Registry("metric", "recllm.metrics", {m.name: m for m in (
    Metric("hit", "ranking", True, hit, per_user=True, column="hit"),
    Metric("recall", "ranking", True, recall),
    Metric("ndcg", "ranking", True, ndcg, per_user=True, column="ndcg", headline=True),
    Metric("mrr", "ranking", True, mrr, per_user=True, column="mrr"),
    Metric("precision", "ranking", True, precision),
    Metric("map", "ranking", True, map_),
    # validity: rates over users or titles (see recllm.evaluate.aggregate.validity_rates)
    Metric("parse_failure_rate", "validity", False, column="parse_fail"),
    Metric("error_rate", "validity", False),
    Metric("out_of_catalog_rate", "validity", False, column="out_of_catalog"),
    Metric("out_of_candidates_rate", "validity", False),
    Metric("duplicate_rate", "validity", False),
    Metric("history_repeat_rate", "validity", False, column="history_rep"),
    Metric("shortfall_rate", "validity", False, column="shortfall"),
    # beyond accuracy
    Metric("coverage", "beyond-accuracy", True, column="coverage"),
    Metric("popularity_percentile", "beyond-accuracy", False, column="pop_pct"),
    Metric("novelty", "beyond-accuracy", True),
    Metric("gini", "beyond-accuracy", False),
    Metric("intra_list_diversity", "beyond-accuracy", True),
)})


def metrics_of(kind: str) -> list[Metric]:
    """Registered metrics of one kind, built-ins first, in registry order."""
    found = [METRICS.get(n) for n in METRICS.names()]
    return [m for m in found if m.kind == kind]


RANKING_METRICS = tuple(m.name for m in metrics_of("ranking"))
SAMPLE_METRICS = tuple(m.name for m in metrics_of("ranking") if m.per_user)


def ranking_metrics(ranked: Sequence[Sequence[str]], relevant: Sequence[Collection[str]],
                    ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-user values of every ranking metric at every k: {"ndcg@10": array(users), ...}."""
    max_k = max(ks)
    pos, pos_len = hits_matrix(ranked, relevant, max_k)
    out: dict[str, np.ndarray] = {}
    for metric in metrics_of("ranking"):
        table = metric.fn(pos, pos_len)
        for k in ks:
            out[f"{metric.name}@{k}"] = table[:, k - 1]
    return out


def users_metrics(ranked: Sequence[Sequence[str]], relevant: Sequence[Collection[str]],
                  ks: Sequence[int], names: Sequence[str] | None = None
                  ) -> list[dict[str, float | int | None]]:
    """Each user's `rank` (1-based position of the first relevant item, None if absent) and
    the per-user metrics at every k: what samples.jsonl stores per user for people to read
    (with one target, recall = hit, map = mrr and precision = hit / k)."""
    names = SAMPLE_METRICS if names is None else names
    table = ranking_metrics(ranked, relevant, ks)
    out = []
    for u, (items, rel) in enumerate(zip(ranked, relevant)):
        rank = next((i + 1 for i, item in enumerate(items) if item in rel), None)
        out.append({"rank": rank, **{f"{n}@{k}": round(float(table[f"{n}@{k}"][u]), 10)
                                     for n in names for k in ks}})
    return out


def relevant_items(sample: Mapping[str, Any]) -> set[str]:
    """The relevant items of one user (a UserCase or a samples.jsonl line): every held-out
    target. The one definition the pipeline, results.json and reports all use."""
    targets = sample.get("targets") if isinstance(sample, Mapping) else sample.targets
    if targets:
        return set(targets)
    return {sample["target"] if isinstance(sample, Mapping) else sample.target}


def user_metrics(ranked: Sequence[str], relevant: Collection[str], ks: Sequence[int],
                 names: Sequence[str] | None = None) -> dict[str, float | int | None]:
    """`users_metrics` for one user."""
    return users_metrics([ranked], [relevant], ks, names)[0]


# --- beyond accuracy -----------------------------------------------------------------

def coverage(ranked: Sequence[Sequence[str]], n_items: int, k: int) -> float:
    """Catalog coverage@k: distinct items recommended in anyone's top k over the catalog size.

    .. math:: \\mathrm{Coverage@}k = \\frac{|\\bigcup_u \\mathrm{top}_k(u)|}{|I|}
    """
    seen = {item for items in ranked for item in items[:k]}
    return len(seen) / n_items if n_items else 0.0


def popularity_percentiles(counts: dict[str, int]) -> dict[str, float]:
    """Each item's popularity percentile in (0, 1]: the share of items at most as popular.

    Items never seen in training get the percentile of a count of 0.
    """
    values = np.sort(np.fromiter(counts.values(), dtype=np.int64, count=len(counts)))
    pct = np.searchsorted(values, list(counts.values()), side="right") / max(len(values), 1)
    return dict(zip(counts.keys(), pct.tolist()))


def novelty(items: Sequence[str], counts: dict[str, int], n_users: int) -> float | None:
    """Mean self-information of recommended items (higher = less popular, more novel).

    .. math:: \\mathrm{Novelty} = \\frac{1}{|L|}\\sum_{i \\in L} -\\log_2 \\frac{\\max(c_i, 1)}{|U|}

    where c_i is the item's training interaction count and |U| the number of training users.
    """
    if not items or n_users <= 0:
        return None
    c = np.array([max(counts.get(i, 0), 1) for i in items], dtype=float)
    return float(np.mean(-np.log2(c / n_users)))


def gini_exposure(ranked: Sequence[Sequence[str]], n_items: int, k: int) -> float:
    """Gini index of exposure@k over the catalog: 0 = every item recommended equally often,
    -> 1 = all exposure on one item. x_(1) <= ... <= x_(n) are the times each of the n catalog
    items appears in anyone's top k (items never recommended count as 0).

    .. math:: G = \\frac{\\sum_{i=1}^{n} (2i - n - 1)\\, x_{(i)}}{n \\sum_i x_{(i)}}
    """
    counts: dict[str, int] = {}
    for lst in ranked:
        for item in lst[:k]:
            counts[item] = counts.get(item, 0) + 1
    n = max(n_items, len(counts))
    if not counts or n == 0:
        return 0.0
    x = np.zeros(n)
    x[n - len(counts):] = np.sort(np.fromiter(counts.values(), dtype=float))
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * x.sum()))


def intra_list_diversity(vectors: np.ndarray) -> float | None:
    """Mean pairwise cosine distance among one list's items (rows: unit item embeddings).

    .. math:: \\mathrm{ILD} = \\frac{2}{|L|(|L|-1)} \\sum_{i<j} (1 - \\cos(v_i, v_j))

    None for lists of fewer than two embedded items.
    """
    n = len(vectors)
    if n < 2:
        return None
    sims = vectors @ vectors.T
    return float((n * n - sims.sum()) / (n * (n - 1)))  # diagonal: 1 - cos(v, v) = 0
