"""The openai backend against a fake OpenAI-compatible server on 127.0.0.1 that misbehaves on
cue: 500 then success, 429 with Retry-After, timeouts, garbage JSON, dropped connections."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from recllm.backends import GenerationRequest, SamplingParams, get_backend
from recllm.errors import RecllmError


# Valid JSON, wrong shape (or a body that cannot be decoded): each must be that request's error.
MALFORMED = {
    "nullchoice": (b'{"choices": [null]}', None),
    "strchoice": (b'{"choices": ["x"]}', None),
    "strmessage": (b'{"choices": [{"message": "hello"}]}', None),
    "strusage": (b'{"choices": [{"message": {"content": "ok"}}], "usage": "lots"}', None),
    "listreply": (b'[1, 2]', None),
    "badgzip": (b'{"choices": [{"message": {"content": "ok"}}]}', {"content-encoding": "gzip"}),
}


class FakeServer:
    """Serves queued actions in order; once the queue is empty every call succeeds."""

    def __init__(self):
        self.actions: list[str] = []
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with outer.lock:
                    outer.bodies.append(body)
                    outer.paths.append(self.path)
                    action = outer.actions.pop(0) if outer.actions else "ok"
                if action == "drop":
                    self.close_connection = True
                    return
                if action == "slow":
                    time.sleep(1.5)
                if action.isdigit():
                    return self.reply(int(action), b'{"error": "busy"}', {"Retry-After": "0"})
                if action == "echo":  # a server that quotes the credentials it got back at you
                    text = f"bad key {self.headers.get('authorization')} for {self.path}"
                    return self.reply(401, text.encode())
                if action == "garbage":
                    return self.reply(200, b"<html>502 proxy error</html>")
                if action == "nochoices":
                    return self.reply(200, b'{"id": "x", "choices": []}')
                if action == "nocontent":
                    return self.reply(200, json.dumps({"choices": [{"message": {"role": "assistant"}}]}).encode())
                if action in MALFORMED:
                    payload, headers = MALFORMED[action]
                    return self.reply(200, payload, headers)
                if action.startswith("trickle"):
                    return self.trickle(head=action == "trickle-head")
                n = body.get("n", 1) if action != "one" else 1
                prompt = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
                text = "" if action == "empty" else f"echo {prompt} STOP tail"
                choice = ({"message": {"role": "assistant", "content": text}} if "messages" in body
                          else {"text": text})
                out = {"choices": [choice | {"index": i, "finish_reason": "stop"} for i in range(n)],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 4}}
                self.reply(200, json.dumps(out).encode())

            def trickle(self, head):
                """One byte every 0.2 s (of the whole reply, or of its body), 3 s in all."""
                payload = json.dumps({"choices": [{"message": {"content": "late"}}]}).encode()
                text = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                        + str(len(payload)).encode() + b"\r\n\r\n")
                if not head:
                    self.wfile.write(text)
                    self.wfile.flush()
                try:
                    for byte in ((text if head else b"") + payload)[:15]:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:  # the client gave up and closed the connection
                    pass
                self.close_connection = True

            def reply(self, status, payload, headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


def backend(server, **kw):
    opts = {"model": "m", "base_url": server.url, "backoff": 0.0, "max_retries": 2, "timeout": 5.0} | kw
    return get_backend("openai", **opts)


def chat(text, **params):
    return GenerationRequest(messages=({"role": "user", "content": text},), params=SamplingParams(**params))


def test_chat_and_completions_bodies_and_stop(server):
    b = backend(server)
    out = b.generate([chat("hi", stop=(" STOP",), seed=3, max_tokens=7),
                      GenerationRequest(prompt="go", params=SamplingParams(stop=(" STOP",)))])
    assert [r.text for r in out] == ["echo hi", "echo go"]
    assert out[0].prompt_tokens == 5 and out[0].completion_tokens == 4 and out[0].finish_reason == "stop"
    chat_body = next(x for x in server.bodies if "messages" in x)
    assert chat_body["max_tokens"] == 7 and chat_body["seed"] == 3 and chat_body["stop"] == [" STOP"]
    assert any("prompt" in x for x in server.bodies)


def test_penalties_in_the_body_only_when_set(server):
    b = backend(server)
    out = b.generate([chat("plain"), chat("pen", repetition_penalty=1.2, frequency_penalty=0.5, presence_penalty=0.25)])
    assert all(r.error is None for r in out)
    plain = next(x for x in server.bodies if x["messages"][-1]["content"] == "plain")
    pen = next(x for x in server.bodies if x["messages"][-1]["content"] == "pen")
    assert not {"repetition_penalty", "frequency_penalty", "presence_penalty"} & set(plain)
    assert (pen["repetition_penalty"], pen["frequency_penalty"], pen["presence_penalty"]) == (1.2, 0.5, 0.25)
    _, body = b.body(chat("x", presence_penalty=0.5))
    assert "repetition_penalty" not in body and body["presence_penalty"] == 0.5  # hosted OpenAI accepts this


def test_500_then_success_is_retried(server):
    server.actions = ["500", "503"]
    out = backend(server).generate([chat("hi")])
    assert out[0].error is None and out[0].text.startswith("echo hi") and len(server.bodies) == 3


def test_429_respects_retry_after_and_gives_up_bounded(server):
    server.actions = ["429"] * 10
    out = backend(server, max_retries=2).generate([chat("hi")])
    assert "HTTP 429" in out[0].error and "after 3 attempts" in out[0].error and len(server.bodies) == 3


def test_400_is_not_retried(server):
    server.actions = ["400"]
    out = backend(server).generate([chat("hi")])
    assert "HTTP 400" in out[0].error and len(server.bodies) == 1


def test_timeout_is_a_recorded_failure(server):
    server.actions = ["slow", "slow"]  # both attempts of the first request time out
    out = backend(server, timeout=0.3, max_retries=1, concurrency=1).generate([chat("hi"), chat("there")])
    assert "no answer" in out[0].error and "within 0.3s" in out[0].error and "after 2 attempts" in out[0].error
    assert out[1].text.startswith("echo there")


def test_one_timeout_then_success(server):
    server.actions = ["slow"]
    out = backend(server, timeout=0.3, max_retries=1).generate([chat("hi")])
    assert out[0].error is None and len(server.bodies) == 2


def test_dropped_connection_is_retried(server):
    server.actions = ["drop"]
    out = backend(server).generate([chat("hi")])
    assert out[0].error is None and out[0].text.startswith("echo hi")


@pytest.mark.parametrize("action, message", [
    ("garbage", "invalid JSON"), ("nochoices", "choices: List should have at least 1 item"),
    ("nocontent", "choices.0.message.content: Field required"),
    ("nullchoice", "choices.0: Input should be a valid dictionary"),
    ("strchoice", "choices.0: Input should be a valid dictionary"),
    ("strmessage", "choices.0.message: Input should be a valid dictionary"),
    ("strusage", "usage: Input should be a valid dictionary"),
    ("listreply", "reply: Input should be a valid dictionary"),
    ("badgzip", "cannot be decoded")])
def test_garbage_answers_are_recorded_and_others_go_on(server, action, message):
    server.actions = [action]
    out = backend(server, concurrency=1).generate([chat("first"), chat("second")])
    assert message in out[0].error and out[0].texts == [] and "\n" not in out[0].error
    assert out[1].text.startswith("echo second")
    assert len(server.bodies) == 2  # a malformed reply is not asked again within the run


@pytest.mark.parametrize("head, timeout", [(False, 1.0), (True, 0.5)])
def test_a_trickling_server_is_cut_at_the_attempt_deadline(server, head, timeout):
    """httpx's timeouts are per read: one byte every 0.2 s never trips them. The attempt's
    total deadline does, whether the headers or the body trickle."""
    server.actions = ["trickle-head" if head else "trickle-body"]
    started = time.perf_counter()
    out = backend(server, timeout=timeout, max_retries=0).generate([chat("hi")])
    assert time.perf_counter() - started < timeout + 0.5
    assert f"within {timeout:g}s" in out[0].error


def test_refused_connection(server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    b = get_backend("openai", model="m", base_url=f"http://127.0.0.1:{port}/v1", backoff=0.0, max_retries=1)
    out = b.generate([chat("hi")])
    assert "cannot connect" in out[0].error and "is the server running" in out[0].error


def test_n_is_filled_when_the_server_ignores_it(server):
    server.actions = ["one"]
    out = backend(server).generate([chat("hi", n=3, temperature=0.8, seed=1)])
    assert len(out[0].texts) == 3 and len(server.bodies) == 2 and server.bodies[1]["n"] == 2


def test_structured_outputs_translation(server):
    b = backend(server)
    _, body = b.body(GenerationRequest(prompt="x", structured={"choice": ["a", "b"]}))
    assert body["structured_outputs"] == {"choice": ["a", "b"]}
    _, body = b.body(GenerationRequest(prompt="x", structured={"titles": ["Heat (1995)"], "max_items": 1}))
    assert list(body["structured_outputs"]) == ["grammar"] and "Heat (1995)" in body["structured_outputs"]["grammar"]
    o = backend(server, structured_format="openai")
    _, body = o.body(GenerationRequest(prompt="x", structured={"json": {"type": "object"}}))
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    out = o.generate([GenerationRequest(prompt="x", structured={"regex": "a+"})])
    assert "only a JSON schema" in out[0].error


def test_hosted_api_needs_a_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(RecllmError, match="set OPENAI_API_KEY"):
        get_backend("openai", model="gpt-4o-mini", base_url="https://api.openai.com/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert get_backend("openai", model="gpt-4o-mini", base_url="https://api.openai.com/v1").api_key == "sk-test"


def test_empty_answer_is_an_empty_text_not_a_crash(server):
    """An empty answer is the model's (a parse failure downstream), not a transport error."""
    server.actions = ["empty"]
    out = backend(server).generate([chat("hi")])
    assert out[0].error is None and out[0].texts == [""] and out[0].finish_reason == "stop"


