"""The response cache: keys change with everything that changes an answer, a re-run sends
nothing, sampled answers need a seed, and writes survive a killed process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

import pytest

from recllm.backends import GenerationRequest, GenerationResult, SamplingParams
from recllm.backends.base import Backend
from recllm.cache import CachedBackend, ResponseCache, cache_key, default_path


class CountingBackend(Backend):
    """Echoes the prompt and counts what reaches it."""

    name = "counting"

    def __init__(self, model="m"):
        self.model, self.sent = model, 0

    def identity(self):
        return {"engine": self.name, "model": self.model, "revision": "r1"}

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.sent += len(requests)
        return [GenerationResult([f"answer to {r.prompt}"], prompt_tokens=3, completion_tokens=2, seconds=0.5,
                                 error="boom" if r.prompt == "fail" else None) for r in requests]


def prompts(*texts, **params):
    return [GenerationRequest(prompt=t, key=str(i), params=SamplingParams(**params)) for i, t in enumerate(texts)]


def test_rerun_sends_zero_requests(tmp_path):
    inner = CountingBackend()
    backend = CachedBackend(inner, tmp_path / "c.sqlite")
    first = backend.generate(prompts("a", "b", "c"))
    assert inner.sent == 3 and not any(r.cached for r in first)
    again = CachedBackend(inner, tmp_path / "c.sqlite")  # a new process would open it like this
    second = again.generate(prompts("a", "b", "c"))
    assert inner.sent == 3
    assert [r.text for r in second] == [r.text for r in first] and all(r.cached for r in second)
    assert second[0].completion_tokens == 2 and again.stats.hits == 3


def test_only_misses_are_sent_and_order_is_kept(tmp_path):
    inner = CountingBackend()
    backend = CachedBackend(inner, tmp_path / "c.sqlite")
    backend.generate(prompts("b"))
    out = backend.generate(prompts("a", "b", "c"))
    assert inner.sent == 3  # 1 + the two misses
    assert [r.text for r in out] == ["answer to a", "answer to b", "answer to c"]
    assert [r.cached for r in out] == [False, True, False]


def test_errors_are_not_cached(tmp_path):
    inner = CountingBackend()
    backend = CachedBackend(inner, tmp_path / "c.sqlite")
    backend.generate(prompts("fail"))
    backend.generate(prompts("fail"))
    assert inner.sent == 2


def test_sampled_answers_are_cached_only_with_a_seed(tmp_path):
    inner = CountingBackend()
    backend = CachedBackend(inner, tmp_path / "c.sqlite")
    for _ in range(2):
        backend.generate(prompts("a", temperature=0.7))
    assert inner.sent == 2 and backend.stats.uncacheable == 2
    for _ in range(2):
        backend.generate(prompts("a", temperature=0.7, seed=1))
    assert inner.sent == 3


def test_key_covers_identity_messages_and_params():
    ident = {"engine": "e", "model": "m", "revision": "r"}
    base = GenerationRequest(messages=({"role": "user", "content": "hi"},))
    k = cache_key(ident, base)
    assert k == cache_key(dict(ident), GenerationRequest(messages=({"content": "hi", "role": "user"},), key="x"))
    variants = [
        cache_key(ident | {"revision": "r2"}, base),
        cache_key(ident | {"model": "m2"}, base),
        cache_key(ident, GenerationRequest(messages=({"role": "user", "content": "hi!"},))),
        cache_key(ident, GenerationRequest(prompt="hi")),
        cache_key(ident, GenerationRequest(messages=base.messages, params=SamplingParams(max_tokens=9))),
        cache_key(ident, GenerationRequest(messages=base.messages, params=SamplingParams(stop=("\n",)))),
        cache_key(ident, GenerationRequest(messages=base.messages, structured={"choice": ["a"]})),
    ]
    assert len({k, *variants}) == len(variants) + 1


def test_neutral_penalties_keep_keys_written_before_they_existed():
    ident = {"engine": "e", "model": "m", "revision": "r"}
    messages = ({"role": "user", "content": "hi"},)
    request = GenerationRequest(messages=messages, params=SamplingParams(max_tokens=120, stop=("\n\n",)))
    # The key this request had before SamplingParams grew penalty fields (recllm at 38fb73d).
    assert cache_key(ident, request) == "00434dc5c161d74d1d2a2be3211cf8b9e619e670882e5a49803460ccfb8392e8"
    keys = {cache_key(ident, GenerationRequest(messages=messages, params=SamplingParams(
        max_tokens=120, stop=("\n\n",), **{name: value}))) for name, value in
        [("repetition_penalty", 1.2), ("repetition_penalty", 1.3), ("frequency_penalty", 0.5),
         ("presence_penalty", 0.5)]}
    assert len(keys) == 4 and cache_key(ident, request) not in keys


def test_default_location_is_under_recllm_home(recllm_home):
    assert default_path().is_relative_to(recllm_home)
    cache = ResponseCache()
    assert len(cache) == 0 and cache.path.exists()


def test_writes_survive_a_killed_process(tmp_path):
    """A child writes one answer and is killed with os._exit before any clean shutdown."""
    path = tmp_path / "c.sqlite"
    code = f"""
