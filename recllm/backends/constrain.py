"""Catalog-constrained generation: the model can only write titles from a given list.

A request asks for it with `structured={"titles": [...], "format": "numbered" | "lines",
"max_items": k, "exclude": [...]}` (`constrain: catalog` passes every catalog label,
`candidates` the shown ones; `exclude`, optional, titles not to write, such as the history).
The answer is at most k lines, each one title followed by a newline: "1. Heat (1995)\n2. ..."
(numbered, what prompts/generate.jinja asks for and recllm.grounding.parse reads) or
"Heat (1995)\n..." (lines); it ends with end-of-text at the start of a line, or after k lines.

Three engines, one format:
- transformers: `TitleTrie` (a prefix tree over each title's token ids) + `TitleConstraint`, a
  LogitsProcessor that lets through only the tokens continuing some not-yet-written title.
- vLLM: `vllm_structured_for_titles` -> {"grammar": GBNF} (xgrammar reads llama.cpp's GBNF).
- llama.cpp: `gbnf_for_titles`.

Tokenization: a title is tokenized in the context it is written in, jointly with what surrounds
it: "1." + " " + title + "\n" (numbered) or "\n" + title + "\n" (lines), and the context's tokens
are cut off the front. That gives the tokens the model itself would produce (byte-level BPEs glue
the leading space to the first word; Qwen-style ones glue ")\n" into one token), and the
newline ends every sequence, so no title's tokens are a prefix of another's. Only this one
(canonical) tokenization of each title is allowed. A title whose tokens do not decode back to
its text (unknown tokens, an empty string, a newline inside) is skipped and counted. The line
markers "1.", "2." ... are forced (tokenized after a newline), so the model chooses only which
title comes next and when to stop; a title is never started that the token budget cannot finish.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from recllm.errors import RecllmError

Format = Literal["numbered", "lines"]
FORMATS = ("numbered", "lines")
# Why a limit: building the trie costs ~16 s and ~150 MB at peak per 100,000 titles on a busy
# 2-core machine (tokenizing is most of it; eval/RESULTS.md), ~55 MB per 100,000 to keep, and a
# million titles is more than any catalog evaluated here; past it, rank retrieved candidates
# (`constrain: candidates`) instead of constraining to the whole catalog.
MAX_TITLES = 1_000_000
BUILD_S_PER_100K, BUILD_MB_PER_100K = 16, 150
MAX_TITLE_TOKENS = 96  # a longer "title" is a description; skipped and counted
SPEC_KEYS = {"titles", "format", "max_items", "exclude"}


@dataclass(frozen=True)
class TitleSpec:
    """A request's `structured` dict, checked."""

    titles: Sequence[str]
    format: Format = "numbered"
    max_items: int = 10
    exclude: Sequence[str] = ()  # titles not to write (e.g. the user's history); unknown ones ignored


def is_titles_spec(structured: dict[str, Any] | None) -> bool:
    return bool(structured) and "titles" in structured


def parse_spec(structured: dict[str, Any]) -> TitleSpec:
    """`structured` -> TitleSpec, or a one-line RecllmError naming the bad field."""
    unknown = set(structured) - SPEC_KEYS
    if unknown:
        raise RecllmError(f"constrained output: unknown field(s) {sorted(unknown)}",
                          where="structured", hint=f"a title constraint takes {sorted(SPEC_KEYS)}")
    titles, fmt, k = structured["titles"], structured.get("format", "numbered"), structured.get("max_items", 10)
    if isinstance(titles, str) or not isinstance(titles, Sequence):
        raise RecllmError("constrained output: `titles` must be a list of strings", where="structured.titles")
    if len(titles) == 0:
        raise RecllmError("constrained output: the title list is empty (no candidates to choose from)",
                          where="structured.titles", hint="give at least one catalog title or candidate")
    if len(titles) > MAX_TITLES:
        raise RecllmError(
            f"constrained output: {len(titles):,} titles is over the limit of {MAX_TITLES:,} (their token "
            f"trie would take ~{len(titles) * BUILD_S_PER_100K // 100_000:,} s and "
            f"~{len(titles) * BUILD_MB_PER_100K // 100_000:,} MB to build)",
            where="structured.titles", hint="use `constrain: candidates` with retrieved candidates, or no constraint")
    if fmt not in FORMATS:
        raise RecllmError(f"constrained output: format {fmt!r} is not one of {FORMATS}", where="structured.format")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise RecllmError(f"constrained output: max_items must be a positive integer, got {k!r}",
                          where="structured.max_items")
    exclude = structured.get("exclude") or ()
    if isinstance(exclude, str) or not isinstance(exclude, Sequence):
        raise RecllmError("constrained output: `exclude` must be a list of titles", where="structured.exclude")
    return TitleSpec(titles, fmt, k, exclude)


