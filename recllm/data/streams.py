"""Files as streams: transparently gunzipped under the decompression limits, decoded with the
line of any bad byte named, and cut into records for pyarrow's CSV reader (readers.py).

Nothing here holds a whole file in memory; a 5M-row CSV goes through in 1 MiB blocks.
"""

from __future__ import annotations

import codecs
import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from recllm.data import limits
from recllm.errors import RecllmError

ENCODING_HINT = "pass the file's encoding, e.g. --encoding latin-1 (MovieLens raw files) or utf-8"
CHUNK = 1 << 20


class _Gunzip(io.RawIOBase):
    """A .gz file's bytes, decompressed as they are read; corrupt data and bombs are RecllmErrors."""

    def __init__(self, path: Path):
        self.path, self.size, self.total = path, path.stat().st_size, 0
        self.file = gzip.GzipFile(filename=str(path), mode="rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            n = self.file.readinto(buffer)
        except (OSError, EOFError, zlib.error) as exc:
            raise RecllmError(f"corrupt gzip file ({exc})", where=str(self.path),
                              hint="download it again, or pass the uncompressed file") from None
        self.total += n
        limits.check(self.total, self.size, str(self.path))
        return n

    def close(self) -> None:
        self.file.close()
        super().close()


def open_stream(path: Path) -> io.BufferedIOBase:
    """The file's bytes as a stream, transparently gunzipped (Amazon ships .jsonl.gz)."""
    if not path.exists():
        raise RecllmError("file not found", where=str(path))
    if path.is_dir():
        raise RecllmError("expected a file, found a folder", where=str(path))
    with path.open("rb") as f:
        magic = f.read(2)
    if path.suffix == ".gz" or magic == b"\x1f\x8b":
        return io.BufferedReader(_Gunzip(path), CHUNK)
    return path.open("rb")


def open_bytes(path: Path) -> bytes:
    """The whole (gunzipped) file; only for files that must be parsed whole (a JSON array)."""
    with open_stream(path) as f:
        return f.read()


def decode_error(path: Path, exc: UnicodeDecodeError, encoding: str, lines_before: int) -> RecllmError:
    line = lines_before + exc.object[: exc.start].count(b"\n") + 1
    return RecllmError(f"cannot decode byte 0x{exc.object[exc.start]:02x} as {encoding}",
                       where=f"{path}:{line}", hint=ENCODING_HINT)


def iter_text_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(line number, text) of every line, read as a stream rather than as one string."""
    decoder = codecs.getincrementaldecoder(encoding)()
    number, rest, raw_lines, first = 0, "", 0, True
    with open_stream(path) as f:
        while True:
            block = f.read(CHUNK)
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                raise decode_error(path, exc, encoding, raw_lines) from None
            raw_lines += block.count(b"\n")
            if first and text:
                text, first = text.removeprefix("\ufeff"), False
            lines = (rest + text).split("\n")
            rest = lines.pop()
            for line in lines:
                number += 1
                yield number, line.removesuffix("\r")
            if not block:
                if rest:
                    yield number + 1, rest.removesuffix("\r")
                return


class Records(io.RawIOBase):
    """A text file as UTF-8 bytes for pyarrow's CSV reader, noting where each record starts.

    On the way through it checks (or transcodes) the encoding, naming the line of a bad byte;
    strips a byte-order mark; rewrites a multi-character separator ("::") to \\x1f; and keeps
    the 1-based line on which every non-empty record starts: a newline inside a quoted field
    does not end a record (quote parity, as pyarrow reads RFC 4180 quoting), so line numbers
    stay right after an embedded newline. With `header`, the first non-empty line is taken
    out of the stream and kept as `header_line`.
    """

    def __init__(self, raw, path: Path, encoding: str, sep: str, quoted: bool, header: bool):
        self.raw, self.path, self.encoding, self.quoted = raw, path, encoding, quoted
        self.utf8 = codecs.lookup(encoding).name == "utf-8"
        self.decoder = codecs.getincrementaldecoder(encoding)()
        self.sep = sep.encode() if len(sep) > 1 else None
        self.out, self.hold, self.done, self.first = b"", b"", False, True
        self.raw_lines = 0  # newlines in the raw bytes before the current block
        self.line, self.offset, self.in_quote, self.last = 1, 0, False, 0  # scanner state
        self.start, self.start_line = 0, 1  # the open record
        self.starts: list[np.ndarray] = []
        self.header_line = self._take_header() if header else None

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while not self.done and (n < 0 or len(self.out) < n):
            self._fill()
        n = len(self.out) if n < 0 else n
        data, self.out = self.out[:n], self.out[n:]
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def lines(self) -> np.ndarray:
        """The start line of every non-empty record streamed so far."""
        return np.concatenate(self.starts) if self.starts else np.zeros(0, dtype=np.int64)

    def _take_header(self) -> str | None:
        """The first non-empty line, taken out of the stream (its record stays in `lines()`)."""
        while True:
            while not self.done and b"\n" not in self.out:
                self._fill()
            cut = self.out.find(b"\n")
            head, self.out = (self.out, b"") if cut < 0 else (self.out[:cut], self.out[cut + 1:])
            if head.strip(b"\r"):
                return head.removesuffix(b"\r").decode("utf-8")
            if cut < 0:
                return None

    def _fill(self) -> None:
        block = self.raw.read(CHUNK)
        final = not block
        try:
            text = self.decoder.decode(block, final=final)
        except UnicodeDecodeError as exc:
            raise decode_error(self.path, exc, self.encoding, self.raw_lines) from None
        self.raw_lines += block.count(b"\n")
        data = block if self.utf8 else text.encode("utf-8")
        if self.first:
            data, self.first = data.removeprefix(b"\xef\xbb\xbf"), False
        if self.sep:
            data, self.hold = self.hold + data, b""
            if not final:  # a run of separator characters may continue in the next block
                keep = len(data) - len(data.rstrip(bytes(set(self.sep))))
                data, self.hold = data[: len(data) - keep], data[len(data) - keep:]
            data = data.replace(self.sep, b"\x1f")
        self._scan(data)
        self.out += data
        if final:
            self.done = True
            if self.offset > self.start and not (self.offset - self.start == 1 and self.last == 13):
                self.starts.append(np.array([self.start_line], dtype=np.int64))

    def _scan(self, data: bytes) -> None:
        """Record the start line of each record that ends in `data` (vectorized per block)."""
        if not data:
            return
        arr = np.frombuffer(data, dtype=np.uint8)
        newlines = np.flatnonzero(arr == 10)
        line_of = self.line + np.arange(len(newlines), dtype=np.int64)  # the line each newline ends
        if self.quoted:
            quotes = np.flatnonzero(arr == 34)
            outside = ((np.searchsorted(quotes, newlines) + self.in_quote) & 1) == 0
            self.in_quote = bool((len(quotes) + self.in_quote) & 1)
            ends, end_lines = newlines[outside], line_of[outside]
        else:
            ends, end_lines = newlines, line_of
        if len(ends):
            g_ends = self.offset + ends
            starts = np.concatenate(([self.start], g_ends[:-1] + 1))
            start_lines = np.concatenate(([self.start_line], end_lines[:-1] + 1))
            before = np.where(ends > 0, arr[np.maximum(ends - 1, 0)], self.last)
            empty = (g_ends == starts) | ((g_ends - starts == 1) & (before == 13))
            self.starts.append(start_lines[~empty])
            self.start, self.start_line = int(g_ends[-1]) + 1, int(end_lines[-1]) + 1
        self.line += len(newlines)
        self.offset += len(data)
        self.last = int(arr[-1])
