"""Likelihood scoring: ScoreRequest -> ScoreResult on every backend. transformers on the tiny
random Llama (prompt once + continuations over its KV cache == one full pass each), the token
boundary rule, the refusal of engines without log-probabilities, scripted scores, the cache,
and the normalizations."""

from __future__ import annotations

import math

import pytest

from recllm.backends import GenerationRequest, GenerationResult, ScoreRequest, ScoreResult, get_backend
from recllm.backends.base import Backend
from recllm.backends.scoring import normalized, split_tokens
from recllm.cache import CachedBackend, ResponseCache
from recllm.errors import RecllmError

CONTS = ("1 . toy story", "1 . heat", "1 . star wars the", "fargo", "1 . the a of and 2 3 4 5 heat")


def chat(text: str, conts=CONTS, key=None) -> ScoreRequest:
    return ScoreRequest(messages=({"role": "user", "content": text},), continuations=tuple(conts), key=key)


# -- the contract ------------------------------------------------------------------------------
class Mute(Backend):
    name = "mute"

    def generate(self, requests):
        return [GenerationResult(["x"]) for _ in requests]


def test_an_engine_without_logprobs_refuses_clearly():
    with pytest.raises(RecllmError, match="backend 'mute' cannot score continuations") as info:
        Mute().score([chat("heat")])
    assert "mode: generate" in info.value.hint
    assert not Mute.can_score


def test_request_needs_one_prompt_and_string_continuations():
    with pytest.raises(ValueError, match="exactly one"):
        ScoreRequest(continuations=("a",))
    with pytest.raises(ValueError, match="tuple of strings"):
        ScoreRequest(prompt="p", continuations="abc")
    assert ScoreRequest(prompt="p", continuations=["a", "b"]).continuations == ("a", "b")


def test_normalizations():
    result = ScoreResult([-4.0, -3.0], [4, 1])
    prior = ScoreResult([-1.0, -2.5], [4, 1])
    assert normalized(result, "sum") == [-4.0, -3.0]
    assert normalized(result, "mean") == [-1.0, -3.0]
    assert normalized(result, "pmi", prior) == [-3.0, -0.5]
    with pytest.raises(RecllmError, match="needs the prior"):
        normalized(result, "pmi")
    with pytest.raises(RecllmError, match="2 scores but 1 prior"):
        normalized(result, "pmi", ScoreResult([-1.0], [1]))
    with pytest.raises(RecllmError, match="unknown score_norm 'max'"):
        normalized(result, "max")
    with pytest.raises(RecllmError, match="failed score"):
        normalized(ScoreResult([], [], error="boom"), "sum")


class WordTokenizer:
    """A stand-in tokenizer: one id per known word, nothing for unknown ones."""

    vocab = {"toy": 1, "story": 2, "heat": 3, "toystory": 4}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.vocab[w] for w in text.split() if w in self.vocab]}


def test_boundary_joint_suffix_else_alone():
    tok = WordTokenizer()
    bound = split_tokens(tok, "toy ", ["story", "heat toy"], raw=False)
    assert bound.prompt == [1] and bound.continuations == [[2], [3, 1]] and bound.joint == [True, True]
    # "toy" + "story" merges into one word: the continuation is tokenized alone instead.
    bound = split_tokens(tok, "toy", ["story"], raw=False)
    assert bound.continuations == [[2]] and bound.joint == [False]
    with pytest.raises(RecllmError, match=r"continuation 0 \('zzz'\) tokenizes to nothing"):
        split_tokens(tok, "toy ", ["zzz"], raw=False)


# -- scripted ----------------------------------------------------------------------------------
SCORES = {"u1": {"a": -1.0, "b c": -2.0}, "u2": {"a": -0.5}}


def test_scripted_scores_by_key_and_continuation():
    backend = get_backend("scripted", scores=SCORES)
    out = backend.score([chat("x", ["b c", "a"], key="u1"), chat("x", ["a"], key="u3"),
                         chat("x", ["zz"], key="u2"), chat("x", ["a"], key="u2#ask1"), chat("x", [], key="u1")])
    assert (out[0].logprobs, out[0].tokens, out[0].error) == ([-2.0, -1.0], [2, 1], None)
    assert out[1].error == "no scripted scores for key 'u3'"
    assert out[2].error == "no scripted score for continuation 'zz' of key 'u2'"
    assert out[3].logprobs == [-0.5]  # a re-ask is scored like its user
    assert "no continuations" in out[4].error
    assert backend.generate([GenerationRequest(prompt="p", key="u1")])[0].error  # no answers given


