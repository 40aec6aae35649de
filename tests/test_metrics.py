"""Ranking metrics against hand-computed values and a naive reference; stats sanity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recllm.evaluate.metrics import RANKING_METRICS, coverage, novelty, popularity_percentiles, ranking_metrics, user_metrics
from recllm.evaluate.stats import bootstrap_means, bootstrap_ratio, paired_test


def test_single_target_by_hand():
    m = user_metrics(["a", "b", "c", "d"], {"c"}, [1, 5], RANKING_METRICS)
    assert m["rank"] == 3 and m["hit@1"] == 0 and m["hit@5"] == 1 and m["recall@5"] == 1
    assert m["ndcg@5"] == pytest.approx(0.5)            # 1 / log2(3 + 1)
    assert m["mrr@5"] == pytest.approx(1 / 3)
    assert m["map@5"] == pytest.approx(1 / 3)
    assert m["precision@5"] == pytest.approx(0.2)       # 1 hit / k, even though the list has 4
    assert m["ndcg@1"] == m["mrr@1"] == m["precision@1"] == 0


def test_multi_target_by_hand():
    m = user_metrics(["a", "b", "c", "d", "e"], {"a", "c", "z"}, [5], RANKING_METRICS)
    assert m["recall@5"] == pytest.approx(2 / 3)
    assert m["precision@5"] == pytest.approx(0.4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg@5"] == pytest.approx(1.5 / idcg)     # 0.7039
    assert m["map@5"] == pytest.approx((1 + 2 / 3) / 3)  # (P@1 + P@3) / min(|R|, k)
    assert m["mrr@5"] == 1.0


def test_empty_and_missing():
    m = user_metrics([], {"x"}, [1, 10], RANKING_METRICS)
    assert m.pop("rank") is None and all(v == 0 for v in m.values())
    m = user_metrics(["x"], {"x"}, [10], RANKING_METRICS)
    assert m["ndcg@10"] == 1 and m["precision@10"] == pytest.approx(0.1)


def _reference(ranked, rel, k):
    """Textbook definitions, one user at a time."""
    top = ranked[:k]
    hits = [1 if x in rel else 0 for x in top]
    dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
    idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rel), k)))
    first = next((i for i, h in enumerate(hits) if h), None)
    ap = sum(sum(hits[: i + 1]) / (i + 1) for i, h in enumerate(hits) if h) / min(len(rel), k)
    return {"hit": float(any(hits)), "recall": sum(hits) / len(rel), "precision": sum(hits) / k,
            "ndcg": dcg / idcg, "mrr": 0.0 if first is None else 1 / (first + 1), "map": ap}


def test_matches_reference_on_random_lists():
    rng = np.random.default_rng(0)
    ranked, relevant = [], []
    for _ in range(200):
        items = [str(i) for i in rng.permutation(30)[: rng.integers(0, 25)]]
        ranked.append(items)
        relevant.append({str(i) for i in rng.choice(30, size=rng.integers(1, 4), replace=False)})
    ks = [1, 3, 10, 20]
    table = ranking_metrics(ranked, relevant, ks)
    for u in range(len(ranked)):
        for k in ks:
            ref = _reference(ranked[u], relevant[u], k)
            for name, value in ref.items():
                assert table[f"{name}@{k}"][u] == pytest.approx(value), (u, k, name)


def test_coverage_popularity_novelty():
    assert coverage([["a", "b", "c"], ["a", "d"]], n_items=8, k=2) == pytest.approx(3 / 8)
    pct = popularity_percentiles({"a": 10, "b": 5, "c": 5, "d": 0})
    assert pct == {"a": 1.0, "b": 0.75, "c": 0.75, "d": 0.25}
    assert novelty(["a"], {"a": 2}, n_users=8) == pytest.approx(2.0)   # -log2(2/8)
    assert novelty([], {"a": 2}, n_users=8) is None


def test_bootstrap_interval_contains_mean_and_is_seeded():
    v = np.random.default_rng(1).random(500)
    a = bootstrap_means({"x": v}, seed=3)["x"]
    b = bootstrap_means({"x": v}, seed=3)["x"]
    assert a == b and a["ci_low"] < a["mean"] < a["ci_high"]
    assert a["ci_high"] - a["ci_low"] == pytest.approx(2 * 1.96 * v.std() / np.sqrt(500), rel=0.2)
    r = bootstrap_ratio(np.array([1, 0, 2]), np.array([2, 2, 4]))
    assert r["mean"] == pytest.approx(3 / 8)


def test_paired_test_detects_shift_and_not_noise():
    rng = np.random.default_rng(2)
    a = rng.random(300)
    better = paired_test(a, a + 0.05 + rng.normal(0, 0.05, 300), seed=0)
    assert better["delta"] > 0 and better["p_value"] < 0.01 and better["ci_low"] > 0
    same = paired_test(a, a + rng.normal(0, 0.05, 300), seed=0)
    assert same["p_value"] > 0.01 and same["ci_low"] < 0 < same["ci_high"]
    assert paired_test(a, a)["p_value"] == 1.0
