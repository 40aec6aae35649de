"""`order`: the seeded synthetic order of datasets without timestamps (Book-Crossing), its
stability, where it is chosen automatically, and the errors when time is asked for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recllm.data import leave_one_out, temporal_split
from recllm.data.schema import RecDataset
from recllm.data.splits import order_info, random_order, reorder
from recllm.errors import RecllmError


def untimed(histories: dict[str, str], name: str = "bx-mini") -> RecDataset:
    """Users' items in file order; timestamps = row order, as loaders write them without time."""
    rows = [(u, i) for u, items in histories.items() for i in items]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id"])
    inter["timestamp"] = np.arange(len(inter), dtype=np.int64)
    inter["rating"] = np.nan
    return RecDataset(name, inter, catalog=None, domain="book", domain_plural="books",
                      meta={"timestamps": False})


def test_order_is_pinned_across_runs_and_machines():
    """The exact order for seed 0 and 1: SHA-256 + splitmix64, no Python hash, no numpy RNG."""
    ds = untimed({"u1": "abcdef", "u2": "xyz"})
    items = ds.interactions["item_id"]
    assert items.iloc[random_order(ds.interactions, 0)].tolist() == list("dbafce") + list("xzy")
    assert items.iloc[random_order(ds.interactions, 1)].tolist() == list("ceafbd") + list("xyz")


def test_leave_one_out_uses_it_automatically_and_says_so():
    ds = untimed({"u1": "abcdef", "u2": "xyz"})
    split = leave_one_out(ds)
    by_user = {c.user_id: c for c in split.test}
    assert by_user["u1"].history == tuple("dbafc") and by_user["u1"].target == "e"
    assert by_user["u2"].target == "y" and {c.user_id: c.target for c in split.valid}["u1"] == "c"
    summary = split.summary()
    assert summary["order"] == "random" and summary["synthetic"] is True and summary["order_seed"] == 0
    assert "not the latest" in summary["note"]
    assert leave_one_out(ds, order="random", seed=1).test[0].target == "d"


def test_order_does_not_depend_on_other_rows():
    """Dropping an item or another user keeps the relative order of what remains."""
    full = untimed({"u1": "abcdef", "u2": "xyz"})
    fewer = untimed({"u2": "xyz", "u1": "abdef"})  # no "c", other user first
    order = lambda ds, u: [i for i in leave_one_out(ds).test if i.user_id == u][0]  # noqa: E731
    case, other = order(full, "u1"), order(fewer, "u1")
    assert [i for i in (*case.history, case.target) if i != "c"] == [*other.history, other.target]


def test_reorder_gives_the_split_order_and_keeps_timestamps():
    ds = untimed({"u1": "abcdef", "u2": "xyz"})
    shuffled = reorder(ds)
    assert shuffled.interactions["item_id"].tolist() == list("dbafcexzy")
    assert sorted(shuffled.interactions["timestamp"]) == list(range(9))  # held-out targets found by them
    assert shuffled.meta["order"]["synthetic"] is True
    assert [c.target for c in leave_one_out(shuffled).test] == [c.target for c in leave_one_out(ds).test]


def test_timed_datasets_keep_time_order(tiny_dataset):
    split = leave_one_out(tiny_dataset)
    assert split.params["order"] == "time" and split.params["synthetic"] is False
    assert reorder(tiny_dataset) is tiny_dataset
    explicit = leave_one_out(tiny_dataset, order="random", seed=3)  # selectable explicitly
    assert explicit.params["synthetic"] and "asked for" in explicit.params["note"]
    assert {c.user_id for c in explicit.test} == {c.user_id for c in split.test}


def test_time_order_without_timestamps_is_one_clear_error():
    ds = untimed({"u1": "abc"})
    with pytest.raises(RecllmError) as err:
        leave_one_out(ds, order="time")
    assert "`timestamp` column" in err.value.message and "bx-mini" in err.value.message
    assert str(err.value).startswith("order: time needs") and "order: random" in err.value.hint
    with pytest.raises(RecllmError, match="`timestamp` column"):
        temporal_split(ds, 0.5)
    with pytest.raises(RecllmError, match="unknown order 'chrono'"):
        order_info(ds, "chrono")


def test_training_data_leaves_out_the_synthetic_targets():
    """Targets are found by (user, item, timestamp): the random order must keep timestamps, or
    the baselines would train on the held-out items."""
    from recllm.baselines.base import training_data

    ds = untimed({"u1": "abcdef", "u2": "xyz"})
    split = leave_one_out(ds)
    for data in (ds, reorder(ds)):
        train = training_data(data, split.test)
        users = {code: u for u, code in train.users.items()}
        seen = {(users[u], train.items[i]) for u, i in zip(train.user_codes, train.item_codes)}
        assert not seen & {(c.user_id, c.target) for c in split.test}
        assert len(seen) == 9 - len(split.test)
