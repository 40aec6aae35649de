"""Book-Crossing (Ziegler et al., WWW 2005) as its BX-CSV-Dump ships it.

- `BX-Book-Ratings.csv`: "User-ID";"ISBN";"Book-Rating". Rating 0 is an implicit interaction
  (the user has the book), 1-10 explicit; implicit ratings are read as NaN (the schema's
  "unrated"), so `min_rating=1` keeps the explicit ones. There are no timestamps: splits use a
  seeded synthetic order (recllm.data.splits, `order`), never the file's row order.
- `BX-Books.csv`: "ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";3 image URLs.
- `BX-Users.csv` (location, age) is not read.

All three are `;`-separated, quoted, latin-1, with backslash-escaped quotes (`\\"`): without
the escape character the books file breaks at line 6,452. Cleaning, each step for a reason:
HTML entities (`&amp;`) unescaped, UTF-8 read as latin-1 ("StÃ¼ck") repaired by `ftfy`, years
of 0 or after the crawl (2004) made null, ALL-CAPS / all-lower authors title-cased for display
(`author_raw` keeps them as written). The catalog's display title is "Title by Author" (so
templates' `label` reads "Title by Author (Year)"); `raw_title` is the book title alone, what
the matcher keys on, so an answer naming just the title grounds.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recllm.data.build import Loaded, make_catalog, make_interactions
from recllm.data.formats import DataFormat
from recllm.data.options import LoadOptions
from recllm.errors import RecllmError

BOOKS, RATINGS, USERS = "BX-Books.csv", "BX-Book-Ratings.csv", "BX-Users.csv"
BOOK_COLUMNS = ("ISBN", "Book-Title", "Book-Author", "Year-Of-Publication", "Publisher")
RATING_COLUMNS = ("User-ID", "ISBN", "Book-Rating")
CRAWL_YEAR = 2004  # the dump was crawled in Aug-Sep 2004: a later publication year is an error
ENTITY = r"&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);"  # &amp; &#233; &#xE9;
# UTF-8 read as latin-1: a lead byte (Â..ô) then a continuation byte (or the space a lost
# no-break space became); only such rows go to ftfy (~100 us a call), legit "Café" does not.
MOJIBAKE = "[\u00c2-\u00f4](?:[\u0080-\u00bf]| )"
# Twice-encoded UTF-8 whose 0x83 byte the dump lost to "?" ("ErzÃ?Â¤hlungen", 4,055 titles):
# putting the byte back lets ftfy undo both layers ("Erzählungen"). Only before a continuation
# byte: Ã + Â + that byte is what U+00C0..U+00FF become when encoded twice.
LOST_0X83 = re.compile("\u00c3\\?\u00c2(?=[\u0080-\u00bf])")
DOMAIN, DOMAIN_PLURAL, DOMAIN_VERB = "book", "books", "read"


def read_bx(path: Path, columns: tuple[str, ...], encoding: str = "latin-1") -> pa.Table:
    """One BX file as a table of strings (only `columns`); a broken row names its file and line."""
    import pyarrow.csv as pacsv

    if not path.is_file():
        raise RecllmError(f"no {path.name} here", where=str(path.parent),
                          hint=f"a Book-Crossing folder holds {BOOKS} and {RATINGS}")
    sep, found = _header(path, encoding)
    missing = [c for c in columns if c not in found]
    if missing:
        raise RecllmError(f"not a Book-Crossing {path.name}: no column {', '.join(map(repr, missing))}; "
                          f"found: {', '.join(map(repr, found)) or 'nothing'}", where=f"{path}:1",
                          hint="the header must be the BX-CSV-Dump's own")
    bad: list = []

    def invalid(row) -> str:
        bad.append(row)
        return "error"

    try:
        # One thread: row numbers are only known then (and the machine is shared).
        table = pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(encoding=encoding, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=sep, quote_char='"',
                                             escape_char="\\", invalid_row_handler=invalid),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(columns), column_types={c: pa.string() for c in columns},
                strings_can_be_null=False, quoted_strings_can_be_null=False, null_values=[]))
    except pa.ArrowInvalid as exc:
        if bad:
            row = bad[0]
            raise RecllmError(f"broken row: expected {row.expected_columns} fields, found {row.actual_columns}",
                              where=f"{path}:{_physical_line(path, row.number)}",
                              hint="BX files are ;-separated and quoted, with \\\" for a quote inside "
                              "a field; fix or delete that line") from None
        raise RecllmError(f"cannot parse: {exc}", where=str(path),
                          hint="BX files are latin-1 (the default; --encoding changes it) and ;-separated") from None
    except UnicodeDecodeError as exc:
        raise RecllmError(f"cannot decode as {encoding}: {exc.reason}", where=str(path),
                          hint="BX files are latin-1; pass --encoding if your copy is not") from None
    return table


def _header(path: Path, encoding: str) -> tuple[str, list[str]]:
    """(delimiter, column names): ';' as the dump has it, ',' for re-saved copies (Kaggle's)."""
    import csv

    with path.open("rb") as f:
        line = f.readline(1 << 16).decode(encoding, errors="replace").lstrip("\ufeff").strip()
    sep = "," if line.count(",") > line.count(";") else ";"
    return sep, [c.strip() for c in next(csv.reader([line], delimiter=sep), [])]


def _physical_line(path: Path, number: int | None) -> str:
    """pyarrow counts rows without blank lines; the line a person opens is counted with them."""
    if not number:
        return "?"
    seen = 0
    with path.open("rb") as f:
        for line_no, line in enumerate(f, start=1):
            if line.strip():
                seen += 1
                if seen == number:
                    return str(line_no)
    return str(number)


def clean_text(values: pa.ChunkedArray) -> tuple[list[str], int]:
    """(texts with HTML entities unescaped, mojibake repaired by ftfy and whitespace collapsed,
    how many of them those repairs changed). Only rows that need a step go through Python: most
    BX text is plain ASCII."""
    import ftfy

    values = pc.utf8_trim_whitespace(pc.replace_substring_regex(values, r"\s+", " "))
    out = values.to_pylist()
    entity = pc.match_substring_regex(values, ENTITY).to_numpy(zero_copy_only=False)
    mojibake = pc.match_substring_regex(values, MOJIBAKE).to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(entity).tolist():
        out[i] = html.unescape(out[i])
    for i in np.flatnonzero(mojibake).tolist():
        out[i] = ftfy.fix_encoding(LOST_0X83.sub("\u00c3\u0083\u00c2", out[i]))  # ftfy's mojibake step only
    return out, int((entity | mojibake).sum())


def display_authors(authors: list[str]) -> list[str]:
    """"SUE GRAFTON" / "sue grafton" -> "Sue Grafton"; mixed case is kept ("Ursula K. Le Guin")."""
    arr = pa.array(authors, pa.string())
    one_case = pc.or_(pc.utf8_is_upper(arr), pc.utf8_is_lower(arr))
    return pc.if_else(one_case, pc.utf8_title(arr), arr).to_pylist()


def _years(values: pa.ChunkedArray) -> tuple[list, int]:
    """Years as ints; 0, non-numbers and years after the crawl become None (and are counted)."""
    numbers = [int(v) if v.strip().isdigit() else 0 for v in values.to_pylist()]
    years = [y if 0 < y <= CRAWL_YEAR else None for y in numbers]
    return years, sum(1 for y in years if y is None)


def _ratings(table: pa.Table, path: Path) -> np.ndarray:
    """Ratings 1-10 as floats, 0 (implicit) as NaN; anything else names its line."""
    text = table.column("Book-Rating")
    try:
        numbers = pc.cast(text, pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        numbers = None
    ok = numbers is not None and bool(((numbers >= 0) & (numbers <= 10)).all())
    if not ok:
        values = text.to_pylist()
        row = next(i for i, v in enumerate(values) if not (v.strip().isdigit() and 0 <= int(v) <= 10))
        raise RecllmError(f"field 'Book-Rating': expected a whole number 0-10, got {values[row]!r}",
                          where=f"{path}:{_physical_line(path, row + 2)}")
    return np.where(numbers == 0, np.nan, numbers.astype(np.float64))


def load_bookcrossing(folder: Path, options: LoadOptions) -> Loaded:
    """Ratings of known books + the cleaned catalog; unknown ISBNs dropped and counted."""
    encoding = options.encoding or "latin-1"
    books_path, ratings_path = folder / BOOKS, folder / RATINGS
    books = read_bx(books_path, BOOK_COLUMNS, encoding)
    if books.num_rows == 0:
        raise RecllmError("the catalog is empty (no books)", where=str(books_path))
    ratings = read_bx(ratings_path, RATING_COLUMNS, encoding)
    if ratings.num_rows == 0:
        raise RecllmError("no interactions: the file has no data rows", where=str(ratings_path))
    rating = _ratings(ratings, ratings_path)
    empty = np.flatnonzero(pc.equal(pc.utf8_trim_whitespace(ratings.column("User-ID")), "").to_numpy(zero_copy_only=False))
    if len(empty):
        raise RecllmError("field 'User-ID': empty id", where=f"{ratings_path}:{_physical_line(ratings_path, int(empty[0]) + 2)}")
    known = pc.is_in(ratings.column("ISBN"), value_set=books.column("ISBN").combine_chunks())
    known = known.to_numpy(zero_copy_only=False)
    if not known.any():
        example = ratings.column("ISBN")[0].as_py()
        raise RecllmError(f"no known items: none of the {ratings.num_rows:,} ratings names an ISBN of "
                          f"{BOOKS} (the first is {example!r})", where=str(ratings_path),
                          hint=f"{RATINGS} and {BOOKS} must come from the same dump")
    users, isbns = ratings.column("User-ID"), ratings.column("ISBN")
    if not known.all():
        mask = pa.array(known)
        users, isbns, rating = users.filter(mask), isbns.filter(mask), rating[known]
    inter = make_interactions(users.to_numpy(zero_copy_only=False), isbns.to_numpy(zero_copy_only=False),
                              None, rating)

    isbns_all = books.column("ISBN").to_pylist()
    (titles, fixed_titles), (authors_raw, fixed_authors) = map(clean_text, (books.column("Book-Title"),
                                                                         books.column("Book-Author")))
    authors = display_authors(authors_raw)
    titles = [t or i for t, i in zip(titles, isbns_all)]  # a book without a title shows its ISBN
    years, no_year = _years(books.column("Year-Of-Publication"))
    shown = [f"{t} by {a}" if a else t for t, a in zip(titles, authors)]
    catalog, notes = make_catalog(
        isbns_all, shown, where=str(books_path), domain=options.domain or DOMAIN,
        years=years, parse_titles=False,
        extra={"author": [a or None for a in authors], "author_raw": [a or None for a in authors_raw],
               "publisher": [p or None for p in clean_text(books.column("Publisher"))[0]]})
    # raw_title: the book title alone, what the matcher keys on (Catalog's titles stay `shown`);
    # "Title by Author" as an alternate, so an answer echoing the label grounds too.
    kept = np.flatnonzero(~pd.Series(isbns_all).duplicated().to_numpy())
    catalog.table["raw_title"] = [titles[i] for i in kept]
    catalog.table["alternates"] = [[shown[i]] if authors[i] else [] for i in kept]
    meta = {"format": "bookcrossing", "timestamps": False, "domain_verb": DOMAIN_VERB,
            "ratings_read": int(ratings.num_rows), "dropped_unknown_items": int((~known).sum()),
            "implicit_interactions": int(np.isnan(rating).sum()), "years_nulled": no_year,
            "titles_with_html_entities": _count(books.column("Book-Title"), ENTITY),
            "titles_repaired": fixed_titles, "authors_repaired": fixed_authors,
            "titles_unrepairable": sum(1 for t in titles if "\ufffd" in t or "\u00c3?\u00c2" in t),
            **notes}
    return Loaded(inter, catalog, options.domain or DOMAIN, options.domain_plural or DOMAIN_PLURAL,
                  files=[ratings_path, books_path], meta=meta)


def _count(values: pa.ChunkedArray, pattern: str) -> int:
    return int(pc.sum(pc.match_substring_regex(values, pattern)).as_py() or 0)


def _folder(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def _detect(path: Path) -> bool:
    folder = _folder(path)
    if not path.is_dir() and path.name not in (BOOKS, RATINGS, USERS):
        return False
    return (folder / BOOKS).is_file() and (folder / RATINGS).is_file()


def _files(path: Path, options: LoadOptions) -> tuple[Path, tuple[Path, ...]]:
    folder = _folder(path)
    missing = [n for n in (BOOKS, RATINGS) if not (folder / n).is_file()]
    if missing:
        raise RecllmError(f"a Book-Crossing folder needs {' and '.join(missing)}", where=str(folder),
                          hint="put the BX-CSV-Dump's files side by side (BX-Users.csv is optional)")
    return folder, (folder / RATINGS, folder / BOOKS)


FORMAT = DataFormat(
    "bookcrossing", "Book-Crossing's BX-CSV-Dump: `BX-Book-Ratings.csv` + `BX-Books.csv` (`;`-separated, quoted, "
    "latin-1, `\\\"` escapes); rating 0 = implicit; no timestamps (a seeded synthetic order)",
    _detect, load_bookcrossing, _files,
    detected_by="`BX-Book-Ratings.csv` next to `BX-Books.csv` (or their folder)",
    merge_duplicates=False)  # ISBNs are editions; the published counts keep them apart (opt in: 4,297 merge)
