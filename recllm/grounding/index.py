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
from rapidfuzz.distance import OSA

_MAX_LEN = 1023  # longer keys share one length bucket
# A word's deletion neighbourhood holds len(word) strings of len(word) - 1 letters: quadratic.
# Longer words (no title's, in practice) are spelled exactly; the q-gram pass still sees typos.
MAX_SPELL_WORD = 40
_BITS = 16  # code points above the BMP fold to 0xFFFF; q <= 4 characters pack into one uint64


def _codes(text: str) -> np.ndarray:
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return np.minimum(codes, 0xFFFF).astype(np.uint64)


def _pack(codes: np.ndarray, q: int) -> np.ndarray:
    n = len(codes) - q + 1
    packed = codes[:n].copy()
    for j in range(1, q):
        packed = (packed << np.uint64(_BITS)) | codes[j: j + n]
    return packed


def unique(x: np.ndarray, counts: bool = False):
    """np.unique by sorting (numpy 2's hash-based unique is several times slower here)."""
    x = np.sort(x)
    if len(x) == 0:
        return (x, np.zeros(0, np.int64)) if counts else x
    first = np.empty(len(x), bool)
    first[0], first[1:] = True, x[1:] != x[:-1]
    if not counts:
        return x[first]
    starts = np.flatnonzero(first)
    return x[starts], np.diff(np.append(starts, len(x)))


class GramIndex:
    """Character q-gram postings over `keys` (normalized titles), built vectorized: seconds per million."""

    def __init__(self, keys: Sequence[str], q: int = 3):
        if not 2 <= q <= 4:
            raise ValueError("gram size must be 2, 3 or 4")
        self.q = q
        self.n = n = len(keys)
        self.lengths = np.fromiter((len(k) for k in keys), dtype=np.int32, count=n)
        self._gram_id: dict[int, int] | None = None
        if n == 0:
            self.grams = np.zeros(0, np.uint64)
            self.offsets = np.zeros(1, np.int64)
            self.postings = np.zeros(0, np.int32)
            self.windows = np.zeros(0, np.int32)
            return
        # All keys in one string, "\0"-separated, so one vectorized pass makes every gram.
        codes = _codes("\x00".join(self._pad(k) for k in keys))
        packed = _pack(codes, q)
        valid = np.ones(len(packed), bool)
        for j in range(q):
            valid &= codes[j: j + len(packed)] != 0
        widths = self.lengths.astype(np.int64) + len(self._pad("")) + 1
        owner = np.repeat(np.arange(n, dtype=np.int64), widths)[: len(packed)]
        packed, owner = packed[valid], owner[valid]
        del codes, valid
        # Sort-based dedup (np.unique's hash path is several times slower at this size).
        order = np.argsort(packed, kind="stable")
        packed, owner = packed[order], owner[order]
        del order
        first = np.empty(len(packed), bool)
        first[0], first[1:] = True, packed[1:] != packed[:-1]
        self.grams = packed[first]
        gram_id = np.cumsum(first) - 1
        del packed, first
        pairs = gram_id * n + owner  # sorted by gram; owners ascend within a gram (stable sort)
        keep = np.empty(len(pairs), bool)
        keep[0], keep[1:] = True, pairs[1:] != pairs[:-1]  # one posting per (gram, key)
        gram_id, owner = gram_id[keep], owner[keep]
        del pairs, keep
        # Within a gram, postings ascend by key length: a length window is one slice.
        clipped = np.minimum(self.lengths, _MAX_LEN).astype(np.int64)
        order = np.argsort(gram_id * (_MAX_LEN + 1) + clipped[owner], kind="stable")
        owner, gram_id = owner[order], gram_id[order]
        self.postings = owner.astype(np.int32)
        # (gram, length) of every posting, ascending: one searchsorted finds every window.
        dtype = np.int32 if len(self.grams) < 2**31 // (_MAX_LEN + 1) else np.int64
        self.windows = (gram_id * (_MAX_LEN + 1) + clipped[owner]).astype(dtype)
        del order, gram_id, owner

    def _pad(self, key: str) -> str:
        return " " * (self.q - 2) + key + " "  # every key, even one letter, has a gram

    @property
    def nbytes(self) -> int:
        return self.grams.nbytes + self.postings.nbytes + self.windows.nbytes + self.lengths.nbytes

    def candidates(self, key: str, *, max_edits: int, budget: int, limit: int) -> np.ndarray:
        """Ids of at most `limit` keys sharing the most rare q-grams with `key`, best first.

        Only keys whose length is within `max_edits` of the key's are read (one slice per
        gram). Reads the `q * max_edits + 1` rarest of those slices (any key within
        `max_edits` edits shares at least one of them), or fewer when they exceed `budget`.
        """
        if self.n == 0 or not key:
            return np.zeros(0, np.int32)
        if self._gram_id is None:  # packed gram -> position, built on first fuzzy query
            self._gram_id = dict(zip(self.grams.tolist(), range(len(self.grams))))
        codes = [min(ord(ch), 0xFFFF) for ch in self._pad(key)]
        q, lo_len, hi_len = self.q, len(key) - max_edits, len(key) + max_edits
        if q == 3:
            grams = {(a << 32) | (b << 16) | c for a, b, c in zip(codes, codes[1:], codes[2:])}
        else:
            grams = set()
            for i in range(len(codes) - q + 1):
                packed = 0
                for c in codes[i: i + q]:
                    packed = (packed << _BITS) | c
                grams.add(packed)
        gram_ids = [g for g in map(self._gram_id.get, grams) if g is not None]
        if not gram_ids:
            return np.zeros(0, np.int32)
        base = np.asarray(gram_ids, dtype=np.int64) * (_MAX_LEN + 1)
        dtype = self.windows.dtype  # same dtype, or searchsorted casts the whole haystack
        lo = self.windows.searchsorted((base + max(lo_len, 0)).astype(dtype))
        hi = self.windows.searchsorted((base + min(hi_len, _MAX_LEN)).astype(dtype), side="right")
        found = sorted(zip((hi - lo).tolist(), lo.tolist(), hi.tolist()))
        found = [f for f in found if f[0] > 0]
        if not found:
            return np.zeros(0, np.int32)
        lists, total = [], 0
        for size, start, end in found[: q * max_edits + 1]:
            if lists and total + size > budget:
                break
            lists.append(self.postings[start:end])
            total += size
        if len(lists) == 1:
            ids, counts = lists[0], None
        else:
            ids, counts = unique(np.concatenate(lists), counts=True)
        gap = np.abs(self.lengths[ids] - len(key))
        # Most shared grams first, then closest length.
        rank = gap if counts is None else gap - counts.astype(np.int64) * 4096
        if len(ids) > limit:
            top = np.argpartition(rank, limit - 1)[:limit]
            ids, rank = ids[top], rank[top]
        return ids[np.argsort(rank, kind="stable")]