def usable_title(title: Any) -> str | None:
    """The title as written on one line, or None (not a string, empty, or several lines)."""
    if not isinstance(title, str):
        return None
    title = title.strip()
    return title if title and "\n" not in title and "\r" not in title else None


# -- the trie -------------------------------------------------------------------------------------
@dataclass
class TitleTrie:
    """A prefix tree over token-id sequences, as flat arrays (100k titles: ~1M nodes).

    Node 0 is the root. Children of node n are `child_ids[child_start[n]:child_start[n+1]]`,
    sorted by their token. `through[n]` counts the titles below n (the answer may use each
    once); `rest[n]` is the fewest tokens from n to a title's end (to fit the token budget).
    """

    token: np.ndarray  # int32, per node (root: -1)
    parent: np.ndarray  # int32
    child_start: np.ndarray  # int64, n_nodes + 1
    child_ids: np.ndarray  # int32
    child_tokens: np.ndarray  # int32, token of child_ids[j]
    through: np.ndarray  # int32
    rest: np.ndarray  # int32
    leaf_title: np.ndarray  # int32: title index at the node ending it, else -1
    titles: list[str]
    skipped: dict[str, int] = field(default_factory=dict)
    _leaves: dict[str, int] | None = field(default=None, repr=False, compare=False)

    @property
    def n_nodes(self) -> int:
        return len(self.token)

    def children(self, node: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = self.child_start[node], self.child_start[node + 1]
        return self.child_ids[s:e], self.child_tokens[s:e]

    def step(self, node: int, token: int) -> int:
        """The child of `node` reached by `token`, or -1."""
        ids, toks = self.children(node)
        j = int(np.searchsorted(toks, token))
        return int(ids[j]) if j < len(toks) and toks[j] == token else -1

    def leaf(self, title: str) -> int:
        """The node ending `title` (as listed, stripped), or -1 when it is not in the trie."""
        if self._leaves is None:
            ends = np.flatnonzero(self.leaf_title >= 0)
            self._leaves = dict(zip((self.titles[i] for i in self.leaf_title[ends]), ends.tolist()))
        return self._leaves.get(usable_title(title) or "", -1)

    def path(self, node: int) -> list[int]:
        """Nodes from just below the root down to `node`."""
        out = []
        while node > 0:
            out.append(node)
            node = int(self.parent[node])
        return out[::-1]

    def sequences(self) -> list[list[int]]:
        """Every title's token ids (for tests and the bench)."""
        return [[int(self.token[n]) for n in self.path(leaf)] for leaf in np.flatnonzero(self.leaf_title >= 0)]

    @classmethod
    def build(cls, sequences: list[list[int]], titles: list[str], skipped: dict[str, int]) -> TitleTrie:
        """Sort the sequences; each adds the nodes past its common prefix with the one before,
        so node ids come out in depth-first order and a row's new nodes are contiguous. A row's
        first new node hangs off the node its prefix ends at, made by the nearest row above
        with a shorter common prefix (a monotonic stack); counts and depths go bottom-up."""
        n = len(sequences)
        order = sorted(range(n), key=sequences.__getitem__)
        seqs = [sequences[i] for i in order]
        titles = [titles[i] for i in order]
        lcp = [0] * n
        for i in range(1, n):
            a, b = seqs[i - 1], seqs[i]
            m, top = 0, min(len(a), len(b))
            while m < top and a[m] == b[m]:
                m += 1
            lcp[i] = m
        lengths = [len(x) for x in seqs]
        base, first_parent, stack, nxt = [0] * n, [0] * n, [], 1  # stack: rows with rising lcp
        for i in range(n):
            while stack and lcp[stack[-1]] >= lcp[i]:
                stack.pop()
            if lcp[i]:  # the node at depth lcp[i]-1 on this row's path, made by row `stack[-1]`
                j = stack[-1]
                first_parent[i] = base[j] + (lcp[i] - 1 - lcp[j])
            base[i] = nxt
            nxt += lengths[i] - lcp[i]
            stack.append(i)
        n_nodes = nxt
        new = np.asarray(lengths, np.int64) - np.asarray(lcp, np.int64)
        token = np.empty(n_nodes, np.int64)
        token[0] = -1
        token[1:] = np.fromiter((t for x, c in zip(seqs, lcp) for t in x[c:]), np.int64, n_nodes - 1)
        starts = np.asarray(base, np.int64)
        parent = np.arange(-1, n_nodes - 1, dtype=np.int64)  # inside a row: the node before
        parent[starts] = first_parent
        parent[0] = 0
        depth = np.zeros(n_nodes, np.int64)
        row_of = np.repeat(np.arange(n), new)
        depth[1:] = np.asarray(lcp, np.int64)[row_of] + (np.arange(1, n_nodes) - starts[row_of])
        leaves = starts + new - 1
        leaf_title = np.full(n_nodes, -1, np.int64)
        leaf_title[leaves] = np.arange(n)
        through = np.zeros(n_nodes, np.int64)
        through[leaves] = 1
        rest = np.full(n_nodes, np.iinfo(np.int32).max, np.int64)
        rest[leaves] = 0
        by_depth = np.argsort(-depth[1:], kind="stable") + 1  # deepest first
        cuts = np.flatnonzero(np.diff(depth[by_depth])) + 1
        for level in np.split(by_depth, cuts):  # children before parents
            np.add.at(through, parent[level], through[level])
            np.minimum.at(rest, parent[level], rest[level] + 1)
        through[0] = n
        kids = np.lexsort((token[1:], parent[1:])) + 1
        child_start = np.searchsorted(parent[kids], np.arange(n_nodes + 1)).astype(np.int64)
        i32 = lambda a: a.astype(np.int32)  # noqa: E731
        return cls(i32(token), i32(parent), child_start, i32(kids), i32(token[kids]), i32(through),
                   i32(rest), i32(leaf_title), titles, dict(skipped))


def _context(fmt: Format) -> tuple[str, str]:
    """(text before a title, text between the context and the title) for a format."""
    return ("1.", " ") if fmt == "numbered" else ("\n", "")


def title_sequences(tokenizer, titles: Sequence[str], fmt: Format) -> tuple[list[list[int]], list[str], dict]:
    """Each usable title's tokens as written in an answer line (see the module docstring)."""
    skipped = {"not one line of text": 0, "duplicate": 0, "tokens do not spell it": 0, "too long": 0}
    kept, seen = [], set()
    for t in titles:
        u = usable_title(t)
        if u is None:
            skipped["not one line of text"] += 1
        elif u in seen:
            skipped["duplicate"] += 1
        else:
            seen.add(u)
            kept.append(u)
    ctx, sep = _context(fmt)
    encode, decode = _codec(tokenizer)
    ctx_ids = encode([ctx])[0]
    pieces = [sep + t + "\n" for t in kept]
    joint = encode([ctx + p for p in pieces]) if kept else []
    cut = len(ctx_ids)
    clean = [ids[cut:] if ids[:cut] == ctx_ids else None for ids in joint]
    alone_idx = [i for i, s in enumerate(clean) if s is None]  # context merged into the title
    if alone_idx:
        for i, ids in zip(alone_idx, encode([pieces[i] for i in alone_idx])):
            clean[i] = ids
    # Spelled back as the backend will decode the answer (special tokens dropped: an unknown
    # token spells nothing, so its title fails here).
    decoded = decode([ctx_ids + s for s in clean]) if kept else []
    prefix = decode([ctx_ids])[0]
    sequences, out = [], []
    for title, piece, seq, text in zip(kept, pieces, clean, decoded):
        if not seq or text != prefix + piece:
            skipped["tokens do not spell it"] += 1
        elif len(seq) > MAX_TITLE_TOKENS:
            skipped["too long"] += 1
        else:
            sequences.append(seq)
            out.append(title)
    return sequences, out, {k: v for k, v in skipped.items() if v}


def _codec(tokenizer):
    """Batch encode/decode without special tokens: the Rust tokenizer directly when there is
    one (3x faster than the Python wrapper on 100k titles), with the wrapper's space clean-up."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    tidy = tokenizer.clean_up_tokenization if getattr(tokenizer, "clean_up_tokenization_spaces", False) else None
    if backend is None:
        return (lambda texts: tokenizer(list(texts), add_special_tokens=False)["input_ids"],
                lambda seqs: tokenizer.batch_decode(seqs, skip_special_tokens=True))

    def encode(texts):
        return [e.ids for e in backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(seqs):
        texts = backend.decode_batch(seqs, skip_special_tokens=True)
        return [tidy(t) for t in texts] if tidy else texts
    return encode, decode


def number_tokens(tokenizer, i: int) -> list[int]:
    """Tokens of the line marker "i." at the start of a line (after a newline)."""
    nl = tokenizer("\n", add_special_tokens=False)["input_ids"]
    ids = tokenizer(f"\n{i}.", add_special_tokens=False)["input_ids"]
    return ids[len(nl):] if ids[:len(nl)] == nl else tokenizer(f"{i}.", add_special_tokens=False)["input_ids"]


# -- caching: per tokenizer + format + title list, in memory and on disk under RECLLM_HOME ----------
_TRIES: OrderedDict[str, TitleTrie] = OrderedDict()
_MEMO: dict[int, tuple[Any, str]] = {}  # id(object) -> (object kept alive, fingerprint)
_LOCK = threading.Lock()
MEMORY_TRIES = 8


def _memo_fingerprint(obj: Any, compute) -> str:
    hit = _MEMO.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    value = compute(obj)
    if len(_MEMO) > 64:
        _MEMO.clear()
    _MEMO[id(obj)] = (obj, value)
    return value


def tokenizer_fingerprint(tokenizer) -> str:
    def compute(tok) -> str:
        backend = getattr(tok, "backend_tokenizer", None)
        blob = backend.to_str() if backend is not None else repr(sorted(tok.get_vocab().items()))
        return hashlib.sha256(f"{type(tok).__name__}\0{blob}".encode()).hexdigest()[:16]
    return _memo_fingerprint(tokenizer, compute)


def titles_fingerprint(titles: Sequence[str]) -> str:
    def compute(ts) -> str:
        h = hashlib.sha256()
        for t in ts:
            h.update(str(t).encode("utf-8", "surrogatepass"))
            h.update(b"\0")
        return h.hexdigest()[:16]
    # Lists are unhashable and mutable: memoize tuples (and lists) by identity only while alive.
    return _memo_fingerprint(titles, compute)


def trie_for(tokenizer, titles: Sequence[str], fmt: Format = "numbered", *, disk: bool = True) -> TitleTrie:
    """The trie for these titles under this tokenizer, built once (memory LRU, then disk)."""
    key = f"{tokenizer_fingerprint(tokenizer)}-{fmt}-{titles_fingerprint(titles)}"
    with _LOCK:
        if key in _TRIES:
            _TRIES.move_to_end(key)
            return _TRIES[key]
    trie = _load(key) if disk and len(titles) > 1000 else None
    if trie is None:
        sequences, kept, skipped = title_sequences(tokenizer, titles, fmt)
        if not sequences:
            raise RecllmError(f"constrained output: none of the {len(titles):,} titles can be written "
                              f"with this tokenizer ({_skipped_text(skipped)})", where="structured.titles",
                              hint="check the catalog's titles (empty or unknown-token titles are skipped)")
        trie = TitleTrie.build(sequences, kept, skipped)
        if skipped:  # say so once per title list; a few odd catalog rows are normal
            print(f"note: constrained output: {sum(skipped.values()):,} of {len(titles):,} titles skipped "
                  f"({_skipped_text(skipped)})", file=sys.stderr)
        if disk and len(titles) > 1000:  # small candidate lists are cheaper to rebuild than to store
            _save(key, trie)
    with _LOCK:
        _TRIES[key] = trie
        while len(_TRIES) > MEMORY_TRIES:
            _TRIES.popitem(last=False)
    return trie


def _skipped_text(skipped: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {why}" for why, n in skipped.items()) or "none skipped"


_ARRAYS = ("token", "parent", "child_start", "child_ids", "child_tokens", "through", "rest", "leaf_title")


def _path(key: str):
    from recllm import paths
    return paths.subdir("constrain") / f"{key}.npz"


def _save(key: str, trie: TitleTrie) -> None:
    import json
    try:
        path = _path(key)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{a: getattr(trie, a) for a in _ARRAYS},
                 meta=np.array(json.dumps({"titles": trie.titles, "skipped": trie.skipped})))
        tmp.replace(path)
    except OSError:
        pass  # a cache that cannot be written only costs a rebuild next time


def _load(key: str) -> TitleTrie | None:
    import json
    try:
        path = _path(key)
        if not path.exists():
            return None
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            return TitleTrie(*(data[a] for a in _ARRAYS), titles=meta["titles"], skipped=meta["skipped"])
    except Exception:  # noqa: BLE001 -- a damaged cache file is rebuilt
        return None


# -- transformers: the logits processor ------------------------------------------------------------
class _Row:
    """Where one answer is: writing line marker `pos` of line `items + 1`, or inside a title at
    `node`; `done` once it ended (end-of-text, or a token the constraint did not offer, such as
    the padding transformers feeds a finished row)."""

    def __init__(self, trie: TitleTrie, spec: TitleSpec, marks: dict[int, list[int]]):
        self.trie, self.spec, self.marks = trie, spec, marks
        self.items = 0
        self.done = False
        self.in_title = spec.format == "lines"
        self.pos = 0
        self.node = 0
        self.used: dict[int, int] = {}
        self.exhausted: set[int] = set()
        self.left = int(trie.through[0])  # titles not yet written nor excluded
        for title in spec.exclude:
            leaf = trie.leaf(title)
            if leaf >= 0 and leaf not in self.exhausted:
                self._use(leaf)

    def _use(self, leaf: int) -> None:
        """`leaf`'s title is taken: no path leads to it any more."""
        for n in self.trie.path(leaf):
            self.used[n] = self.used.get(n, 0) + 1
            if self.used[n] >= self.trie.through[n]:
                self.exhausted.add(n)
        self.left -= 1

    def advance(self, token: int, eos: frozenset[int]) -> None:
        if self.done:
            return
        if token in eos:
            self.done = True
        elif not self.in_title:
            mark = self.marks[self.items + 1]
            if token != mark[self.pos]:
                self.done = True
                return
            self.pos += 1
            if self.pos == len(mark):
                self.in_title, self.node = True, 0
        else:
            child = self.trie.step(self.node, token)
            if child < 0:
                self.done = True
                return
            self.node = child
            if self.trie.leaf_title[child] >= 0:  # a title written: never again in this answer
                self._use(child)
                self.items += 1
                self.node, self.pos = 0, 0
                self.in_title = self.spec.format == "lines"

    def allowed(self, budget: int, eos: list[int]) -> list[int] | np.ndarray:
        """Token ids that keep the answer inside the constraint with `budget` tokens left."""
        trie = self.trie
        line_start = (self.pos == 0 and not self.in_title) or (self.in_title and self.node == 0
                                                               and self.spec.format == "lines")
        if line_start:
            end = eos if self.items >= 1 else []
            mark = self.marks.get(self.items + 1, []) if self.spec.format == "numbered" else []
            if self.items >= self.spec.max_items or self.left <= 0:
                return eos  # k lines written, or every title written or excluded
            first = self._fitting(0, budget - len(mark))
            if len(first) == 0:
                return eos  # no unused title fits in the tokens left: end here, not mid-line
            if mark:
                return [mark[0], *end]
            return np.concatenate([first, np.asarray(end, first.dtype)]) if end else first
        if not self.in_title:
            return [self.marks[self.items + 1][self.pos]]
        allowed = self._fitting(self.node, budget)
        # Empty only in a rare corner (a tight budget fitted only by an already written title).
        return allowed if len(allowed) else eos

    def _fitting(self, node: int, budget: int) -> np.ndarray:
        """Tokens from `node` toward an unused title that ends within `budget` tokens."""
        trie = self.trie
        ids, toks = trie.children(node)
        keep = None
        if budget <= MAX_TITLE_TOKENS + 1:  # only a short budget can cut a title
            keep = trie.rest[ids] < budget
        if self.exhausted:
            bad = [c for c in self.exhausted if trie.parent[c] == node]
            if bad:
                k2 = ~np.isin(ids, bad)
                keep = k2 if keep is None else keep & k2
        return toks if keep is None else toks[keep]


class TitleConstraint:
    """A transformers logits processor (called as processor(input_ids, scores)): row r of the
    batch writes only titles of `tries[r // copies]`, in `specs[r // copies]`'s format; rows
    whose trie is None are left alone. Built per generate() call: it keeps each row's place.

    `prompt_width` is the padded prompt length (so the step count is known) and `max_new` the
    answer's token budget: no title is started that cannot be finished within it."""

    def __init__(self, tokenizer, tries: Sequence[TitleTrie | None], specs: Sequence[TitleSpec | None],
                 eos_ids: Sequence[int], prompt_width: int, max_new: int, copies: int = 1):
        self.eos = sorted(set(int(e) for e in eos_ids))
        self._eos = frozenset(self.eos)
        self.width, self.max_new = prompt_width, max_new
        self.rows: list[_Row | None] = []
        for trie, spec in zip(tries, specs):
            marks = _marks(tokenizer, spec.max_items) if spec is not None and spec.format == "numbered" else {}
            for _ in range(copies):
                self.rows.append(_Row(trie, spec, marks) if trie is not None and spec is not None else None)

    def __call__(self, input_ids, scores):
        import torch

        step = input_ids.shape[1] - self.width
        if step > 0:
            last = input_ids[:, -1].tolist()
            for row, token in zip(self.rows, last):
                if row is not None:
                    row.advance(token, self._eos)
        budget = self.max_new - step
        rows, cols = [], []
        for r, row in enumerate(self.rows):
            if row is not None and not row.done:
                allowed = np.asarray(row.allowed(budget, self.eos), np.int64)
                rows.append(np.full(len(allowed), r))
                cols.append(allowed)
        if not rows:
            return scores
        rows_np, cols_np = np.concatenate(rows), np.concatenate(cols)
        if scores.device.type == "cpu" and scores.dtype == torch.float32:
            # numpy on CPU: torch's threaded elementwise ops stall on a busy machine (a 8 x 49k
            # masked_fill took 39 ms at load 6 on 2 cores, numpy 1 ms).
            arr = scores.numpy()
            out = np.full_like(arr, -np.inf)
            out[rows_np, cols_np] = arr[rows_np, cols_np]
            free = [r for r, row in enumerate(self.rows) if row is None or row.done]
            out[free] = arr[free]
            return torch.from_numpy(out)
        # One mask for the whole batch (a few tensor ops per step, not a few per row).
        constrained = torch.as_tensor(np.unique(rows_np), device=scores.device)
        banned = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
        banned[constrained] = True
        banned[torch.as_tensor(rows_np, device=scores.device), torch.as_tensor(cols_np, device=scores.device)] = False
        return scores.masked_fill(banned, float("-inf"))


_MARKS: dict[tuple[str, int], dict[int, list[int]]] = {}


def _marks(tokenizer, k: int) -> dict[int, list[int]]:
    key = (tokenizer_fingerprint(tokenizer), k)
    if key not in _MARKS:
        _MARKS[key] = {i: number_tokens(tokenizer, i) for i in range(1, k + 1)}
    return _MARKS[key]


# -- llama.cpp and vLLM: a GBNF grammar ------------------------------------------------------------
_PLAIN = re.compile(r'[ !#-\[\]-~]*')  # printable ASCII but " and \: written as is
_NOT_PLAIN = re.compile(r'[^ !#-\[\]-~]')
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    ch = match.group()
    o = ord(ch)
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if o < 0x20 or o == 0x7F:
        return f"\\x{o:02X}"
    return f"\\u{o:04X}" if o <= 0xFFFF else f"\\U{o:08X}"


def gbnf_literal(text: str) -> str:
    """`text` as a GBNF string literal: quotes, backslashes and control characters escaped,
    non-ASCII written as \\uXXXX / \\UXXXXXXXX code points (llama.cpp's and xgrammar's syntax)."""
    if _PLAIN.fullmatch(text):
        return f'"{text}"'
    return '"' + _NOT_PLAIN.sub(_escape, text) + '"'


def _alternatives(ss: list[str], lo: int, hi: int, off: int) -> str:
    """Sorted distinct strings ss[lo:hi], all equal before `off`, as one GBNF expression with
    common prefixes factored out (a radix tree), so the grammar engine follows a few branches
    per character, not every title. Indices, not slices: no string is copied per level."""
    a, b = ss[lo], ss[hi - 1]  # sorted: the first and the last bound the common prefix
    n, top = off, min(len(a), len(b))
    while n < top:  # the longest common prefix, by bisection over slice comparisons (C speed)
        mid = (n + top + 1) // 2
        if a[off:mid] == b[off:mid]:
            n = mid
        else:
            top = mid - 1
    if hi - lo == 1:
        return gbnf_literal(a[off:])
    head = gbnf_literal(a[off:n]) if n > off else ""
    optional = len(a) == n  # one string ends here (it sorts first), the others go on
    branches, i = [], lo + 1 if optional else lo
    while i < hi:  # groups by the next character: sorted there too, so found by bisection
        j = bisect.bisect_right(ss, ss[i][n], i, hi, key=lambda x: x[n])
        branches.append(_alternatives(ss, i, j, n))
        i = j
    body = branches[0] if len(branches) == 1 else "(" + " | ".join(branches) + ")"
    if optional:
        body = f"({body})?" if len(branches) == 1 else body + "?"
    return f"{head} {body}" if head else body


_GRAMMARS: OrderedDict[tuple, str] = OrderedDict()


def gbnf_for_titles(titles: Sequence[str], k: int, numbered: bool = True, exclude: Sequence[str] = ()) -> str:
    """A GBNF grammar: 1 to k lines, each one of `titles` then a newline; numbered "1. ", "2. "
    ... when `numbered`. (A grammar cannot cheaply forbid a title twice; the trie processor
    does.) Titles that are not one line of text are left out; cached per title list."""
    parse_spec({"titles": titles, "max_items": k})  # the same limits and messages as the trie
    key = (titles_fingerprint(titles), k, numbered, tuple(exclude))
    if key in _GRAMMARS:
        return _GRAMMARS[key]
    usable = sorted({u for u in map(usable_title, titles) if u is not None} - set(map(usable_title, exclude)))
    if not usable:
        raise RecllmError(f"constrained output: none of the {len(titles):,} titles is one line of text",
                          where="structured.titles")
    line = lambda i: f'{gbnf_literal(f"{i}. ") if numbered else ""} title "\\n"'.strip()  # noqa: E731
    body = ""
    for i in range(k, 0, -1):  # line 1 (line 2 (line 3 ...)?)?
        body = f"{line(i)} ({body})?" if body else line(i)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))  # deep only for very long shared prefixes
    grammar = f"root ::= {body}\ntitle ::= {_alternatives(usable, 0, len(usable), 0)}\n"
    _GRAMMARS[key] = grammar
    while len(_GRAMMARS) > 16:
        _GRAMMARS.popitem(last=False)
    return grammar


def vllm_structured_for_titles(spec: TitleSpec) -> dict[str, str]:
    """The vLLM structured-outputs fields for a title constraint: {"grammar": GBNF} (vLLM's
    xgrammar backend reads GBNF; a regex alternation of 100k titles compiles far slower)."""
    return {"grammar": gbnf_for_titles(spec.titles, spec.max_items, numbered=spec.format == "numbered",
                                       exclude=spec.exclude)}