# -- cache -------------------------------------------------------------------------------------
def test_cache_stores_each_continuation_and_sends_only_misses(tmp_path):
    inner = get_backend("scripted", scores={"u1": {"a": -1.0, "b": -2.0, "c": -3.0}})
    seen: list[ScoreRequest] = []
    real = inner.score
    inner.score = lambda requests: (seen.extend(requests), real(requests))[1]
    cached = CachedBackend(inner, ResponseCache(tmp_path / "c.sqlite"))
    assert cached.can_score
    first = cached.score([chat("x", ["a", "b"], key="u1"), chat("x", ["zz"], key="u1")])
    assert first[0].logprobs == [-1.0, -2.0] and not first[0].cached and first[1].error
    again = cached.score([chat("x", ["b", "a"], key="u1")])[0]
    assert again.cached and again.logprobs == [-2.0, -1.0] and again.tokens == [1, 1]
    seen.clear()
    mixed = cached.score([chat("x", ["c", "a"], key="u1")])[0]
    assert [r.continuations for r in seen] == [("c",)]  # the cached "a" was not asked again
    assert mixed.logprobs == [-3.0, -1.0] and not mixed.cached
    seen.clear()
    other_prompt = cached.score([chat("y", ["a"], key="u1")])[0]
    assert [r.continuations for r in seen] == [("a",)] and other_prompt.logprobs == [-1.0]
    seen.clear()
    assert cached.score([chat("x", ["zz"], key="u1")])[0].error and len(seen) == 1  # errors never stored


def test_cache_refuses_through_an_engine_that_cannot_score(tmp_path):
    cached = CachedBackend(Mute(), ResponseCache(tmp_path / "c.sqlite"))
    assert not cached.can_score
    with pytest.raises(RecllmError, match="cannot score"):
        cached.score([chat("x", ["a"])])


# -- transformers ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_llm import build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", max_positions=64)
    return get_backend("transformers", model=str(folder), batch_size=2)  # 2: the chunks are exercised


def reference(backend, request: ScoreRequest) -> list[float]:
    from recllm.backends.hf_score import full_pass_logprobs
    from recllm.backends.scoring import render

    model, tok = backend._load()
    text, raw = render(tok, request, "tiny")
    return full_pass_logprobs(model, split_tokens(tok, text, request.continuations, raw=raw), "cpu")


def test_kv_reuse_equals_one_full_pass_per_continuation(tiny):
    requests = [chat("recommend movies like heat"), ScoreRequest(prompt="user watched fargo", continuations=CONTS)]
    results = tiny.score(requests)
    for request, result in zip(requests, results):
        assert result.error is None
        assert result.logprobs == pytest.approx(reference(tiny, request), abs=1e-4)
        assert all(lp < 0 for lp in result.logprobs)
    chat_tokens = [len(c.split()) for c in CONTS]  # the tiny tokenizer: one token per word
    assert results[0].tokens == chat_tokens
    assert results[0].prompt_tokens == tiny.count_tokens(GenerationRequest(messages=requests[0].messages))
    # A continuation's score does not depend on the others in its batch.
    alone = tiny.score([chat("recommend movies like heat", [CONTS[2]])])[0]
    assert alone.logprobs[0] == pytest.approx(results[0].logprobs[2], abs=1e-4)
    assert results[0].means == pytest.approx([lp / n for lp, n in zip(results[0].logprobs, chat_tokens)])


def test_transformers_per_request_errors_keep_order(tiny):
    long = " ".join(["heat"] * 70)
    out = tiny.score([chat("heat", ["fargo"]), chat("heat", []), chat("heat", ["fargo", "  "]), chat(long, ["a"]),
                      chat("toy", ["heat"])])
    assert out[0].error is None and out[4].error is None and out[0].logprobs != out[4].logprobs
    assert "no continuations" in out[1].error
    assert "continuation 1 ('  ') is empty" in out[2].error
    assert "the model's context is 64" in out[3].error and "shorten the history" in out[3].error
    assert all(math.isfinite(lp) for lp in out[0].logprobs)


# -- vLLM (a fake module: the prompt_logprobs translation really runs) -------------------------
def fake_logprob(position: int, token: int) -> float:
    return -((token % 7) + 1) / 10 - position / 1000