class WordIndex:
    """Word -> keys containing it (CSR), with a spelling index over the words.

    The second blocking pass. A typo in a title of common words leaves only common q-grams,
    and a transposed short word ("Knae") shares none with the right one ("Kane"). So each
    word of the title is corrected against the catalog's own vocabulary (one-deletion
    neighbourhoods, as in SymSpell: "knae" and "kane" both lose a letter to "kae"), and the
    keys containing the rarest corrected words are the candidates.
    """

    def __init__(self, keys: Sequence[str]):
        word_id: dict[str, int] = {}
        owners: list[int] = []
        words: list[int] = []
        for kid, key in enumerate(keys):
            for w in set(key.split()):
                words.append(word_id.setdefault(w, len(word_id)))
                owners.append(kid)
        w_arr = np.asarray(words, dtype=np.int64)
        order = np.argsort(w_arr, kind="stable")
        self.postings = np.asarray(owners, dtype=np.int32)[order]
        self.offsets = np.searchsorted(w_arr[order], np.arange(len(word_id) + 1)).astype(np.int64)
        del words, owners, w_arr, order
        self.word_id = word_id
        self.words = list(word_id)
        self.lengths = np.fromiter((len(k) for k in keys), dtype=np.int32, count=len(keys))
        # Deletion neighbourhood of every word of 3+ letters: hash(variant) -> word id.
        hashes, ids = [], []
        for wid, w in enumerate(self.words):
            if 3 <= len(w) <= MAX_SPELL_WORD:
                for v in _deletions(w):
                    hashes.append(hash(v))
                    ids.append(wid)
        h = np.asarray(hashes, dtype=np.int64)
        order = np.argsort(h, kind="stable")
        self.del_hashes, self.del_words = h[order], np.asarray(ids, dtype=np.int32)[order]

    @property
    def nbytes(self) -> int:
        return self.postings.nbytes + self.offsets.nbytes + self.del_hashes.nbytes + self.del_words.nbytes

    def spellings(self, word: str) -> list[int]:
        """Ids of catalog words one typo away from `word` (and `word` itself, which alone is
        returned when two titles or more use it: a real word is taken as written)."""
        found = set()
        wid = self.word_id.get(word)
        if wid is not None:
            if self.offsets[wid + 1] - self.offsets[wid] >= 2:
                return [wid]
            found.add(wid)
        if 3 <= len(word) <= MAX_SPELL_WORD:
            h = np.fromiter((hash(v) for v in _deletions(word)), dtype=np.int64)
            lo = self.del_hashes.searchsorted(h, "left")
            hi = self.del_hashes.searchsorted(h, "right")
            for a, b in zip(lo.tolist(), hi.tolist()):
                for wid in self.del_words[a:b].tolist():
                    if OSA.distance(word, self.words[wid], score_cutoff=2) <= (1 if len(word) < 8 else 2):
                        found.add(wid)
        return list(found)

    def candidates(self, key: str, *, slack: int = 2, limit: int = 128, budget: int = 50_000) -> np.ndarray:
        """Keys about as long as `key` containing its rarest (corrected) words."""
        groups = []
        for w in set(key.split()):
            ids = self.spellings(w)
            size = sum(int(self.offsets[i + 1] - self.offsets[i]) for i in ids)
            if size:
                groups.append((size, ids))
        groups.sort(key=lambda g: g[0])
        groups = [g for i, g in enumerate(groups) if i == 0 or g[0] <= budget]
        if not groups or groups[0][0] > budget:
            return np.zeros(0, np.int32)  # only very common words: the q-gram pass was the chance
        sets = [unique(np.concatenate([self.postings[self.offsets[i]: self.offsets[i + 1]] for i in ids]))
                for _, ids in groups[:2]]
        ids = sets[0]
        if len(sets) == 2:  # the right key holds (a spelling of) both rarest words
            both = np.intersect1d(sets[0], sets[1], assume_unique=True)
            ids = both if len(both) else unique(np.concatenate(sets))
        gap = np.abs(self.lengths[ids] - len(key))
        ids, gap = ids[gap <= slack], gap[gap <= slack]
        if len(ids) > limit:
            top = np.argpartition(gap, limit - 1)[:limit]
            ids, gap = ids[top], gap[top]
        return ids[np.argsort(gap, kind="stable")]


def _deletions(word: str) -> set[str]:
    return {word, *(word[:i] + word[i + 1:] for i in range(len(word)))}
