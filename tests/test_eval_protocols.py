"""Protocols: negatives never seen, seeded per user, popularity sampling, retrieval, merging."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from recllm.baselines import get_baseline, training_data
from recllm.data.schema import Catalog, RecDataset, UserCase
from recllm.errors import RecllmError
from recllm.evaluate.config import EvalConfig
from recllm.evaluate.candidates import (NegativeSampler, merge_rankings, retrieved_candidates,
                                       sampled_candidates, shuffled)


def synthetic(n_users=60, n_items=40, seed=0) -> tuple[RecDataset, list[UserCase]]:
    """Item i is drawn with probability ~ 1/(i+1): a long tail, like real data."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, n_items + 1)
    p /= p.sum()
    rows, cases = [], []
    for u in range(n_users):
        items = [str(i) for i in rng.choice(n_items, size=8, replace=False, p=p)]
        rows += [(f"u{u}", it, t, 1.0) for t, it in enumerate(items)]
        cases.append(UserCase(f"u{u}", tuple(items[:-1]), (1.0,) * 7, tuple(range(7)), items[-1], 7))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    table = pd.DataFrame({"item_id": [str(i) for i in range(n_items)],
                          "title": [f"T{i}" for i in range(n_items)]}).set_index("item_id")
    return RecDataset("syn", inter, Catalog(table)), cases


def test_negatives_unseen_seeded_and_order_independent():
    ds, cases = synthetic()
    train = training_data(ds, cases)
    sampler = NegativeSampler(train, 10, "uniform", seed=5)
    seen = {c.user_id: {*c.history, c.target} for c in cases}
    sets, reasons = sampled_candidates(cases, sampler, 5, seen)
    assert not any(reasons)
    for case, cs in zip(cases, sets):
        assert len(cs.items) == 11 == len(set(cs.items))
        assert cs.items[cs.target_position] == case.target
        assert not (set(cs.items) - {case.target}) & seen[case.user_id]
    again, _ = sampled_candidates(list(reversed(cases)), NegativeSampler(train, 10, "uniform", 5),
                                  5, seen)
    assert list(reversed(again)) == sets                       # per-user, not per-position
    other, _ = sampled_candidates(cases, NegativeSampler(train, 10, "uniform", 6), 6, seen)
    assert other != sets


def test_popularity_sampling_prefers_popular_items():
    ds, cases = synthetic(n_users=200)
    train = training_data(ds, cases)
    seen = {c.user_id: {c.target} for c in cases}
    uni = Counter(i for s in sampled_candidates(cases, NegativeSampler(train, 5, "uniform", 0), 0,
                                                seen)[0] for i in s.items[:])
    pop = Counter(i for s in sampled_candidates(cases, NegativeSampler(train, 5, "popularity", 0),
                                                0, seen)[0] for i in s.items[:])
    head = [str(i) for i in range(5)]
    assert sum(pop[i] for i in head) > 2 * sum(uni[i] for i in head)


def test_users_who_saw_almost_everything_are_skipped_with_a_reason():
    ds, cases = synthetic(n_items=12)
    train = training_data(ds, cases)
    sampler = NegativeSampler(train, 5, "uniform", 0)
    everything = {c.user_id: set(train.index) - {"0", "1"} for c in cases}   # 2 unseen left
    sets, reasons = sampled_candidates(cases[:3], sampler, 0, everything)
    assert sets == [None] * 3 and all("fewer than 5 unseen" in r for r in reasons)
    with pytest.raises(RecllmError, match="ask for at most 11 negatives"):
        NegativeSampler(train, 12, "uniform", 0)


def test_retrieved_candidates_may_miss_the_target():
    ds, cases = synthetic()
    train = training_data(ds, cases)
    pop = get_baseline("popularity", train)
    sets = retrieved_candidates(cases, pop, 5, seed=0, shuffle=False)
    for case, s in zip(cases, sets):
        assert list(s.items) == pop.rank([case], 5)[0]
        assert (s.target_position is None) == (case.target not in s.items)
    assert any(s.target_position is None for s in sets) and any(
        s.target_position is not None for s in sets)