def fake_vllm(monkeypatch, *, limit: int = 10_000, drop_logprobs: bool = False):
    import sys
    import types
    from types import SimpleNamespace

    pytest.importorskip("transformers")
    from tiny_llm import build_tokenizer

    calls: dict = {"generate": []}

    class FakeLLM:
        def __init__(self, **kwargs):
            pass

        def get_tokenizer(self):
            return build_tokenizer()

        def generate(self, prompts, sampling_params=None, use_tqdm=True):
            calls["generate"].append((prompts, sampling_params))
            outs = []
            for p in prompts:
                ids = p["prompt_token_ids"]
                if len(ids) > limit:
                    raise ValueError(f"prompt of {len(ids)} tokens is longer than max_model_len {limit}")
                table = [None] + [{tok: SimpleNamespace(logprob=fake_logprob(t, tok)), 0: SimpleNamespace(logprob=-9.0)}
                                  for t, tok in enumerate(ids) if t > 0]
                outs.append(SimpleNamespace(prompt_logprobs=None if drop_logprobs else table, prompt_token_ids=ids,
                                            outputs=[SimpleNamespace(text="x", token_ids=[1])]))
            return outs

    vllm = types.ModuleType("vllm")
    vllm.LLM = FakeLLM
    vllm.SamplingParams = lambda **kwargs: SimpleNamespace(kwargs=kwargs)
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    return calls


