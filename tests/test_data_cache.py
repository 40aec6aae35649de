"""The Arrow table cache: hits return the same dataset, and the key changes with what matters."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from recllm.data import load_dataset
from recllm.data import cache as cache_mod

DATA = Path(__file__).parent / "data"


def copy_ml(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-100k"
    shutil.copytree(DATA / "ml-100k", folder)
    return folder


def test_second_load_is_a_cache_hit_with_identical_content(tmp_path, monkeypatch):
    folder = copy_ml(tmp_path)
    first = load_dataset(folder)
    calls = []
    real = cache_mod.load_cached
    monkeypatch.setattr(cache_mod, "load_cached", lambda key: calls.append(key) or real(key))
    second = load_dataset(folder)
    assert calls and second.meta["cache"] == first.meta["cache"]
    pd.testing.assert_frame_equal(first.interactions, second.interactions)
    pd.testing.assert_frame_equal(first.catalog.table, second.catalog.table)
    assert second.catalog.item("4")["alternates"] == ["Yao a yao yao dao waipo qiao"]
    assert second.catalog.item("1")["genres"] == ["Animation", "Children's", "Comedy"]
    assert second.catalog.item("6")["year"] is None
    assert (second.name, second.domain, second.domain_plural, second.source) == \
        (first.name, first.domain, first.domain_plural, first.source)


def test_changed_file_is_read_again(tmp_path):
    folder = copy_ml(tmp_path)
    first = load_dataset(folder)
    data = folder / "u.data"
    data.write_text(data.read_text() + "5\t1\t3\t999\n")
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 10_000_000))
    second = load_dataset(folder)
    assert len(second.interactions) == len(first.interactions) + 1
    assert second.meta["cache"] != first.meta["cache"]


def test_options_are_part_of_the_key(tmp_path):
    folder = copy_ml(tmp_path)
    plain = load_dataset(folder)
    positives = load_dataset(folder, min_rating=4)
    assert positives.meta["cache"] != plain.meta["cache"]
    assert len(positives.interactions) < len(plain.interactions)
    assert len(load_dataset(folder).interactions) == len(plain.interactions)


def test_cache_off_writes_nothing(tmp_path, recllm_home):
    load_dataset(copy_ml(tmp_path), cache=False)
    assert not (recllm_home / "tables").exists()


def test_corrupt_entry_is_rebuilt(tmp_path):
    folder = copy_ml(tmp_path)
    first = load_dataset(folder)
    (Path(first.meta["cache"]) / "interactions.arrow").write_bytes(b"not arrow")
    again = load_dataset(folder)
    pd.testing.assert_frame_equal(first.interactions, again.interactions)


def test_changed_loader_code_makes_a_new_table(monkeypatch, tmp_path):
    from recllm.data import cache

    f = tmp_path / "x.csv"
    f.write_text("user_id,item_id\n1,2\n")
    before = cache.table_key("x", {}, [f])
    monkeypatch.setattr(cache, "loader_code", lambda: "another version")
    assert cache.table_key("x", {}, [f]) != before