import os, sys
sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
from test_cache import CountingBackend, prompts
from recllm.cache import CachedBackend
CachedBackend(CountingBackend(), {str(path)!r}).generate(prompts("a"))
os._exit(9)
"""
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 9
    inner = CountingBackend()
    out = CachedBackend(inner, path).generate(prompts("a"))
    assert inner.sent == 0 and out[0].cached


# Every registered backend, built for real (no engine is loaded to ask identity()): a base
# option set, then options that each change answers and so must change the identity.
def _folder(tmp_path, weights=b"w" * 2_000_000):
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    for name in ("config.json", "tokenizer.json"):
        (folder / name).write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    return str(folder)


IDENTITY_CASES = {
    "transformers": ({}, [{"max_new_tokens": 32}, {"dtype": "bfloat16"}, {"model": "org/name"},
                          {"model": "org/name", "revision": "v2"}]),
    "vllm": ({}, [{"quantization": "awq"}, {"dtype": "float16"}, {"model": "org/name"},
                  {"model": "org/name", "revision": "v2"}]),
    "openai": ({"model": "m", "base_url": "http://127.0.0.1:9/v1"},
               [{"extra_body": {"top_k": 5}}, {"structured_format": "openai"}, {"revision": "r2"},
                {"base_url": "http://127.0.0.1:9/v2"}, {"model": "m2"}, {"tokenizer": "org/chat"}]),
    "scripted": ({"answers": {"u1": "a"}}, [{"answers": {"u1": "b"}}, {"scores": {"u1": {"a": -1.0}}}]),
    "llamacpp": ({}, [{"n_ctx": 2048}, {"max_new_tokens": 32}]),
}


def test_every_backend_has_identity_cases():
    from recllm.backends import BACKENDS

    assert set(IDENTITY_CASES) == set(BACKENDS)


@pytest.mark.parametrize("name", sorted(IDENTITY_CASES))
def test_real_backend_identity_changes_with_every_answer_setting(name, tmp_path):
    from recllm.backends import get_backend

    if name == "transformers":
        pytest.importorskip("torch")
    base, variants = IDENTITY_CASES[name]
    if name in ("transformers", "vllm"):
        base = {"model": _folder(tmp_path)}
    if name == "llamacpp":
        pytest.importorskip("xllamacpp")
        gguf = tmp_path / "m.gguf"
        gguf.write_bytes(b"GGUF" + b"w" * 2_000_000)
        base = {"model": str(gguf)}
    idents = [get_backend(name, **base).identity()] + [get_backend(name, **(base | v)).identity() for v in variants]
    keys = {cache_key(i, GenerationRequest(prompt="p")) for i in idents}
    assert len(keys) == len(idents), idents
    if name in ("transformers", "vllm"):  # a fine-tune saved in place over the base: new weights, new key
        _folder(tmp_path, weights=b"v" * 2_000_000)
        assert get_backend(name, **base).identity() != idents[0]
    if name == "llamacpp":  # a GGUF rewritten in place: new content hash, new key
        gguf.write_bytes(b"GGUF" + b"v" * 2_000_000)
        assert get_backend(name, **base).identity() != idents[0]


def test_openai_identity_holds_no_secret():
    from recllm.backends import get_backend

    backend = get_backend("openai", model="m", api_key="sk-hidden-1",
                          base_url="https://me:pw-hidden-2@api.example.com/v1?api-key=qk-hidden-3",
                          extra_body={"user_token": "tk-hidden-4"})
    blob = json.dumps(backend.identity())
    assert "api.example.com/v1" in blob and not any(f"hidden-{i}" in blob for i in range(1, 5))


def _damage_pages(path, first_page=2, pages=4, size=4096):
    data = bytearray(path.read_bytes())
    data[first_page * size:(first_page + pages) * size] = b"Z" * (pages * size)
    path.write_bytes(bytes(data))


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database " * 200)
    said = []
    inner = CountingBackend()
    backend = CachedBackend(inner, ResponseCache(path, log=said.append))
    assert [r.text for r in backend.generate(prompts("a"))] == ["answer to a"]
    assert len(said) == 1 and "damaged" in said[0] and "\n" not in said[0]
    [aside] = [p for p in tmp_path.iterdir() if ".damaged-" in p.name]
    assert aside.read_bytes().startswith(b"this is not a database")
    assert CachedBackend(inner, path).generate(prompts("a"))[0].cached  # the new file works


def test_a_malformed_database_is_moved_aside_mid_run(tmp_path):
    """SQLite reports 'database disk image is malformed' only when it reads a bad page."""
    path = tmp_path / "c.sqlite"
    texts = [f"prompt {i} " + "x" * 300 for i in range(200)]
    CachedBackend(CountingBackend(), path).generate(prompts(*texts))
    cache = ResponseCache(path)
    cache._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every row into the main file
    cache.close()
    _damage_pages(path)
    said = []
    inner = CountingBackend()
    backend = CachedBackend(inner, ResponseCache(path, log=said.append))
    out = backend.generate(prompts(*texts))
    assert [r.text for r in out] == [f"answer to {t}" for t in texts]
    assert len(said) == 1 and "malformed" in said[0]
    again = CountingBackend()
    assert all(r.cached for r in CachedBackend(again, path).generate(prompts(*texts))) and again.sent == 0


def test_a_bad_row_is_a_miss_and_is_replaced(tmp_path):
    path = tmp_path / "c.sqlite"
    inner = CountingBackend()
    CachedBackend(inner, path).generate(prompts("a", "b", "c"))
    cache = ResponseCache(path)
    with cache._lock:
        keys = [cache_key(CountingBackend().identity(), r) for r in prompts("a", "b")]
        cache._db.execute("UPDATE responses SET result = '{not json' WHERE key = ?", (keys[0],))
        cache._db.execute("UPDATE responses SET result = '{\"texts\": 5}' WHERE key = ?", (keys[1],))
    backend = CachedBackend(inner, cache)
    out = backend.generate(prompts("a", "b", "c"))
    assert [r.cached for r in out] == [False, False, True] and cache.bad_rows == 2
    assert [r.text for r in out] == ["answer to a", "answer to b", "answer to c"]
    assert all(r.cached for r in CachedBackend(inner, path).generate(prompts("a", "b", "c")))


def test_a_busy_database_is_not_mistaken_for_a_damaged_one():
    import sqlite3

    from recllm.cache import damaged

    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5
    assert not damaged(busy) and not damaged(sqlite3.DatabaseError("no code"))


def test_a_cache_that_cannot_be_written_is_warned_about_once_and_skipped(tmp_path):
    import sqlite3

    said = []
    cache = ResponseCache(tmp_path / "c.sqlite", log=said.append)
    cache._db.close()
    cache._db = sqlite3.connect(f"file:{tmp_path / 'c.sqlite'}?mode=ro", uri=True, check_same_thread=False)
    inner = CountingBackend()
    backend = CachedBackend(inner, cache)
    for _ in range(2):
        assert [r.text for r in backend.generate(prompts("a", "b"))] == ["answer to a", "answer to b"]
    assert inner.sent == 4 and len(said) == 1 and "going on without it" in said[0]
