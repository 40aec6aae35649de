"""Reading raw files with errors a person can act on: file, line and field, and what to do.

Files are read as streams (recllm.data.streams). Every reader keeps the source line number of each row (`_line` column) so later conversions
can point at the exact line that failed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recllm.data.streams import CHUNK, Records, decode_error, iter_text_lines, open_bytes, open_stream
from recllm.errors import RecllmError

# Seconds of 0001-01-01 and 9999-12-31 23:59:59 UTC: the range a date can be shown for.
MIN_SECONDS, MAX_SECONDS = -62_135_596_800, 253_402_300_799
MALFORMED_HINT = "check the separator (--sep) and quoting on that line"


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """Decode a whole file; undecodable bytes name the line and suggest `--encoding`."""
    data = open_bytes(path)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise decode_error(path, exc, encoding, 0) from None
    return text[1:] if text.startswith("\ufeff") else text  # drop a UTF-8 byte-order mark


def _reader_pool():
    """jemalloc where pyarrow has it: measured here, RSS after reading a big CSV was a quarter
    lower than with the default pool (less fragmentation from the parser's temporary buffers)."""
    import pyarrow as pa

    try:
        return pa.jemalloc_memory_pool()
    except (NotImplementedError, pa.ArrowNotImplementedError):
        return None


def _split_header(line: str, sep: str, quoting: int) -> list[str]:
    return [c.strip() for c in next(csv.reader([line], delimiter=sep, quoting=quoting))]


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

    Read as a stream by pyarrow's CSV reader, so memory stays near the size of the data
    (Arrow strings, no Python object per field). Multi-character separators (MovieLens "::")
    are rewritten to one control character on the way. Blank lines are skipped; a row with the
    wrong number of fields, or a duplicate header name, is an error naming its line.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    quoted = quoting != csv.QUOTE_NONE
    delimiter = "\x1f" if len(sep) > 1 else sep
    with open_stream(path) as raw:
        records = Records(raw, path, encoding, sep, quoted, header)
        if header:
            if records.header_line is None:
                raise RecllmError("no header line", where=str(path))
            found = _split_header(records.header_line, delimiter, quoting)
            names = found if names is None else names
            duplicated = sorted({n for n in found if found.count(n) > 1})
            if duplicated:
                raise RecllmError(f"duplicate column name(s) in the header: {', '.join(map(repr, duplicated))}",
                                  where=f"{path}:1", hint="rename the columns so each name appears once")
        if not names:
            raise RecllmError("no header line", where=str(path))
        names = list(names)
        bad: list = []

        def invalid(row) -> str:
            bad.append(row)
            return "error"

        try:
            reader = pacsv.open_csv(
                records,
                read_options=pacsv.ReadOptions(column_names=[f"c{i}" for i in range(len(names))],
                                               use_threads=False, block_size=CHUNK),
                parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False,
                                                 newlines_in_values=quoted, invalid_row_handler=invalid),
                convert_options=pacsv.ConvertOptions(  # large_string: what pandas keeps, so no copy
                    column_types={f"c{i}": pa.large_string() for i in range(len(names))},
                    strings_can_be_null=False, quoted_strings_can_be_null=False, null_values=[]),
                memory_pool=_reader_pool(),
            )
            table = reader.read_all()
        except pa.ArrowInvalid as exc:
            if bad:
                row = bad[0]
                lines = records.lines()[1 if header else 0:]
                line = int(lines[row.number - 1]) if row.number and row.number <= len(lines) else "?"
                raise RecllmError(f"malformed row: expected {row.expected_columns} fields, found "
                                  f"{row.actual_columns}", where=f"{path}:{line}", hint=MALFORMED_HINT) from None
            if "Empty CSV" not in str(exc):
                raise RecllmError(f"cannot parse: {exc}", where=str(path), hint=MALFORMED_HINT) from None
            table = pa.table({f"c{i}": pa.array([], pa.large_string()) for i in range(len(names))})
        lines = records.lines()[1 if header else 0:]
    frame = table.rename_columns(names).to_pandas()
    if len(lines) != len(frame):  # a stray quote inside an unquoted field: fall back to row order
        lines = np.arange(len(frame), dtype=np.int64) + (2 if header else 1)
    frame["_line"] = lines
    blank = (frame[names] == "").all(axis=1)  # a row of empty fields (",,") counts as blank
    return frame[~blank.to_numpy()].reset_index(drop=True) if blank.any() else frame