@pytest.fixture
def vllm_folder(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (folder / name).write_text("{}")
    return str(folder)


def expected_vllm(request: ScoreRequest) -> list[float]:
    from tiny_llm import build_tokenizer

    from recllm.backends.scoring import render

    tok = build_tokenizer()
    text, raw = render(tok, request, "m")
    bound = split_tokens(tok, text, request.continuations, raw=raw)
    n = len(bound.prompt)
    return [sum(fake_logprob(n + t, tok) for t, tok in enumerate(c)) for c in bound.continuations]


def test_vllm_scores_from_prompt_logprobs_in_one_call(monkeypatch, vllm_folder):
    calls = fake_vllm(monkeypatch)
    backend = get_backend("vllm", model=vllm_folder)
    requests = [chat("recommend movies like heat"), chat("heat", []),
                ScoreRequest(prompt="user watched fargo", continuations=("heat", "toy story"))]
    out = backend.score(requests)
    assert len(calls["generate"]) == 1  # every continuation of every request in one engine call
    prompts, params = calls["generate"][0]
    assert len(prompts) == len(CONTS) + 2
    assert params.kwargs == {"max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 1}
    assert out[0].logprobs == pytest.approx(expected_vllm(requests[0]))
    assert out[0].tokens == [len(c.split()) for c in CONTS]
    assert "no continuations" in out[1].error
    assert out[2].logprobs == pytest.approx(expected_vllm(requests[2])) and out[2].tokens == [1, 2]


def test_vllm_engine_failure_is_that_requests_error(monkeypatch, vllm_folder):
    fake_vllm(monkeypatch, limit=12)
    backend = get_backend("vllm", model=vllm_folder)
    out = backend.score([chat("heat", ["fargo"]), chat(" ".join(["heat"] * 20), ["fargo"])])
    assert out[0].error is None and out[0].logprobs == pytest.approx(expected_vllm(chat("heat", ["fargo"])))
    assert "longer than max_model_len 12" in out[1].error


def test_vllm_without_prompt_logprobs_is_an_error(monkeypatch, vllm_folder):
    fake_vllm(monkeypatch, drop_logprobs=True)
    out = get_backend("vllm", model=vllm_folder).score([chat("heat", ["fargo"])])
    assert "no prompt log-probabilities" in out[0].error


# -- openai: /v1/completions with echo + logprobs, against a fake server on loopback -------------
TOKEN = r"\s*\S+"  # the fake server's tokenizer: a word with the spaces before it


class ScoreServer:
    """Answers /v1/completions with echo + logprobs (token logprob = -len(token) / 10), or
    misbehaves on cue: `mode` is ok | nologprobs | noecho | malformed | refuse | short. Like
    transformers serve, it refuses a prompt that is not a string and fields it does not know."""

    def __init__(self, mode="ok"):
        import json
        import re
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.mode, self.bodies = mode, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.bodies.append(body)
                if outer.mode == "refuse":
                    return self.reply(400, b'{"error": "echo is not supported with logprobs"}')
                if not isinstance(body["prompt"], str) or set(body) - {"model", "prompt", "echo", "logprobs",
                                                                       "max_tokens", "temperature"}:
                    return self.reply(422, b'{"detail": "prompt must be a string; no unexpected fields"}')
                text = body["prompt"] + " next"
                toks = [(m.start(), m.group()) for m in re.finditer(TOKEN, text)]
                lps = [None] + [-len(t) / 10 for _, t in toks[1:]]
                if outer.mode == "malformed" and "bad" in text:
                    lps = ["lots"] * len(toks)
                if outer.mode == "short":
                    lps = lps[:1]
                logprobs = {"tokens": [t for _, t in toks], "token_logprobs": lps,
                            "text_offset": [a for a, _ in toks], "top_logprobs": None}
                choice = {"index": 0, "text": "next" if outer.mode == "noecho" else text,
                          "logprobs": None if outer.mode == "nologprobs" else logprobs}
                self.reply(200, json.dumps({"choices": [choice]}).encode())

            def reply(self, status, payload):
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except OSError:  # the client gave up on the call (a whole-call error) and hung up
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def score_server():
    servers = []

    def make(mode="ok"):
        servers.append(ScoreServer(mode))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def http(server, **kw):
    return get_backend("openai", **({"model": "m", "base_url": server.url, "backoff": 0.0, "max_retries": 0} | kw))


def expected_http(prompt: str, cont: str) -> tuple[float, int]:
    import re

    start, end = len(prompt), len(prompt) + len(cont)
    toks = [(m.start(), m.end(), m.group()) for m in re.finditer(TOKEN, prompt + cont + " next")]
    picked = [-len(t) / 10 for a, b, t in toks if a < end and b > start]
    return sum(picked), len(picked)


def test_openai_scores_raw_prompts_from_echoed_logprobs(score_server):
    server = score_server()
    out = http(server).score([ScoreRequest(prompt="user watched heat\nanswer:", continuations=(" 1. Fargo", " 2. Toy Story")),
                              ScoreRequest(prompt="p", continuations=())])
    sums = [expected_http("user watched heat\nanswer:", c) for c in (" 1. Fargo", " 2. Toy Story")]
    assert out[0].logprobs == pytest.approx([s for s, _ in sums]) and out[0].tokens == [2, 3]
    assert "no continuations" in out[1].error
    assert len(server.bodies) == 2  # one POST per continuation, a plain string prompt
    assert all(b["echo"] is True and b["logprobs"] == 1 and b["max_tokens"] == 1 for b in server.bodies)
    assert [b["prompt"] for b in server.bodies] == ["user watched heat\nanswer: 1. Fargo",
                                                    "user watched heat\nanswer: 2. Toy Story"]


def test_openai_chat_scoring_renders_the_template_locally(score_server, tmp_path):
    pytest.importorskip("transformers")
    from tiny_llm import build_tokenizer

    server = score_server()
    with pytest.raises(RecllmError, match="needs the served model's chat template") as info:
        http(server).score([chat("heat", ["fargo"])])
    assert "tokenizer=" in info.value.hint
    build_tokenizer().save_pretrained(tmp_path / "tok")
    backend = http(server, tokenizer=str(tmp_path / "tok"))
    assert backend.identity()["tokenizer"] == str(tmp_path / "tok")
    result = backend.score([chat("heat", ["1 . fargo"])])[0]
    # The template writes BOS and encoding adds one: the BOS text is left to the server's encoding.
    rendered = "<|im_start|>user\nheat<|im_end|>\n<|im_start|>assistant\n"
    assert server.bodies[-1]["prompt"] == rendered + "1 . fargo"
    assert result.logprobs == pytest.approx([expected_http(rendered, "1 . fargo")[0]])


@pytest.mark.parametrize("mode, message", [
    ("nologprobs", "returned no log-probabilities with echo"),
    ("noecho", "did not echo the prompt"),
    ("refuse", "HTTP 400"),
])
def test_openai_server_without_echo_logprobs_is_one_clear_error(score_server, mode, message):
    server = score_server(mode)
    with pytest.raises(RecllmError, match=message) as info:
        http(server).score([ScoreRequest(prompt="a", continuations=(" b",)), ScoreRequest(prompt="c", continuations=(" d",))])
    assert server.url in str(info.value) and "echo + logprobs" in info.value.hint


@pytest.mark.parametrize("mode, message", [("malformed", "malformed reply for continuation 1: choices.0.logprobs"),
                                           ("short", "differ in length")])
def test_openai_malformed_logprobs_are_that_requests_error(score_server, mode, message):
    out = http(score_server(mode)).score([ScoreRequest(prompt="a", continuations=(" b", " bad")),
                                          ScoreRequest(prompt="c", continuations=(" d",))])
    assert message in out[0].error and out[0].logprobs == []
    assert (out[1].error is None) == (mode == "malformed")  # the other request keeps its scores


def test_openai_scores_go_through_the_cache(score_server, tmp_path):
    server = score_server()
    cached = CachedBackend(http(server), ResponseCache(tmp_path / "c.sqlite"))
    request = ScoreRequest(prompt="x y", continuations=(" z",))
    first, again = cached.score([request])[0], cached.score([request])[0]
    assert again.cached and again.logprobs == pytest.approx(first.logprobs) and len(server.bodies) == 1


def test_score_with_priors_one_call_and_ranking():
    from recllm.backends.scoring import ranking, score_with_priors

    backend = get_backend("scripted", scores={"u1": {"a": -1.0, "b": -2.0}, "u1#prior": {"a": -0.2, "b": -3.0}})
    calls = []
    real = backend.score
    backend.score = lambda requests: (calls.append(len(requests)), real(requests))[1]
    asked = ScoreRequest(prompt="history", continuations=("a", "b"), key="u1")
    prior = ScoreRequest(prompt="no history", continuations=("a", "b"), key="u1#prior")
    [(result, base)] = score_with_priors(backend, [asked], [prior])
    assert calls == [2]  # both prompts in one engine call
    pmi = normalized(result, "pmi", base)
    assert pmi == pytest.approx([-0.8, 1.0]) and ranking(pmi) == [1, 0]
    assert ranking(normalized(result, "sum")) == [0, 1] and ranking([0.0, 0.0, 1.0]) == [2, 0, 1]
    with pytest.raises(RecllmError, match="other continuations"):
        score_with_priors(backend, [asked], [prior.with_continuations(["a"])])


def test_score_cache_bad_rows_are_misses_and_old_files_gain_the_table(tmp_path):
    import sqlite3

    from recllm.cache import SCHEMA, score_key

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # a cache file written before scores were cached
        db.execute(SCHEMA)
    inner = get_backend("scripted", scores={"u1": {"a": -1.0}})
    cache = ResponseCache(path)
    cached = CachedBackend(inner, cache)
    request = chat("x", ["a"], key="u1")
    assert cached.score([request])[0].logprobs == [-1.0]
    key = score_key(inner.identity(), request, "a")
    cache._db.execute("UPDATE scores SET logprob = 'junk' WHERE key = ?", (key,))
    again = cached.score([request])[0]
    assert not again.cached and again.logprobs == [-1.0] and cache.bad_rows == 1  # asked again, overwritten
    assert cached.score([request])[0].cached
    # The request's key (the user) is not part of the score key; the prompt and continuation are.
    assert score_key({}, request, "a") == score_key({}, chat("x", ["a"], key="u2"), "a") != score_key({}, request, "b")


@pytest.mark.parametrize("method", ["packed", "batched"])
def test_both_kv_reuse_methods_equal_full_passes(tiny, method):
    from recllm.backends import hf_score
    from recllm.backends.scoring import render

    model, tok = tiny._load()
    conts = (*CONTS, "heat", "1 . toy")  # single-token continuations beside long ones
    request = chat("user watched heat and fargo", conts)
    text, raw = render(tok, request, "tiny")
    bound = split_tokens(tok, text, request.continuations, raw=raw)
    got = hf_score.continuation_logprobs(model, bound, tok.pad_token_id, "cpu", 3, method=method)
    assert got == pytest.approx(reference(tiny, request), abs=1e-4)


def test_packed_groups_and_the_sliding_window_rule(monkeypatch):
    from types import SimpleNamespace

    from recllm.backends import hf_score

    monkeypatch.setattr(hf_score, "PACKED_TOKENS", 5)
    groups = hf_score._chunks([[1, 2, 3], [1], [1, 2, 3, 4], [1, 2]], None)
    assert groups == [[1, 3], [0], [2]]  # by length, at most 5 tokens a group (a longer one alone)
    assert hf_score._chunks([[1, 2, 3], [1], [1, 2]], 2) == [[1, 2], [0]]
    window = hf_score._window
    assert not window(SimpleNamespace(), 10_000)  # no window at all (Llama)
    assert window(SimpleNamespace(sliding_window=512, layer_types=["sliding_attention", "full_attention"]), 600)
    assert not window(SimpleNamespace(sliding_window=512, layer_types=["sliding_attention"]), 400)  # fits in it
    assert not window(SimpleNamespace(sliding_window=32, use_sliding_window=False), 600)  # Qwen2: off
    assert window(SimpleNamespace(sliding_window=32), 600)  # Mistral-style


def test_auto_method_falls_back_to_rows_where_a_mask_is_not_honoured():
    from types import SimpleNamespace

    from recllm.backends.hf_score import choose_method

    assert choose_method(SimpleNamespace(_attn_implementation="sdpa"), 600) == "packed"
    assert choose_method(SimpleNamespace(_attn_implementation=None), 600) == "packed"  # transformers' default
    assert choose_method(SimpleNamespace(_attn_implementation="flash_attention_2"), 600) == "batched"
    assert choose_method(SimpleNamespace(_attn_implementation="eager", sliding_window=512), 600) == "batched"
