"""Baselines: training data leaves out test targets, rankings are right and seeded."""

from __future__ import annotations

import numpy as np
import pytest

from recllm.baselines import get_baseline, training_data
from recllm.data.schema import UserCase
from recllm.errors import RecllmError


def cases_of(dataset) -> list[UserCase]:
    """Last interaction of each user as the target (what leave_one_out does)."""
    out = []
    for user, g in dataset.interactions.groupby("user_id", sort=True):
        items, ts, r = g["item_id"].tolist(), g["timestamp"].tolist(), g["rating"].tolist()
        out.append(UserCase(user, tuple(items[:-1]), tuple(r[:-1]), tuple(ts[:-1]),
                            items[-1], ts[-1]))
    return out


def test_training_data_excludes_test_targets(tiny_dataset):
    cases = cases_of(tiny_dataset)
    train = training_data(tiny_dataset, cases)
    counts = train.count_of()
    # "7" appears for u1 (target) and u3 (history): only u3's counts.
    assert counts["7"] == 1
    assert sum(counts.values()) == len(tiny_dataset.interactions) - len(cases)
    assert train.matrix.shape == (4, train.n_items)
    assert train.matrix.sum() == sum(counts.values())


def test_popularity_ranks_by_training_counts_excluding_history(tiny_dataset):
    cases = cases_of(tiny_dataset)
    train = training_data(tiny_dataset, cases)
    pop = get_baseline("popularity", train)
    u4 = next(c for c in cases if c.user_id == "u4")      # history 2, 3
    top = pop.rank([u4], 3)[0]
    counts = train.count_of()
    assert "2" not in top and "3" not in top
    assert [counts[i] for i in top] == sorted((counts[i] for i in top), reverse=True)
    assert counts[top[0]] == max(v for i, v in counts.items() if i not in ("2", "3"))
    # candidate mode: ordering within the given list only, history not excluded there
    ranked = pop.rank([u4], 3, candidates=[["9", "1", "4"]])[0]
    assert ranked == sorted(["9", "1", "4"], key=lambda i: -counts.get(i, -1))  # 9: no data


def test_random_is_seeded_per_user(tiny_dataset):
    cases = cases_of(tiny_dataset)
    train = training_data(tiny_dataset, cases)
    a = get_baseline("random", train, seed=1).rank(cases, 5)
    b = get_baseline("random", train, seed=1).rank(list(reversed(cases)), 5)
    assert a == list(reversed(b))                          # order independent
    assert a != get_baseline("random", train, seed=2).rank(cases, 5)


def test_itemknn_cosine_by_hand(tiny_dataset):
    cases = cases_of(tiny_dataset)
    train = training_data(tiny_dataset, cases)
    knn = get_baseline("itemknn", train, options={"neighbors": 50})
    sim = knn.sim.toarray()
    i1, i2 = train.index["1"], train.index["2"]
    x = train.matrix.toarray()
    expected = (x[:, i1] @ x[:, i2]) / np.sqrt(x[:, i1].sum() * x[:, i2].sum())
    assert sim[i1, i2] == pytest.approx(expected) and sim[i1, i1] == 0
    # u4 trains on (2, 3); 4 is seen only by u1, who also has 2 and 3: sim(2,4) = sim(3,4) =
    # 1/sqrt(2*1) beats sim(2,1) = sim(3,1) = 1/sqrt(2*2), so 4 ranks first, then 1.
    u4 = next(c for c in cases if c.user_id == "u4")
    assert knn.rank([u4], 2)[0] == ["4", "1"]


def test_itemknn_keeps_top_neighbors(tiny_dataset):
    cases = cases_of(tiny_dataset)
    train = training_data(tiny_dataset, cases)
    knn = get_baseline("itemknn", train, options={"neighbors": 1})
    assert (np.diff(knn.sim.indptr) <= 1).all()


def test_unknown_baseline(tiny_dataset):
    train = training_data(tiny_dataset, [])
    with pytest.raises(RecllmError, match="did you mean 'popularity'"):
        get_baseline("popularty", train)


def test_cosine_neighbors_equal_a_dense_reference(tiny_dataset):
    """Sparse, blocked item-kNN = cosine on the dense co-occurrence, top k per row."""
    from recllm.baselines.itemknn import cosine_neighbors

    cases = cases_of(tiny_dataset)
    train = training_data(tiny_dataset, cases)
    x = train.matrix.toarray().astype(np.float64)
    co = x.T @ x
    norms = np.sqrt(np.diag(co))
    ref = np.divide(co, np.outer(norms, norms), out=np.zeros_like(co), where=co > 0)
    np.fill_diagonal(ref, 0.0)
    for k in (1, 2, 50):
        top = ref.copy()
        if k < top.shape[1]:
            order = np.argsort(-top, axis=1, kind="stable")[:, k:]
            np.put_along_axis(top, order, 0.0, axis=1)
        np.testing.assert_allclose(cosine_neighbors(train.matrix, k).toarray(), top, atol=1e-6)


POWER_USER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))   # 1 GiB of address space
import numpy as np, pandas as pd
sys.path.insert(0, "tests")
from conftest import make_catalog
from recllm.baselines.base import training_data
from recllm.baselines.itemknn import ItemKNNBaseline
from recllm.data.schema import RecDataset
n = 8000    # one user with every item: an unbounded co-occurrence holds 64M entries (> 2 GB)
rng = np.random.default_rng(0)
rows = [("power", str(i), i) for i in range(n)]
rows += [(f"u{u}", str(i), i) for u in range(500) for i in rng.choice(n, 10, replace=False)]
inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(rating=np.nan)
knn = ItemKNNBaseline(training_data(RecDataset("p", inter, make_catalog()), []), options=ItemKNNBaseline.Options(neighbors=50))
assert knn.sim.shape == (n, n) and knn.sim.nnz <= n * 50
print("ok")
"""


def test_itemknn_memory_is_bounded_for_a_user_with_every_item():
    import os
    import subprocess
    import sys

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", POWER_USER], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-800:]


def test_blocked_cosine_equals_one_block_and_cap_keeps_small_users():
    from scipy import sparse

    from recllm.baselines.itemknn import cap_user_items, cosine_neighbors

    rng = np.random.default_rng(1)
    m = sparse.csr_matrix((rng.random((40, 30)) < 0.2).astype(np.float32))
    whole, blocked = cosine_neighbors(m, 5, block_entries=10**9), cosine_neighbors(m, 5, block_entries=31)
    assert (whole != blocked).nnz == 0 and whole.nnz <= 30 * 5
    users, items = np.array([0, 0, 0, 1, 1]), np.array([0, 1, 2, 0, 3])
    cu, ci = cap_user_items(users, items, cap=2, seed=0)
    assert np.bincount(cu).tolist() == [2, 2] and set(ci[cu == 1]) == {0, 3}
