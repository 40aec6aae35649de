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
from recllm.backends.base import PENALTY_DEFAULTS, Backend, GenerationRequest, GenerationResult, SamplingParams

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
        "structured": request.structured,
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

    def close(self) -> None:
        self.inner.close()
        self.cache.close()
