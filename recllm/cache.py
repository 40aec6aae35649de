"""A SQLite response cache, and a backend wrapper that sends only the misses to the engine.

The key is sha256 over everything that changes an answer: the engine's identity (engine, model,
revision, dtype ...), the rendered messages or prompt, the sampling parameters and the
structured-output constraint. Sampled answers (temperature > 0) are cached only with a fixed
seed: without one a repeat call is meant to differ. The database runs in WAL mode and every
write is its own commit, so a run killed mid-way loses nothing it already wrote.

A damaged database file (SQLite says "malformed" or "not a database") is moved aside with a
one-line warning and an empty cache takes its place; a row that does not decode to a
GenerationResult is a miss (the fresh answer overwrites it). Neither stops a run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from recllm import paths
from recllm.backends.base import (
    PENALTY_DEFAULTS,
    Backend,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
    ScoreRequest,
    ScoreResult,
)
from recllm.backends.scoring import SCORING_VERSION

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    engine TEXT NOT NULL,
    model TEXT,
    request TEXT NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL
)
"""

# One row per (prompt, continuation): a request that shares some continuations with an earlier
# one (same prompt) sends only the others to the engine.
SCORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    key TEXT PRIMARY KEY,
    engine TEXT NOT NULL,
    model TEXT,
    logprob REAL NOT NULL,
    tokens INTEGER NOT NULL,
    prompt_tokens INTEGER,
    created REAL NOT NULL
)
"""


def default_path() -> Path:
    return paths.subdir("responses") / "cache.sqlite"


def cache_key(identity: dict[str, Any], request: GenerationRequest) -> str:
    """sha256 of the canonical JSON of identity + request content (not its `key`: two users with
    the same prompt get the same answer)."""
    payload = {
        "identity": identity,
        "messages": [dict(m) for m in request.messages] if request.messages is not None else None,
        "prompt": request.prompt,
        "params": params_record(request.params),
        "structured": structured_record(request.structured),
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def structured_record(structured: dict[str, Any] | None) -> dict[str, Any] | None:
    """The constraint as keyed: a title list (a whole catalog: ~100 KB per request at ML-1M's
    size) by the SHA-256 of its titles, which names it as exactly."""
    if not structured:
        return structured
    out = dict(structured)
    for name in ("titles", "exclude"):
        if isinstance(out.get(name), (list, tuple)) and len(out[name]) > 32:
            digest = hashlib.sha256("\n".join(map(str, out[name])).encode()).hexdigest()
            out[name] = f"sha256:{digest}:{len(out[name])}"
    return out


def score_key(identity: dict[str, Any], request: ScoreRequest, continuation: str) -> str:
    """sha256 of identity + the prompt (messages or raw) + one continuation + how scores are
    computed (SCORING_VERSION); never the request's `key`. Scores are deterministic: always cached."""
    payload = {
        "kind": "score", "scoring": SCORING_VERSION, "identity": identity,
        "messages": [dict(m) for m in request.messages] if request.messages is not None else None,
        "prompt": request.prompt, "continuation": continuation,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def params_record(params: SamplingParams) -> dict[str, Any]:
    """The sampling parameters as keyed: penalty fields only when not neutral (see
    PENALTY_DEFAULTS), so keys written before they existed still match."""
    record = dataclasses.asdict(params)
    for name, neutral in PENALTY_DEFAULTS.items():
        if record[name] == neutral:
            del record[name]
    return record


def cacheable(request: GenerationRequest) -> bool:
    """Greedy answers always; sampled ones only when a seed makes them reproducible."""
    return request.params.greedy or request.params.seed is not None


DAMAGED = {11, 26}  # SQLite's primary codes SQLITE_CORRUPT and SQLITE_NOTADB
_RESULT = TypeAdapter(GenerationResult)  # checks a stored row's fields and their types
_RAISE = object()


def damaged(exc: BaseException) -> bool:
    """Whether an sqlite3 error means the file itself is broken (not busy, locked or full)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and code & 0xFF in DAMAGED


class ResponseCache:
    """key -> GenerationResult in one SQLite file; safe to share between threads of one process."""

    def __init__(self, path: str | Path | None = None, *, log: Callable[[str], None] | None = None):
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.log = log or (lambda message: print(message, file=sys.stderr))
        self.bad_rows = 0  # rows that did not decode: served as misses
        self._warned = False
        self._lock = threading.Lock()
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            if not damaged(exc):
                raise
            self._set_aside(exc)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a killed process
            db.execute("PRAGMA busy_timeout=10000")  # two runs sharing the cache wait, not fail
            db.execute(SCHEMA)
            db.execute(SCORE_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self, exc: BaseException) -> None:
        """Move the damaged file (and its WAL) aside, say so in one line, start an empty cache."""
        if getattr(self, "_db", None) is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{self.path}{suffix}").exists():
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        self.log(f"warning: response cache {self.path} is damaged ({exc}); moved it to {aside.name} "
                 "and started an empty cache (answers will be asked again)")
        self._db = self._connect()

    def _run(self, operation: Callable[[sqlite3.Connection], Any], *, fallback: Any = _RAISE) -> Any:
        """`operation(db)` under the lock; on a damaged file, once more on a fresh one. With a
        `fallback`, any other SQLite failure (disk full, read-only, locked for too long) is
        warned about once and answered with it: the cache is a saving, never a reason to stop."""
        with self._lock:
            try:
                try:
                    return operation(self._db)
                except sqlite3.DatabaseError as exc:
                    if not damaged(exc):
                        raise
                    self._set_aside(exc)
                    return operation(self._db)
            except sqlite3.Error as exc:
                if fallback is _RAISE:
                    raise
                if not self._warned:
                    self._warned = True
                    self.log(f"warning: response cache {self.path} failed ({exc}); going on without it")
                return fallback

    def get_many(self, keys: Sequence[str]) -> dict[str, GenerationResult]:
        unique = list(dict.fromkeys(keys))

        def read(db: sqlite3.Connection) -> dict[str, GenerationResult]:
            found: dict[str, GenerationResult] = {}
            for start in range(0, len(unique), 500):  # SQLite's bound-variable limit
                chunk = unique[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, result in db.execute(f"SELECT key, result FROM responses WHERE key IN ({marks})", chunk):
                    try:
                        found[key] = _RESULT.validate_json(result)
                    except (ValidationError, ValueError, TypeError):  # a bad row is a miss
                        self.bad_rows += 1
            return found

        return self._run(read, fallback={})

    def put(self, key: str, identity: dict[str, Any], request: GenerationRequest,
            result: GenerationResult) -> None:
        record = dataclasses.asdict(result) | {"cached": False}
        req = {"messages": [dict(m) for m in request.messages] if request.messages is not None else None,
               "prompt": request.prompt, "params": params_record(request.params),
               "structured": request.structured}
        row = (key, str(identity.get("engine")), str(identity.get("model")),
               json.dumps(req, ensure_ascii=False), json.dumps(record, ensure_ascii=False), time.time())
        # autocommit mode: each INSERT is its own transaction
        self._run(lambda db: db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)", row),
                  fallback=None)

    def get_scores(self, keys: Sequence[str]) -> dict[str, tuple[float, int, int | None]]:
        """key -> (summed log-prob, token count, prompt tokens); a row of the wrong types is a miss."""
        unique = list(dict.fromkeys(keys))

        def read(db: sqlite3.Connection) -> dict[str, tuple[float, int, int | None]]:
            found = {}
            for start in range(0, len(unique), 500):  # SQLite's bound-variable limit
                chunk = unique[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, logprob, tokens, prompt in db.execute(
                        f"SELECT key, logprob, tokens, prompt_tokens FROM scores WHERE key IN ({marks})", chunk):
                    if (isinstance(logprob, float) and logprob <= 0.0 and isinstance(tokens, int) and tokens > 0
                            and (prompt is None or isinstance(prompt, int))):
                        found[key] = (logprob, tokens, prompt)
                    else:
                        self.bad_rows += 1
            return found

        return self._run(read, fallback={})

    def put_scores(self, identity: dict[str, Any], rows: Sequence[tuple[str, float, int, int | None]]) -> None:
        """Store (key, summed log-prob, tokens, prompt tokens) rows in one transaction."""
        now = time.time()
        data = [(key, str(identity.get("engine")), str(identity.get("model")), float(lp), int(n), prompt, now)
                for key, lp, n, prompt in rows]

        def write(db: sqlite3.Connection) -> None:
            with db:  # one transaction for the request's rows
                db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?)", data)

        self._run(write, fallback=None)

    def __len__(self) -> int:
        return self._run(lambda db: db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def clear(self) -> int:
        return self._run(lambda db: db.execute("DELETE FROM responses").rowcount)

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclasses.dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0  # sent to the engine
    uncacheable: int = 0  # sampled without a seed: sent, never stored


class CachedBackend(Backend):
    """Wraps a backend: answers from the cache, sends only the misses (in one batch, order
    kept) to `inner`, and stores each successful new answer as it comes back."""

    def __init__(self, inner: Backend, cache: ResponseCache | str | Path | None = None):
        self.inner = inner
        self.cache = cache if isinstance(cache, ResponseCache) else ResponseCache(cache)
        self.name = inner.name
        self.stats = CacheStats()

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def count_tokens(self, request: GenerationRequest) -> int | None:
        return self.inner.count_tokens(request)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        identity = self.inner.identity()
        keys = [cache_key(identity, r) if cacheable(r) else None for r in requests]
        found = self.cache.get_many([k for k in keys if k])
        results: list[GenerationResult | None] = [None] * len(requests)
        todo = []
        for i, key in enumerate(keys):
            if key in found:
                hit = dataclasses.replace(found[key], cached=True, seconds=0.0)
                results[i] = hit
                self.stats.hits += 1
            else:
                todo.append(i)
                if key:
                    self.stats.misses += 1
                else:
                    self.stats.uncacheable += 1
        if todo:
            fresh = self.inner.generate([requests[i] for i in todo])
            for i, result in zip(todo, fresh):
                results[i] = result
                if keys[i] and result.error is None:
                    self.cache.put(keys[i], identity, requests[i], result)
        return results  # type: ignore[return-value]

    @property
    def can_score(self) -> bool:  # type: ignore[override]
        return self.inner.can_score

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Like generate: each continuation's score from the cache where it is there; a request
        with any missing goes to `inner` with just those (same prompt), its fresh scores stored."""
        identity = self.inner.identity()
        keys = [[score_key(identity, r, c) for c in r.continuations] for r in requests]
        found = self.cache.get_scores([k for row in keys for k in row])
        results: list[ScoreResult | None] = [None] * len(requests)
        todo: list[tuple[int, list[int]]] = []
        for i, (request, row) in enumerate(zip(requests, keys)):
            missing = [j for j, key in enumerate(row) if key not in found]
            if row and not missing:
                hits = [found[key] for key in row]
                results[i] = ScoreResult([h[0] for h in hits], [h[1] for h in hits], prompt_tokens=hits[0][2],
                                         cached=True)
                self.stats.hits += 1
            else:
                todo.append((i, missing))
                self.stats.misses += 1
        if todo:
            asked = [requests[i].with_continuations([requests[i].continuations[j] for j in missing]) if missing
                     else requests[i] for i, missing in todo]
            for (i, missing), sub, fresh in zip(todo, asked, self.inner.score(asked)):
                if fresh.error is None and (len(fresh.logprobs) != len(sub.continuations)
                                            or len(fresh.tokens) != len(sub.continuations)):
                    fresh = ScoreResult([], [], error=f"the engine returned {len(fresh.logprobs)} scores for "
                                                      f"{len(sub.continuations)} continuations")
                if fresh.error is not None:
                    results[i] = fresh
                    continue
                self.cache.put_scores(identity, [(keys[i][j], lp, n, fresh.prompt_tokens)
                                                 for j, lp, n in zip(missing, fresh.logprobs, fresh.tokens)])
                logprobs = [found[k][0] if k in found else 0.0 for k in keys[i]]
                tokens = [found[k][1] if k in found else 0 for k in keys[i]]
                for j, lp, n in zip(missing, fresh.logprobs, fresh.tokens):
                    logprobs[j], tokens[j] = lp, n
                results[i] = ScoreResult(logprobs, tokens, prompt_tokens=fresh.prompt_tokens, seconds=fresh.seconds)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.inner.close()
        self.cache.close()
