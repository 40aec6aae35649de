"""Items listed twice under two ids are one item after loading (ML-100K's "Chasing Amy" 246/268)."""

from __future__ import annotations

from recllm.data import leave_one_out, load_dataset
from recllm.grounding import TitleMatcher

ITEMS = """item_id,title,genres,description
246,Chasing Amy (1997),Drama|Romance,
268,Chasing Amy (1997),Drama|Romance,
1,"Island, The (1983)",Drama,
2,Island (1989),Drama,
3,"Boys, Les (1997)",Comedy,
4,"Boys, The (1997)",Drama,
5,Cape Fear (1962),Thriller,
6,Cape Fear (1991),Thriller,
7,USB Cable,,braided 2 m
8,USB Cable,,flat 1 m
9,Notebook,,
10,Notebook,,
11,Hamlet (1996),Drama,
12,Hamlet (1996),Comedy,
"""
# u watched Chasing Amy under both ids; v's held-out target is the duplicate id 268.
EVENTS = "user_id,item_id,timestamp\nu,246,1\nu,5,2\nu,268,3\nu,9,4\nv,1,1\nv,10,2\nv,268,3\n"


def _load(tmp_path, **options):
    (tmp_path / "items.csv").write_text(ITEMS)
    (tmp_path / "events.csv").write_text(EVENTS)
    return load_dataset(tmp_path / "events.csv", items=str(tmp_path / "items.csv"), genres_col="genres",
                        description_col="description", **options)


def test_duplicates_become_the_first_id(tmp_path):
    ds = _load(tmp_path)
    assert ds.meta["merged_duplicate_items"] == 2  # 268 -> 246, 10 -> 9
    assert "268" not in ds.catalog and "10" not in ds.catalog and len(ds.catalog) == 12
    inter = ds.interactions
    assert set(inter["item_id"]) == {"246", "5", "9", "1"}
    assert inter[inter.user_id == "u"]["item_id"].tolist() == ["246", "5", "9"]  # the re-watch is a repeat
    case = {c.user_id: c for c in leave_one_out(ds).test}["v"]
    assert case.target == "246"
    # The title now names the target: grounding can no longer pick "the other" id.
    assert TitleMatcher.from_catalog(ds.catalog).match_one("Chasing Amy").item_id == "246"


def test_same_key_but_another_work_is_kept_apart(tmp_path):
    ds = _load(tmp_path)
    for pair in (("1", "2"), ("3", "4"), ("5", "6"), ("7", "8"), ("11", "12")):
        assert all(i in ds.catalog for i in pair), pair  # article, year, description, genres differ


def test_merging_is_an_option_and_part_of_the_cache_key(tmp_path):
    merged = _load(tmp_path)
    kept = _load(tmp_path, merge_duplicates=False)
    assert len(kept.catalog) == 14 and "merged_duplicate_items" not in kept.meta
    assert kept.meta["cache"] != merged.meta["cache"]
    assert len(_load(tmp_path).catalog) == 12  # the cached merged table, not the unmerged one