def read_jsonl(path: Path, encoding: str = "utf-8", fields: Sequence[str] | None = None) -> pd.DataFrame:
    """JSON Lines as a table (only `fields` when given), with `_line`; bad JSON names its line."""
    rows, lines, keys = [], [], {}
    for number, line in iter_text_lines(path, encoding):
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


def as_numbers(values: pd.Series) -> pd.Series:
    """float64 values, NaN where a value is not a number. A clean Arrow string column (what
    read_delimited gives) is parsed by pyarrow's strict parser without a Python object per
    value; anything else, or any value it refuses, takes pandas's lenient path."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            parsed = pc.cast(pa.array(values), pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            parsed = None
        if parsed is not None and np.isfinite(parsed).all():
            return pd.Series(parsed, index=values.index)
    return pd.to_numeric(values, errors="coerce").astype(np.float64)


def to_number(frame: pd.DataFrame, column: str, path: Path, *, integer: bool = False,
              allow_missing: bool = False) -> np.ndarray:
    """A column as float64 (or int64); the first bad (or infinite) value names its line and field."""
    values = frame[column]
    numbers = as_numbers(values).to_numpy()
    finite = np.isfinite(numbers)
    bad = ~finite
    if bad.any() and allow_missing:  # missing values stay NaN; "inf" and text are still errors
        missing = values.isna() | values.astype(str).str.strip().isin(["", "None", "nan", "NaN"])
        bad &= ~missing.to_numpy()
    if integer:
        bad |= finite & (numbers != np.floor(numbers))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise RecllmError(
            f"field {column!r}: expected a finite {'whole ' if integer else ''}number, got {values.iloc[row]!r}",
            where=f"{path}:{frame['_line'].iloc[row]}",
        )
    return numbers.astype(np.int64) if integer else numbers


def to_timestamp(frame: pd.DataFrame, column: str, path: Path, unit: str = "s") -> np.ndarray:
    """Seconds since the epoch from numbers (in `unit`) or date strings; bad values name their line."""
    values = frame[column]
    numbers = as_numbers(values)
    if numbers.notna().any():  # a numeric column: any non-number is the error
        bad = numbers.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise RecllmError(f"field {column!r}: expected a number (a timestamp), got {values.iloc[row]!r}",
                              where=f"{path}:{frame['_line'].iloc[row]}")
        scale = {"s": 1, "ms": 1000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
        with np.errstate(invalid="ignore"):  # inf // n is nan, refused just below
            seconds = numbers.to_numpy(dtype=np.float64) // scale
        out = ~((seconds >= MIN_SECONDS) & (seconds <= MAX_SECONDS))  # also inf and nan
        if out.any():  # casting would wrap to INT64_MIN, and dates could not be shown
            row = int(np.flatnonzero(out)[0])
            raise RecllmError(f"field {column!r}: timestamp {values.iloc[row]!r} is out of range "
                              f"(read as {unit}; seconds must lie in years 1-9999)",
                              where=f"{path}:{frame['_line'].iloc[row]}",
                              hint="timestamps are seconds (or ms/us/ns) since 1970-01-01; fix that value")
        return seconds.astype(np.int64)
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
    missing = ids.isna()
    ids = ids.astype(str).str.strip()  # once: on big tables each copy is the column's size
    empty = missing | (ids == "")
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise RecllmError(f"field {column!r}: empty id", where=f"{path}:{frame['_line'].iloc[row]}")
    return ids


def _id_text(value) -> str | None:
    """Ids read as numbers by Parquet/JSON become "12", not "12.0"."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def iter_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(line number, text) of a small text file such as a list of user ids."""
    yield from iter_text_lines(path, encoding)
