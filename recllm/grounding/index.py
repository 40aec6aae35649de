"""A character-trigram inverted index: the blocking step that keeps fuzzy matching sub-linear.

Each key " usual suspects " is cut into trigrams; postings (key ids per trigram) live in two
flat numpy arrays (CSR), about 4 bytes per (trigram, key) pair. A query looks up its trigrams,
visits the rarest posting lists first (a typo destroys at most 3 trigrams, so the true key
still shares most of them, and rare ones are cheap and selective) until a budget of postings
is spent, and returns the keys that share the most of those trigrams. Only these few hundred
keys reach rapidfuzz, instead of the whole catalog.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SHIFT = 21  # a Unicode code point fits in 21 bits; a trigram packs into one int64


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)


def _pack(codes: np.ndarray) -> np.ndarray:
    return (codes[:-2] << (2 * _SHIFT)) | (codes[1:-1] << _SHIFT) | codes[2:]


class GramIndex:
    """Trigram postings over `keys` (normalized titles), built vectorized in a few seconds per million."""

    def __init__(self, keys: Sequence[str]):
        self.n = n = len(keys)
        self.lengths = np.fromiter((len(k) for k in keys), dtype=np.int32, count=n)
        if n == 0:
            self.grams = np.zeros(0, np.int64)
            self.offsets = np.zeros(1, np.int64)
            self.postings = np.zeros(0, np.int32)
            self._gram_id = None
            return
        # All keys in one string, "\0"-separated, so one vectorized pass makes every trigram.
        codes = _codes("\x00".join(f" {k} " for k in keys))
        packed = _pack(codes)
        valid = (codes[:-2] != 0) & (codes[1:-1] != 0) & (codes[2:] != 0)
        owner = np.repeat(np.arange(n, dtype=np.int64), self.lengths.astype(np.int64) + 3)[: len(packed)]
        packed, owner = packed[valid], owner[valid]
        del codes, valid
        self.grams, gram_id = np.unique(packed, return_inverse=True)
        del packed
        pairs = np.unique(gram_id.astype(np.int64) * n + owner)  # one posting per (gram, key)
        del gram_id, owner
        self.postings = (pairs % n).astype(np.int32)
        self.offsets = np.searchsorted(pairs // n, np.arange(len(self.grams) + 1)).astype(np.int64)
        self._gram_id: dict[int, int] | None = None

    @property
    def nbytes(self) -> int:
        return self.grams.nbytes + self.offsets.nbytes + self.postings.nbytes + self.lengths.nbytes

    def candidates(self, key: str, *, max_edits: int, budget: int, limit: int) -> np.ndarray:
        """Ids of at most `limit` keys sharing the most rare trigrams with `key`, best first.

        Reads the `3 * max_edits + 1` rarest trigram lists (any key within `max_edits` edits
        shares at least one of them), or fewer when their postings exceed `budget`.
        """
        if self.n == 0 or not key:
            return np.zeros(0, np.int32)
        if self._gram_id is None:  # packed trigram -> position, built on first fuzzy query
            self._gram_id = dict(zip(self.grams.tolist(), range(len(self.grams))))
        padded = f" {key} "
        codes = [ord(ch) for ch in padded]
        offsets, found = self.offsets, []
        for packed in {(a << 42) | (b << 21) | c for a, b, c in zip(codes, codes[1:], codes[2:])}:
            g = self._gram_id.get(packed)
            if g is not None:
                start, end = int(offsets[g]), int(offsets[g + 1])
                found.append((end - start, start, end))
        if not found:
            return np.zeros(0, np.int32)
        found.sort()
        lists, total = [], 0
        for size, start, end in found[: 3 * max_edits + 1]:
            if lists and total + size > budget:
                break
            lists.append(self.postings[start:end])
            total += size
        if len(lists) == 1:
            ids, counts = lists[0], None
        else:
            ids, counts = np.unique(np.concatenate(lists), return_counts=True)
        gap = np.abs(self.lengths[ids] - len(key))
        # Most shared trigrams first, then closest length.
        rank = gap if counts is None else gap - counts.astype(np.int64) * 4096
        if len(ids) > limit:
            top = np.argpartition(rank, limit - 1)[:limit]
            ids, rank = ids[top], rank[top]
        return ids[np.argsort(rank, kind="stable")]
