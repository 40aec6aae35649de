"""Reading raw files with errors a person can act on: file, line and field, and what to do.

Every reader keeps the source line number of each row (`_line` column) so later conversions
can point at the exact line that failed.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recllm.errors import RecllmError

ENCODING_HINT = "pass the file's encoding, e.g. --encoding latin-1 (MovieLens raw files) or utf-8"


def open_bytes(path: Path) -> bytes:
    """The file's bytes, transparently gunzipped (Amazon ships .jsonl.gz)."""
    if not path.exists():
        raise RecllmError("file not found", where=str(path))
    data = path.read_bytes()
    if path.suffix == ".gz" or data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """Decode a whole file; undecodable bytes name the line and suggest `--encoding`."""
    data = open_bytes(path)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RecllmError(
            f"cannot decode byte 0x{data[exc.start]:02x} as {encoding}",
            where=f"{path}:{line}", hint=ENCODING_HINT,
        ) from None
    return text[1:] if text.startswith("\ufeff") else text  # drop a UTF-8 byte-order mark


def read_delimited(
    path: Path,
    *,
    sep: str,
    encoding: str = "utf-8",
    header: bool = True,
    names: Sequence[str] | None = None,
    quoting: int = csv.QUOTE_NONE,
) -> pd.DataFrame:
    """A delimited text file as a table of strings plus its source line numbers (`_line`).

    Multi-character separators (MovieLens "::") are rewritten to a single control character
    first, so pandas's fast C parser reads them. Blank lines are skipped; a row with the wrong
    number of fields is an error naming its line.
    """
    text = read_text(path, encoding)
    if len(sep) > 1:
        text, sep = text.replace(sep, "\x1f"), "\x1f"
    lines_before = 1 if header else 0
    if header:
        first, _, _ = text.partition("\n")
        names = [c.strip() for c in first.rstrip("\r").split(sep)] if names is None else names
    if not names:
        raise RecllmError("no header line", where=str(path))
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=sep, header=None, names=list(names), dtype=str,
            skiprows=lines_before, keep_default_na=False, na_filter=False,
            skip_blank_lines=False, quoting=quoting, engine="c", on_bad_lines="error",
        )
    except pd.errors.ParserError as exc:
        raise _parser_error(path, exc, len(names), lines_before) from None
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame(columns=list(names), dtype=str)
    frame["_line"] = np.arange(len(frame), dtype=np.int64) + lines_before + 1
    _check_short_rows(frame, text, path, sep, quoting, list(names))
    blank = (frame[list(names)] == "").all(axis=1)  # a blank line: every field empty
    return frame[~blank.to_numpy()].reset_index(drop=True)


_PARSER_LINE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _check_short_rows(frame: pd.DataFrame, text: str, path: Path, sep: str, quoting: int,
                      names: list[str]) -> None:
    """pandas pads a row with too few fields with empty strings; find such rows and say so.

    Only rows that have an empty field are re-read, so well-formed files cost one pass of `==`.
    """
    empty = (frame[names] == "").any(axis=1).to_numpy()
    if not empty.any():
        return
    lines = text.split("\n")
    for number in frame["_line"].to_numpy()[empty]:
        line = lines[number - 1].rstrip("\r")
        if not line.strip():
            continue
        fields = next(csv.reader([line], delimiter=sep, quoting=quoting))
        if len(fields) < len(names):
            raise RecllmError(
                f"malformed row: expected {len(names)} fields, found {len(fields)}",
                where=f"{path}:{number}", hint="check the separator (--sep) and quoting on that line",
            )


def _parser_error(path: Path, exc: Exception, n_fields: int, offset: int) -> RecllmError:
    match = _PARSER_LINE.search(str(exc))
    if match:
        line = int(match.group(2))  # pandas counts the skipped header line too
        return RecllmError(
            f"malformed row: expected {n_fields} fields, found {match.group(3)}",
            where=f"{path}:{line}", hint="check the separator (--sep) and quoting on that line",
        )
    return RecllmError(f"cannot parse: {exc}", where=str(path))


