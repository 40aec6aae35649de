"""Filters, chronological order, leave-one-out, temporal split and user sampling."""

from __future__ import annotations

import pandas as pd
import pytest

from recllm.data import leave_one_out, load_dataset, sample_users, temporal_split
from recllm.data.filters import apply_filters, chronological, deduplicate, k_core
from recllm.errors import RecllmError


def frame(rows):
    """rows: (user, item, timestamp, rating) in source order."""
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    df["_order"] = range(len(df))
    return df


def test_chronological_tie_break_is_source_order():
    df = frame([("u", "c", 5, 1.0), ("u", "a", 5, 1.0), ("u", "b", 1, 1.0), ("10", "x", 1, 1.0), ("2", "y", 1, 1.0)])
    out = chronological(df)
    # Mixed ids sort as text; ties at t=5 keep file order (c before a).
    assert out["user_id"].tolist() == ["10", "2", "u", "u", "u"]
    assert out[out["user_id"] == "u"]["item_id"].tolist() == ["b", "c", "a"]
    assert "_order" not in out


def test_numeric_users_sort_numerically():
    df = frame([("10", "x", 1, 1.0), ("9", "y", 1, 1.0), ("100", "z", 1, 1.0)])
    assert chronological(df)["user_id"].tolist() == ["9", "10", "100"]


@pytest.mark.parametrize("keep,expected", [("first", ["a", "b"]), ("last", ["b", "a"]), ("all", ["a", "b", "a"])])
def test_duplicates(keep, expected):
    # Written out of time order: the earliest (u, a) is the last row of the file.
    df = frame([("u", "a", 30, 5.0), ("u", "b", 20, 4.0), ("u", "a", 10, 3.0)])
    out = chronological(deduplicate(df, keep))
    assert out["item_id"].tolist() == expected
    if keep == "first":
        assert out["rating"].tolist() == [3.0, 4.0]  # the earliest (u, a) survives
    if keep == "last":
        assert out["rating"].tolist() == [4.0, 5.0]


def test_k_core_is_iterative():
    # A chain: u5 has one item, so u5 goes; then d has one user, so d goes; then u4, c, u3.
    # A single pass would stop after dropping u5. The fixed point is {u1, u2} x {a, b}.
    rows = [("u1", "a", 1, 1.0), ("u1", "b", 2, 1.0), ("u2", "a", 1, 1.0), ("u2", "b", 2, 1.0),
            ("u3", "b", 1, 1.0), ("u3", "c", 2, 1.0), ("u4", "d", 1, 1.0), ("u4", "c", 2, 1.0), ("u5", "d", 1, 1.0)]
    out = k_core(frame(rows), 2)
    assert set(out["user_id"]) == {"u1", "u2"} and set(out["item_id"]) == {"a", "b"}
    assert len(k_core(frame(rows), 1)) == len(rows)


def test_apply_filters_order_and_counts():
    rows = [("u", "a", 1, 5.0), ("u", "a", 2, 4.0), ("u", "b", 3, 2.0), ("v", "a", 1, 5.0), ("v", "b", 2, 5.0)]
    out, counts = apply_filters(frame(rows), threshold=4.0, duplicates="first", k=None, where="x")
    assert counts == {"read": 5, "removed_by_min_rating": 1, "removed_by_duplicates": 1}
    assert out.values.tolist() == [["u", "a", 1, 5.0], ["v", "a", 1, 5.0], ["v", "b", 2, 5.0]]


def test_load_with_filters(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user_id,item_id,rating,timestamp\n" + "".join(
        f"u{u},i{i},{(u * 3 + i * 2) % 5 + 1},{u * 10 + i}\n" for u in range(8) for i in range(8) if (u + 2 * i) % 7)
        + "lonely,i0,5,999\n")
    ds = load_dataset(path, min_rating=3, k_core=3)
    inter = ds.interactions
    assert (inter["rating"] >= 3).all()
    assert inter["user_id"].value_counts().min() >= 3 and inter["item_id"].value_counts().min() >= 3
    assert ds.meta["removed_by_min_rating"] > 0 and ds.meta["removed_by_k_core"] == 1
    assert "lonely" not in set(inter["user_id"])