def test_shuffle_is_a_seeded_permutation():
    items = [str(i) for i in range(20)]
    a = shuffled(items, 1, "u1")
    assert sorted(a) == sorted(items) and a == shuffled(items, 1, "u1")
    assert a != shuffled(items, 1, "u2") and a != shuffled(items, 1, "u1", ask=1)


def test_merge_rankings_mrr_and_borda():
    asks = [["a", "b", "c"], ["b", "a"], ["b", "c", "a"]]
    # mrr: a = 1 + 1/2 + 1/3, b = 1/2 + 1 + 1, c = 1/3 + 0 + 1/2
    assert merge_rankings(asks, "mrr") == ["b", "a", "c"]
    # borda: a = 3/3 + 1/2 + 1/3, b = 2/3 + 2/2 + 3/3, c = 1/3 + 0 + 2/3
    assert merge_rankings(asks, "borda") == ["b", "a", "c"]
    assert merge_rankings([["x"], []], "mrr") == ["x"]        # nothing is padded in
    with pytest.raises(RecllmError):
        merge_rankings(asks, "mean")


def test_sweep_and_resolution():
    cfg = EvalConfig(protocol=["full", "candidates"], template=None, negatives=[9, 19], k=10)
    points = cfg.sweep()
    assert len(points) == 4 and points[0][0] == "protocol=full,negatives=9"
    full = points[0][1].resolved()
    assert full.template == "generate" and full.ks == [1, 5, 10]          # 20 > k dropped
    cand = points[3][1].resolved()
    assert cand.template == "rank-sequential" and cand.ks == [1, 5, 10, 20]
    assert full.hash() != points[1][1].resolved().hash()
    assert full.hash() == full.model_copy(update={"batch_size": 64, "workers": 2}).hash()


def test_secrets_never_reach_config_files_or_the_hash():
    a = EvalConfig(backend="openai", backend_options={"api_key": "sk-123", "api_key_env": "X"})
    b = a.model_copy(update={"backend_options": {"api_key": "sk-456", "api_key_env": "X"}})
    assert "sk-123" not in a.to_yaml() and a.public()["backend_options"]["api_key"] == "***"
    assert a.public()["backend_options"]["api_key_env"] == "X"
    assert a.hash() == b.hash()


def test_grounder_matches_within_candidates_and_counts_outsiders(tiny_dataset):
    from recllm.evaluate.grounder import Grounder

    g = Grounder(tiny_dataset.catalog, popularity={"4": 10.0, "9": 1.0})
    # "Heat" alone means the popular 1995 film, but only the 1986 one is a candidate
    out = g.ground("1. Heat\n2. Fargo\n3. Toy Story\n4. Nonexistent Film", k=3, history=(),
                   candidates=["9", "8", "2"])
    assert out.ranked == ["9", "8"]
    assert out.validity["out_of_candidates"] == 1 and out.validity["out_of_catalog"] == 1
    assert g.ground("Heat", k=1, history=()).ranked == ["4"]


def test_penalties_are_hashed_only_when_set_and_reach_the_sampling_params():
    cfg = EvalConfig(users=30, max_history=15, max_tokens=120).resolved()
    # Neutral penalties leave the hash alone. (It moved once on purpose when seen items replaced
    # the shown history in exclusions and `bootstrap` became `reasks`: older runs scored
    # differently and must not be resumed into.)
    assert cfg.hash() == "1e1537963c4d4862"
    seen = {cfg.model_copy(update={k: v}).hash() for k, v in
            [("repetition_penalty", 1.2), ("frequency_penalty", 0.5), ("presence_penalty", 0.5)]}
    assert len(seen) == 3 and cfg.hash() not in seen
    for bad in ({"repetition_penalty": 0}, {"frequency_penalty": 2.5}, {"presence_penalty": -3}):
        with pytest.raises(RecllmError):
            EvalConfig.parse(bad)
