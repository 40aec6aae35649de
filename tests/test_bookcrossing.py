"""Book-Crossing: the BX reader and its cleaning, on few-line files in the dump's own format
(`;`-separated, quoted, latin-1, CRLF, `\\"` escapes), written by each test."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from recllm.data import leave_one_out, load_dataset
from recllm.data.bookcrossing import BOOKS, RATINGS, USERS
from recllm.data.formats import format_names
from recllm.errors import RecllmError
from recllm.grounding import TitleMatcher

HEADER = '"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";"Image-URL-S";"Image-URL-M";"Image-URL-L"'
URLS = '"http://x/S.jpg";"http://x/M.jpg";"http://x/L.jpg"'
BOOK_ROWS = [
    '"0195153448";"Classical Mythology";"Mark P. O. Morford";"2002";"Oxford University Press"',
    '"0449003787";"\\"O\\" Is for Outlaw";"SUE GRAFTON";"2001";"Ballantine Books"',  # escaped quotes
    '"0393045218";"Salt &amp; Pepper";"e. j. w. barber";"0";"W. W. Norton &amp; Company"',  # entity, year 0
    '"3462021095";"Schwarzer Tee mit drei StÃ¼ck Zucker";"Renan Demirkan";"2030";"Kiepenheuer"',  # mojibake, future
    '"0156528207";"The Little Prince";"Antoine de Saint-ExupÃ©ry";"1968";"Harcourt"',
]
RATING_ROWS = [
    '"276725";"0195153448";"0"',   # implicit
    '"276725";"0449003787";"5"',
    '"276725";"0393045218";"8"',
    '"276726";"0156528207";"10"',
    '"276726";"9999999999";"7"',   # an ISBN missing from BX-Books.csv
    '"276726";"\\"0432534220\\"";"6"',  # the dump's quoted-ISBN oddity, also unknown
    '"276727";"3462021095";"3"',   # a user with one rating
]


def write_bx(folder: Path, books=BOOK_ROWS, ratings=RATING_ROWS, users=True) -> Path:
    """The three files as the dump has them; the mojibake is written as latin-1 bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [HEADER] + [f"{row};{URLS}" for row in books]
    (folder / BOOKS).write_bytes(("\r\n".join(lines) + "\r\n").encode("latin-1"))
    (folder / RATINGS).write_bytes(("\r\n".join(['"User-ID";"ISBN";"Book-Rating"', *ratings]) + "\r\n").encode("latin-1"))
    if users:
        (folder / USERS).write_bytes(b'"User-ID";"Location";"Age"\r\n"276725";"tyler, texas, usa";NULL\r\n')
    return folder


@pytest.fixture
def bx(tmp_path) -> Path:
    return write_bx(tmp_path / "bx")


def test_format_is_registered_and_detected(bx):
    assert "bookcrossing" in format_names()
    for path in (bx, bx / RATINGS, bx / BOOKS):
        ds = load_dataset(path, log=lambda m: None)
        assert ds.meta["format"] == "bookcrossing" and ds.domain == "book" and ds.domain_plural == "books"
    assert ds.meta["domain_verb"] == "read" and ds.meta["timestamps"] is False


def test_catalog_cleaning(bx):
    ds = load_dataset(bx, log=lambda m: None)
    item = ds.catalog.item
    assert item("0449003787")["raw_title"] == '"O" Is for Outlaw'  # backslash escapes read
    assert item("0393045218")["raw_title"] == "Salt & Pepper"  # HTML entity
    assert item("0393045218")["publisher"] == "W. W. Norton & Company"
    assert item("3462021095")["raw_title"] == "Schwarzer Tee mit drei Stück Zucker"  # ftfy
    assert item("0156528207")["author"] == "Antoine de Saint-Exupéry"
    # years of 0 and after the crawl are null; the rest kept
    assert item("0393045218")["year"] is None and item("3462021095")["year"] is None
    assert item("0195153448")["year"] == 2002
    # authors' case normalized for display, the field as written kept
    assert item("0449003787")["author"] == "Sue Grafton" and item("0449003787")["author_raw"] == "SUE GRAFTON"
    assert item("0393045218")["author"] == "E. J. W. Barber"
    assert item("0195153448")["author"] == "Mark P. O. Morford"  # mixed case untouched
    # display title "Title by Author"; templates add the year: "Title by Author (Year)"
    assert ds.catalog["0195153448"] == "Classical Mythology by Mark P. O. Morford"
    assert ds.meta["titles_with_html_entities"] == 1 and ds.meta["years_nulled"] == 2


def test_template_label_and_grounding(bx):
    from recllm.prompting.context import catalog_items

    ds = load_dataset(bx, log=lambda m: None)
    assert catalog_items(ds.catalog)["0195153448"].label == "Classical Mythology by Mark P. O. Morford (2002)"
    matcher = TitleMatcher.from_catalog(ds.catalog)
    found = matcher.match(["Classical Mythology", "The Little Prince", '"O" Is for Outlaw',
                           "The Little Prince by Antoine de Saint-Exupéry (1968)"])  # the label echoed
    assert [m.item_id if m else None for m in found] == ["0195153448", "0156528207", "0449003787", "0156528207"]
    assert found[0].title == "Classical Mythology by Mark P. O. Morford"