SECRETS = ("pw-secret-1", "qk-secret-2", "sk-secret-3", "tk-secret-4",
           "Ym9iOnB3LXNlY3JldC0x")  # the last: bob:pw-secret-1 as httpx's Basic auth header


def secret_backend(server, **kw):
    host = server.url.split("//")[1]
    return backend(server, base_url=f"http://bob:pw-secret-1@{host}?api-version=2&api-key=qk-secret-2",
                   api_key="sk-secret-3", extra_body={"metadata": {"token": "tk-secret-4"}, "top_k": 5}, **kw)


def test_credentials_stay_out_of_identity_cache_and_errors(server, tmp_path):
    from recllm.cache import CachedBackend

    b = secret_backend(server)
    ident = json.dumps(b.identity())
    assert not any(s in ident for s in SECRETS)
    assert "127.0.0.1" in ident and "/v1" in ident and '"top_k": 5' in ident  # host, path, settings kept
    cached = CachedBackend(b, tmp_path / "c.sqlite")
    assert cached.generate([chat("hi")])[0].error is None
    assert server.paths[-1] == "/v1/chat/completions?api-version=2&api-key=qk-secret-2"  # query kept
    assert server.bodies[-1]["metadata"] == {"token": "tk-secret-4"}  # sent, only never shown
    cached.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert not any(s.encode() in stored for s in SECRETS)
    server.actions = ["echo"]
    error = secret_backend(server).generate([chat("again")])[0].error
    assert "HTTP 401" in error and not any(s in error for s in SECRETS), error
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = get_backend("openai", model="m", base_url=f"http://u:pw-secret-1@127.0.0.1:{port}/v1",
                          max_retries=0).generate([chat("x")])[0].error
    assert "cannot connect" in refused and "pw-secret-1" not in refused


def test_no_key_error_does_not_print_the_url_credentials(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(RecllmError) as info:
        get_backend("openai", model="m", base_url="https://api.example.com/v1?key=qk-secret-2")
    assert "qk-secret-2" not in str(info.value) and "api.example.com" in str(info.value)


def test_identity_keys_every_setting_that_changes_answers(server):
    plain = backend(server).identity()
    assert plain == {"engine": "openai", "model": "m", "base_url": server.url, "revision": None}  # as before
    variants = [backend(server, extra_body={"top_k": 5}).identity(),
                backend(server, extra_body={"top_k": 6}).identity(),
                backend(server, structured_format="openai").identity(),
                backend(server, revision="ft-2").identity(),
                backend(server, model="m2").identity()]
    assert len({json.dumps(v, sort_keys=True) for v in [plain, *variants]}) == 6
    # Two keys that give the same answers may share the cache.
    assert backend(server, api_key="k-one").identity() == backend(server, api_key="k-two").identity()
