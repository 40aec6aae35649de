"""Bad input gets one RecllmError that names the file, line and field and says what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recllm.data import LoadOptions, load_dataset
from recllm.errors import RecllmError

DATA = Path(__file__).parent / "data"


def error_of(*args, **kwargs) -> RecllmError:
    with pytest.raises(RecllmError) as info:
        load_dataset(*args, **kwargs)
    return info.value


def test_malformed_row_names_file_and_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user_id,item_id,timestamp\nu,a,1\nu,b,2,extra\n")
    err = error_of(path)
    assert err.where == f"{path}:3" and "expected 3 fields, found 4" in err.message


def test_malformed_atomic_row(tmp_path):
    folder = tmp_path / "ml"
    shutil.copytree(DATA / "atomic" / "ml-mini", folder)
    inter = folder / "ml-mini.inter"
    inter.write_text(inter.read_text() + "9\t1\n")  # too few fields on line 13
    err = error_of(folder)
    assert err.where == f"{inter}:13" and "expected 4 fields, found 2" in err.message


def test_bad_number_names_line_and_field(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user_id,item_id,rating,timestamp\nu,a,4,1\nu,b,five,2\n")
    err = error_of(path)
    assert err.where == f"{path}:3" and "'rating'" in err.message and "'five'" in err.message


def test_bad_timestamp_names_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user_id,item_id,timestamp\nu,a,2001-01-01\nu,b,yesterday\n")
    err = error_of(path)
    assert err.where == f"{path}:3" and "'timestamp'" in err.message


def test_movielens_bad_rating_line(tmp_path):
    folder = tmp_path / "ml-1m"
    shutil.copytree(DATA / "ml-1m", folder)
    lines = (folder / "ratings.dat").read_text().splitlines()
    lines[4] = "2::4::x::200"
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    err = error_of(folder)
    assert err.where == f"{folder / 'ratings.dat'}:5" and "'rating'" in err.message


def test_empty_id_names_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user_id,item_id,timestamp\nu,a,1\n,b,2\n")
    err = error_of(path)
    assert err.where == f"{path}:3" and "empty id" in err.message


def test_malformed_json_line(tmp_path):
    folder = tmp_path / "amazon"
    shutil.copytree(DATA / "amazon", folder)
    review = folder / "All_Beauty.jsonl"
    review.write_text(review.read_text() + '{"user_id": "x", "parent_asin": \n')
    err = error_of(folder)
    assert err.where == f"{review}:12" and "malformed JSON" in err.message


def test_missing_columns_lists_found(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("person,thing,when\nu,a,1\n")
    err = error_of(path, user_col="person")
    assert "no item column" in err.message and "'person', 'thing', 'when'" in err.message
    assert err.hint and "--item-col" in err.hint
    err = error_of(path, user_col="person", item_col="object")
    assert "'object' (item)" in err.message and "found columns: 'person', 'thing', 'when'" in err.message


def test_missing_amazon_field_lists_found(tmp_path):
    folder = tmp_path / "amazon"
    shutil.copytree(DATA / "amazon", folder)
    review = folder / "All_Beauty.jsonl"
    review.write_text(review.read_text().replace('"user_id"', '"reviewer"'))
    err = error_of(folder)
    assert "'user_id' (user)" in err.message and "'reviewer'" in err.message


def test_atomic_missing_column(tmp_path):
    path = tmp_path / "x.inter"
    path.write_text("uid:token\titem_id:token\nu\ta\n")
    err = error_of(path)
    assert "'user_id' (user)" in err.message and "found columns: 'uid', 'item_id'" in err.message


def test_undecodable_bytes_suggest_encoding(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("user_id,item_id,title\nu,a,x\nu,b,Cité\n".encode("latin-1"))
    err = error_of(path)
    assert err.where == f"{path}:3" and "utf-8" in err.message and "--encoding" in err.hint
    assert len(load_dataset(path, encoding="latin-1").interactions) == 2


def test_movielens_wrong_encoding(tmp_path):
    folder = tmp_path / "ml-100k"
    shutil.copytree(DATA / "ml-100k", folder)
    err = error_of(folder, encoding="utf-8")
    assert err.where == f"{folder / 'u.item'}:3" and "--encoding latin-1" in err.hint


def test_unknown_encoding_is_an_option_error():
    err = error_of(DATA / "ml-100k", encoding="latin-9x")
    assert "unknown encoding" in err.message


def test_empty_catalog_file(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,title\n")
    (tmp_path / "r.csv").write_text("user_id,item_id\nu,a\n")
    err = error_of(tmp_path / "r.csv", items=str(tmp_path / "items.csv"))
    assert "catalog is empty" in err.message and err.where == str(tmp_path / "items.csv")


def test_empty_atomic_item_file(tmp_path):
    folder = tmp_path / "ml"
    shutil.copytree(DATA / "atomic" / "ml-mini", folder)
    (folder / "ml-mini.item").write_text("item_id:token\tmovie_title:token_seq\n")
    assert "catalog is empty" in error_of(folder).message


def test_empty_amazon_meta(tmp_path):
    folder = tmp_path / "amazon"
    shutil.copytree(DATA / "amazon", folder)
    (folder / "meta_All_Beauty.jsonl").write_text("")
    assert "catalog is empty" in error_of(folder).message


def test_unknown_dataset_name_suggests_closest():
    err = error_of("ml-1mm")
    assert "unknown dataset 'ml-1mm'" in err.message and "did you mean 'ml-1m'" in err.message
    assert "ml-100k" in err.hint


def test_missing_path():
    err = error_of("./no/such/ratings.csv")
    assert "no such file" in err.message


def test_unknown_option_suggests_closest():
    err = error_of(DATA / "ml-100k", user_column="x")
    assert "unknown option 'user_column'" in err.message and "did you mean 'user_col'" in err.message


def test_unrecognised_folder_lists_files(tmp_path):
    (tmp_path / "notes.md").write_text("hi")
    err = error_of(tmp_path)
    assert "cannot tell the dataset format" in err.message and "notes.md" in err.message


def test_empty_after_filtering_says_which_step():
    err = error_of(DATA / "ml-100k", min_rating=6)
    assert "no interactions left after min_rating=6" in err.message
    err = error_of(DATA / "ml-100k", k_core=5)
    assert "no interactions left after k_core=5" in err.message


def test_min_rating_without_ratings(tmp_path):
    (tmp_path / "r.csv").write_text("user_id,item_id\nu,a\n")
    assert "has none" in error_of(tmp_path / "r.csv", min_rating=4).message


def test_empty_interactions_file(tmp_path):
    (tmp_path / "r.csv").write_text("user_id,item_id,timestamp\n")
    assert "no data rows" in error_of(tmp_path / "r.csv").message


def test_options_model_refuses_bad_values():
    with pytest.raises(RecllmError):
        LoadOptions.parse({"duplicates": "none"})
    with pytest.raises(RecllmError):
        LoadOptions.parse({"k_core": 0})


def test_catalog_ids_that_match_nothing(tmp_path):
    (tmp_path / "items.csv").write_text("id,title\n1,Heat (1995)\n")
    (tmp_path / "r.csv").write_text("user_id,item_id\nu,m1\n")
    err = error_of(tmp_path / "r.csv", items=str(tmp_path / "items.csv"))
    assert "no interaction's item is in the catalog" in err.message and "'m1'" in err.message
    assert "--id-col" in err.hint


# Issue 8, item 20: each of these was a traceback (or a silently wrong value) before.

def test_missing_items_file(tmp_path):
    (tmp_path / "r.csv").write_text("user_id,item_id\nu,a\n")
    err = error_of(tmp_path / "r.csv", items=str(tmp_path / "nope.csv"))
    assert "--items" in err.message and err.where == str(tmp_path / "nope.csv")


def test_duplicate_header_names(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user_id,user_id,item_id\nu,u,a\n")
    err = error_of(path)
    assert err.where == f"{path}:1" and "duplicate column" in err.message and "'user_id'" in err.message


def test_json_array_of_non_objects(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('[{"user_id": "u", "item_id": "a"}, 2, 3]')
    err = error_of(path)
    assert "element 2" in err.message and "a number" in err.message and err.where == str(path)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "r.csv.gz"
    path.write_bytes(b"not gzip at all")
    assert "corrupt gzip" in error_of(path).message
    import gzip

    path.write_bytes(gzip.compress(b"user_id,item_id\n" + b"u,a\n" * 1000)[:40])  # truncated
    assert "corrupt gzip" in error_of(path).message


def test_folder_whose_ratings_csv_is_not_movielens(tmp_path):
    (tmp_path / "ratings.csv").write_text("a,b\n1,2\n")
    err = error_of(tmp_path)
    assert "not a MovieLens ratings.csv" in err.message and "'userId'" in err.message
    assert str(tmp_path / "ratings.csv") in err.hint


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e30", "-1e30", "9223372036854775808"])
def test_timestamps_out_of_range_name_line_and_field(tmp_path, value):
    path = tmp_path / "r.csv"
    path.write_text(f"user_id,item_id,timestamp\nu,a,1\nu,b,{value}\nu,c,3\n")
    err = error_of(path)
    assert err.where == f"{path}:3" and "'timestamp'" in err.message


def test_atomic_timestamp_out_of_range(tmp_path):
    path = tmp_path / "x.inter"
    path.write_text("user_id:token\titem_id:token\ttimestamp:float\nu\ta\t1\nu\tb\t1e30\n")
    assert error_of(path).where == f"{path}:3"


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity"])
def test_infinite_ratings_are_refused(tmp_path, value):
    path = tmp_path / "r.csv"
    path.write_text(f"user_id,item_id,timestamp,rating\nu,a,1,4\nu,b,2,{value}\n")
    err = error_of(path)
    assert err.where == f"{path}:3" and "'rating'" in err.message and "finite" in err.message


def test_line_numbers_after_embedded_newlines(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('user_id,item_id,title,timestamp\nu,a,"two\nlines",1\n\nu,b,"three\nmore\nlines",2\n'
                    'u,c,x,later\n')
    err = error_of(path)
    assert err.where == f"{path}:8" and "'later'" in err.message
    path.write_text('user_id,item_id,title\r\nu,a,"x\r\ny"\r\n\r\nu,b\r\n')  # CRLF, a short row
    err = error_of(path)
    assert err.where == f"{path}:5" and "expected 3 fields, found 2" in err.message


def test_streamed_reader_keeps_every_row_and_field(tmp_path):
    """A multi-character separator split across read blocks, quotes kept as data (no quoting)."""
    from recllm.data import readers

    rows = [f'u{i}::m{i % 7}::{i % 5 + 1}::{1000 + i}' for i in range(30000)]
    path = tmp_path / "ratings.dat"
    path.write_text("\n".join(rows) + "\n")
    frame = readers.read_delimited(path, sep="::", header=False, names=["u", "i", "r", "t"])
    assert len(frame) == 30000 and frame["t"].iloc[-1] == "30999" and frame["_line"].iloc[-1] == 30000
    assert frame["u"].iloc[12345] == "u12345" and frame["i"].iloc[12345] == "m4"


def test_atomic_fields_that_collide_once_typed(tmp_path):
    path = tmp_path / "x.inter"
    path.write_text("user_id:token\titem_id:token\trating:float\trating:token\nu\ta\t1\t1\n")
    err = error_of(path)
    assert err.where == f"{path}:1" and "duplicate field name 'rating'" in err.message


def test_corrupt_gzipped_jsonl(tmp_path):
    import gzip

    path = tmp_path / "All_Beauty.jsonl.gz"
    data = bytearray(gzip.compress(b'{"user_id": "u", "parent_asin": "a"}\n' * 200))
    data[20:30] = b"\xff" * 10  # a damaged deflate stream
    path.write_bytes(bytes(data))
    (tmp_path / "meta_All_Beauty.jsonl").write_text('{"parent_asin": "a", "title": "A"}\n')
    assert "corrupt gzip" in error_of(path).message