def test_ratings_implicit_explicit_and_unknown_isbns(bx):
    ds = load_dataset(bx, log=lambda m: None)
    inter = ds.interactions
    assert len(inter) == 5 and ds.meta["dropped_unknown_items"] == 2 and ds.meta["ratings_read"] == 7
    implicit = inter[inter["item_id"] == "0195153448"]["rating"].iloc[0]
    assert math.isnan(implicit) and ds.meta["implicit_interactions"] == 1
    explicit = load_dataset(bx, min_rating=1, log=lambda m: None)
    assert len(explicit.interactions) == 4 and explicit.meta["removed_by_min_rating"] == 1


def test_editions_are_not_merged_unless_asked(tmp_path):
    rows = BOOK_ROWS + ['"0000000001";"Classical Mythology";"Mark P. O. Morford";"2002";"Other Press"']
    ratings = RATING_ROWS + ['"276728";"0000000001";"9"']
    folder = write_bx(tmp_path / "bx", books=rows, ratings=ratings)
    assert load_dataset(folder, log=lambda m: None).interactions["item_id"].nunique() == 6
    merged = load_dataset(folder, merge_duplicates=True, log=lambda m: None)
    assert merged.meta["merged_duplicate_items"] == 1


def test_broken_row_names_file_and_line(tmp_path):
    folder = write_bx(tmp_path / "bx")
    lines = (folder / BOOKS).read_bytes().split(b"\r\n")
    lines.insert(3, b'"0000000002";"Half a row";"A";"1999"')  # 5 fields, not 8
    lines.insert(1, b"")  # a blank line: pyarrow's row numbers are not line numbers
    (folder / BOOKS).write_bytes(b"\r\n".join(lines))
    with pytest.raises(RecllmError, match=r"broken row") as err:
        load_dataset(folder, log=lambda m: None)
    assert err.value.where == f"{folder / BOOKS}:5" and "\n" not in err.value.message


def test_ratings_of_no_known_book(tmp_path):
    folder = write_bx(tmp_path / "bx", ratings=['"1";"1111111111";"5"', '"2";"2222222222";"0"'])
    with pytest.raises(RecllmError, match="no known items: none of the 2 ratings") as err:
        load_dataset(folder, log=lambda m: None)
    assert err.value.where == str(folder / RATINGS)


def test_bad_rating_names_its_line(tmp_path):
    folder = write_bx(tmp_path / "bx", ratings=RATING_ROWS[:2] + ['"276725";"0393045218";"eleven"'])
    with pytest.raises(RecllmError, match="Book-Rating.*'eleven'") as err:
        load_dataset(folder, log=lambda m: None)
    assert err.value.where == f"{folder / RATINGS}:4"


def test_missing_books_file(tmp_path):
    folder = write_bx(tmp_path / "bx")
    (folder / BOOKS).unlink()
    with pytest.raises(RecllmError, match="needs BX-Books.csv"):
        load_dataset(folder, format="bookcrossing", log=lambda m: None)


def test_user_with_one_rating_is_skipped_and_counted(bx):
    split = leave_one_out(load_dataset(bx, log=lambda m: None))
    # 276727 rated one book; 276726 one known book (its other two ISBNs are unknown)
    assert {c.user_id for c in split.test} == {"276725"}
    assert split.skipped == 2 and split.summary()["skipped"] == 2


def test_no_timestamps_order(bx):
    ds = load_dataset(bx, log=lambda m: None)
    split = leave_one_out(ds)
    assert split.params["order"] == "random" and split.params["synthetic"] is True
    with pytest.raises(RecllmError, match="`timestamp` column") as err:
        leave_one_out(ds, order="time")
    assert err.value.where == "order" and "\n" not in err.value.message


def test_wrong_header_lists_what_was_found(tmp_path):
    folder = write_bx(tmp_path / "bx")
    (folder / BOOKS).write_bytes(b'"ISBN";"Title"\r\n"1";"A"\r\n')
    with pytest.raises(RecllmError, match="no column 'Book-Title'.*found: 'ISBN', 'Title'") as err:
        load_dataset(folder, log=lambda m: None)
    assert err.value.where == f"{folder / BOOKS}:1"


def test_empty_user_id_names_its_line(tmp_path):
    folder = write_bx(tmp_path / "bx", ratings=RATING_ROWS[:2] + ['"";"0393045218";"8"'])
    with pytest.raises(RecllmError, match="empty id") as err:
        load_dataset(folder, log=lambda m: None)
    assert err.value.where == f"{folder / RATINGS}:4"


def test_twice_encoded_titles_with_a_lost_byte_are_repaired(tmp_path):
    rows = BOOK_ROWS + ['"3746619220";"Der Sterne TennisbÃ?Â¤lle.";"Stephen Fry";"2003";"Aufbau"',
                        '"3518383000";"Ulysses (Ã?Â?bersetzg.)";"James Joyce";"1979";"Suhrkamp"']
    ds = load_dataset(write_bx(tmp_path / "bx", books=rows), log=lambda m: None)
    assert ds.catalog.item("3746619220")["raw_title"] == "Der Sterne Tennisbälle."
    assert ds.meta["titles_unrepairable"] == 1  # two bytes lost: left as written, counted