def read_jsonl(path: Path, encoding: str = "utf-8", fields: Sequence[str] | None = None) -> pd.DataFrame:
    """JSON Lines as a table (only `fields` when given), with `_line`; bad JSON names its line."""
    text = read_text(path, encoding)
    rows, lines, keys = [], [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecllmError(f"malformed JSON: {exc.msg} at column {exc.colno}",
                              where=f"{path}:{number}") from None
        if not isinstance(obj, dict):
            raise RecllmError("expected a JSON object per line", where=f"{path}:{number}")
        if len(rows) < 1000:  # the keys seen, for "missing column" errors
            keys.update(dict.fromkeys(obj))
        rows.append(obj if fields is None else {k: obj.get(k) for k in fields})
        lines.append(number)
    frame = pd.DataFrame(rows, columns=list(fields) if fields is not None else None)
    frame["_line"] = np.asarray(lines, dtype=np.int64)
    frame.attrs["keys"] = list(keys)
    return frame


def read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file as a table; `_line` is the 1-based row number."""
    import pyarrow.parquet as pq

    try:
        frame = pq.read_table(path).to_pandas()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise RecllmError(f"cannot read Parquet: {exc}", where=str(path)) from None
    frame["_line"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame


def require_columns(frame: pd.DataFrame, wanted: dict[str, str], path: Path) -> None:
    """Error listing the columns that were found when a mapped column is missing."""
    found = [c for c in frame.columns if c != "_line"]
    missing = [f"{col!r} ({role})" for role, col in wanted.items() if col not in frame.columns]
    if missing:
        raise RecllmError(
            f"missing column {', '.join(missing)}; found columns: {', '.join(map(repr, found))}",
            where=str(path), hint="map the columns with --user-col/--item-col/--time-col/"
            "--rating-col (interactions) or --id-col/--title-col (catalog)",
        )


def require_rows(frame: pd.DataFrame, path: Path) -> None:
    """An interactions file without data rows is an error, not an empty dataset."""
    if frame.empty:
        raise RecllmError("no interactions: the file has no data rows", where=str(path))


def to_number(frame: pd.DataFrame, column: str, path: Path, *, integer: bool = False,
              allow_missing: bool = False) -> np.ndarray:
    """A column as float64 (or int64); the first bad value names its line and field."""
    values = frame[column]
    numbers = pd.to_numeric(values, errors="coerce")
    missing = values.isna() | values.astype(str).str.strip().isin(["", "None", "nan", "NaN"])
    bad = numbers.isna() & ~missing if allow_missing else numbers.isna()
    if integer:
        bad |= numbers.notna() & (numbers != np.floor(numbers))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise RecllmError(
            f"field {column!r}: expected a {'whole ' if integer else ''}number, got {values.iloc[row]!r}",
            where=f"{path}:{frame['_line'].iloc[row]}",
        )
    numbers = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    return numbers.astype(np.int64) if integer else numbers


def to_timestamp(frame: pd.DataFrame, column: str, path: Path, unit: str = "s") -> np.ndarray:
    """Seconds since the epoch from numbers (in `unit`) or date strings; bad values name their line."""
    values = frame[column]
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().any():  # a numeric column: any non-number is the error
        bad = numbers.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise RecllmError(f"field {column!r}: expected a number (a timestamp), got {values.iloc[row]!r}",
                              where=f"{path}:{frame['_line'].iloc[row]}")
        scale = {"s": 1, "ms": 1000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
        return (numbers.to_numpy(dtype=np.float64) // scale).astype(np.int64)
    dates = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    bad = dates.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise RecllmError(
            f"field {column!r}: expected a timestamp (number or date), got {values.iloc[row]!r}",
            where=f"{path}:{frame['_line'].iloc[row]}",
        )
    # Whole seconds since the epoch, whatever resolution pandas picked for the datetimes.
    seconds = (dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=np.int64)


def require_ids(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """An id column as strings; an empty id names its line."""
    ids = frame[column]
    if not pd.api.types.is_string_dtype(ids):
        ids = ids.map(_id_text)
    empty = ids.isna() | (ids.astype(str).str.strip() == "")
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise RecllmError(f"field {column!r}: empty id", where=f"{path}:{frame['_line'].iloc[row]}")
    return ids.astype(str).str.strip()


def _id_text(value) -> str | None:
    """Ids read as numbers by Parquet/JSON become "12", not "12.0"."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def iter_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(line number, text) of a small text file such as a list of user ids."""
    for number, line in enumerate(read_text(path, encoding).splitlines(), start=1):
        yield number, line
