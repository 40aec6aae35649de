"""A SQLite response cache, and a backend wrapper that sends only the misses to the engine.

The key is sha256 over everything that changes an answer: the engine's identity (engine, model,
revision, dtype ...), the rendered messages or prompt, the sampling parameters and the
structured-output constraint. Sampled answers (temperature > 0) are cached only with a fixed
seed: without one a repeat call is meant to differ. The database runs in WAL mode and every
write is its own commit, so a run killed mid-way loses nothing it already wrote.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


class ResponseCache:
    """key -> GenerationResult in one SQLite file; safe to share between threads of one process."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a killed process
        self._db.execute("PRAGMA busy_timeout=10000")  # two runs sharing the cache wait, not fail
        self._db.execute(SCHEMA)

    def get_many(self, keys: Sequence[str]) -> dict[str, GenerationResult]:
        found: dict[str, GenerationResult] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), 500):  # SQLite's bound-variable limit
                chunk = unique[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, result in self._db.execute(
                        f"SELECT key, result FROM responses WHERE key IN ({marks})", chunk):
                    found[key] = GenerationResult(**json.loads(result))
        return found

    def put(self, key: str, identity: dict[str, Any], request: GenerationRequest,
            result: GenerationResult) -> None:
        record = dataclasses.asdict(result) | {"cached": False}
        req = {"messages": [dict(m) for m in request.messages] if request.messages is not None else None,
               "prompt": request.prompt, "params": params_record(request.params),
               "structured": request.structured}
        with self._lock:  # autocommit mode: each INSERT is its own transaction
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                (key, str(identity.get("engine")), str(identity.get("model")),
                 json.dumps(req, ensure_ascii=False), json.dumps(record, ensure_ascii=False), time.time()))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def clear(self) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM responses").rowcount

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