def test_leave_one_out_targets_are_latest(tiny_dataset):
    split = leave_one_out(tiny_dataset)
    by_user = {c.user_id: c for c in split.test}
    assert by_user["u1"].target == "7" and by_user["u1"].history == ("1", "2", "3", "4")
    assert by_user["u1"].timestamps == (10, 20, 30, 40) and by_user["u1"].ratings == (4.0, 3.0, 5.0, 4.0)
    assert by_user["u1"].target_timestamp == 50 and by_user["u1"].targets == ("7",)
    valid = {c.user_id: c for c in split.valid}
    assert valid["u1"].target == "4" and valid["u1"].history == ("1", "2", "3")
    # u3 has a tie at t=100 (items 1 and 7): source order keeps 1 before 7.
    assert valid["u3"].history[:2] == ("1", "7")
    for case in split.test:
        events = tiny_dataset.interactions[tiny_dataset.interactions["user_id"] == case.user_id]
        assert case.target_timestamp == events["timestamp"].max()
        assert case.history + (case.target,) == tuple(events["item_id"])


def test_leave_one_out_min_history_and_truncation(tiny_dataset):
    split = leave_one_out(tiny_dataset, min_history=3, max_history=2)
    assert {c.user_id for c in split.test} == {"u1", "u2", "u3"} and split.skipped == 1  # u4 has 3 events
    assert {c.user_id for c in split.valid} == {"u1", "u3"} and split.skipped_valid == 2
    u1 = next(c for c in split.test if c.user_id == "u1")
    assert u1.history == ("3", "4") and u1.truncated == 2 and u1.timestamps == (30, 40)
    assert split.summary()["truncated_users"] == 3


def test_leave_one_out_sorts_unsorted_frames(tiny_dataset):
    shuffled = tiny_dataset.interactions.sample(frac=1, random_state=3).reset_index(drop=True)
    a = leave_one_out(shuffled).test
    assert {c.user_id: c.target for c in a} == {"u1": "7", "u2": "4", "u3": "12", "u4": "8"}


def test_leave_one_out_rejects_bad_limits(tiny_dataset):
    with pytest.raises(RecllmError):
        leave_one_out(tiny_dataset, max_history=0)


def test_temporal_split(tiny_dataset):
    split = temporal_split(tiny_dataset, cutoff=40)
    by_user = {c.user_id: c for c in split.test}
    # u1 crosses the cutoff at t=40: history 10..30, targets 40 and 50.
    assert by_user["u1"].history == ("1", "2", "3") and by_user["u1"].targets == ("4", "7")
    assert by_user["u1"].target == "4"
    # u3 is entirely after the cutoff: no history -> skipped; u2, u4 entirely before.
    assert set(by_user) == {"u1"} and split.skipped == 1
    assert split.params["users_without_future"] == 2
    assert [c.target for c in split.valid] == ["3"]


def test_temporal_split_cutoff_forms(tiny_dataset):
    assert temporal_split(tiny_dataset, cutoff="1970-01-01T00:00:40").params["cutoff"] == 40
    q = temporal_split(tiny_dataset, cutoff=0.9).params["cutoff"]
    assert q == 300
    with pytest.raises(RecllmError):
        temporal_split(tiny_dataset, cutoff="soon")


def test_sample_users_is_seeded_and_order_free(tiny_dataset):
    cases = leave_one_out(tiny_dataset).test
    a = sample_users(cases, n=2, seed=1)
    b = sample_users(list(reversed(cases)), n=2, seed=1)
    assert {c.user_id for c in a} == {c.user_id for c in b}  # the draw ignores input order
    assert b == list(reversed(a))  # ... and the result keeps it
    assert len(a) == 2 and [c.user_id for c in a] == sorted(c.user_id for c in a)
    draws = {tuple(c.user_id for c in sample_users(cases, n=2, seed=s)) for s in range(20)}
    assert len(draws) > 1  # the seed matters
    assert sample_users(cases, n=10) == cases


def test_sample_users_from_file(tiny_dataset, tmp_path):
    cases = leave_one_out(tiny_dataset).test
    ids = tmp_path / "users.txt"
    ids.write_text("# evaluation users\nu3\n\nu1, a comment field\n")
    assert [c.user_id for c in sample_users(cases, user_ids=ids)] == ["u1", "u3"]
    assert [c.user_id for c in sample_users(cases, user_ids=["u4"])] == ["u4"]
    ids.write_text("u1\nu9\n")
    with pytest.raises(RecllmError, match="1 of 2 user ids have no evaluation case: 'u9'"):
        sample_users(cases, user_ids=ids)
