"""Any OpenAI-compatible server (`vllm serve`, `transformers serve`, hosted APIs) over httpx.

Chat messages go to /v1/chat/completions (the server applies the model's chat template), raw
prompts to /v1/completions. Requests run concurrently (asyncio, at most `concurrency` at a time);
each attempt has a TOTAL deadline of `timeout` seconds (httpx's own timeouts are per read, so a
server trickling bytes would never hit them). 429, 5xx, timeouts and dropped connections are
retried with capped exponential backoff and jitter. Whatever still fails, and every reply that
does not fit the OpenAI schema (checked by pydantic models), is that request's recorded error;
the other requests of the batch keep their answers. Credentials (api key, userinfo or a key in
base_url, secrets in extra_body) never appear in identity(), cache keys or error texts.

Several base_urls are data-parallel replicas of one model (N `vllm serve`s, or one with
--data-parallel-size behind a balancer): each attempt goes to the replica with the fewest
requests in flight; one that fails (connect error, timeout, 429/5xx) is taken out for a back-off
(doubling while it keeps failing) and the attempt moves to another at once; `replica_counts()`
goes into events.jsonl.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal
from urllib.parse import urlparse, urlsplit, urlunsplit

from pydantic import BaseModel, Field, ValidationError

from recllm.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    ScoreRequest,
    ScoreResult,
    cut_at_stop,
    messages_of,
)
from recllm.errors import RecllmError
from recllm.options import StrictOptions
from recllm.redact import redact, redact_text, redact_url, secret_values, url_secrets

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


class OpenAIOptions(StrictOptions):
    model: str  # sent as-is: the name the server knows (for `transformers serve`, the folder path)
    base_url: str | list[str] = "http://127.0.0.1:8000/v1"  # a list: replicas of one model
    api_key: str | None = None  # default: the environment variable below
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout: float = 120.0  # seconds per HTTP attempt, in total (connect + send + whole reply)
    max_retries: int = 4
    backoff: float = 1.0  # first retry waits about this long; doubles each time (with jitter)
    max_backoff: float = 30.0
    replica_backoff: float = Field(5.0, ge=0)  # a failed replica sits out this long (doubling)
    replica_max_backoff: float = Field(60.0, ge=0)
    structured_format: Literal["vllm", "openai"] = "vllm"  # how `structured` is sent
    extra_body: dict[str, Any] = Field(default_factory=dict)  # merged into every request body
    revision: str | None = None  # your label for the served weights (part of cache keys)
    # score(): whose chat template renders chat requests (/v1/completions takes raw text); an
    # alias, folder or hub id of the served model. Default: `model` when it is a local folder.
    tokenizer: str | None = None


# -- the reply schema: extra fields are allowed (servers add many), the ones we read are checked
class _Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Message(BaseModel):
    content: str


class _ChatChoice(BaseModel):
    message: _Message
    finish_reason: str | None = None


class _TextChoice(BaseModel):
    text: str
    finish_reason: str | None = None


class ChatReply(BaseModel):
    choices: list[_ChatChoice] = Field(min_length=1)
    usage: _Usage | None = None


class TextReply(BaseModel):
    choices: list[_TextChoice] = Field(min_length=1)
    usage: _Usage | None = None


class OpenAIBackend(Backend):
    name = "openai"
    Options = OpenAIOptions

    def __init__(self, options: OpenAIOptions):
        self.options = options
        urls = [options.base_url] if isinstance(options.base_url, str) else list(options.base_url)
        if not urls:
            raise RecllmError("base_url is an empty list", where="backend 'openai' options",
                              hint="pass one URL, or a list of replicas' URLs")
        self.base_urls = [u.rstrip("/") for u in urls]
        self.base_url = self.base_urls[0]
        self.shown_urls = [redact_url(u) for u in self.base_urls]
        self.shown_url = ", ".join(self.shown_urls)  # what identity() and messages show
        self.replicas = Replicas(len(urls), options.replica_backoff, options.replica_max_backoff)
        self.api_key = options.api_key or os.environ.get(options.api_key_env)
        self._secrets = [self.api_key, *(s for u in self.base_urls for s in url_secrets(u)),
                         *secret_values(options.extra_body)]
        for url, shown in zip(self.base_urls, self.shown_urls):
            host = urlparse(url).hostname or ""
            if not self.api_key and host not in LOCAL_HOSTS and not host.startswith("127."):
                raise RecllmError(f"no API key found for {shown}",
                                  hint=f"set {options.api_key_env} or pass api_key (local servers need none)")

    def identity(self) -> dict[str, Any]:
        # Settings that change answers; the newer ones only when not at their defaults, so
        # answers cached before they were keyed stay valid. No secrets: two keys, one answer.
        ident = {"engine": self.name, "model": self.options.model,
                 "base_url": self.shown_urls[0] if len(self.shown_urls) == 1 else self.shown_urls,
                 "revision": self.options.revision}
        if self.options.extra_body:
            ident["extra_body"] = redact(self.options.extra_body)
        if self.options.structured_format != "vllm":
            ident["structured_format"] = self.options.structured_format
        if self.options.tokenizer:  # it renders the prompts that are scored
            ident["tokenizer"] = self.options.tokenizer
        return ident

    # Scoring works where the server has /v1/completions with echo + logprobs (vLLM's does);
    # one that lacks them is a clear error for the whole call (see recllm.backends.openai_score).
    can_score = True

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        from recllm.backends.openai_score import score_one

        if not requests:
            return []
        return _run(self._gather(list(requests), score_one))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        return _run(self._gather(list(requests)))

    async def _gather(self, requests: list, one_request=None) -> list:
        """Each request through `one_request(self, client, request)` (default: generation), at
        most `concurrency` at a time, on one HTTP client."""
        import httpx

        opts = self.options
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=opts.concurrency)
        timeout = httpx.Timeout(opts.timeout, connect=min(10.0, opts.timeout))
        gate = asyncio.Semaphore(max(1, opts.concurrency))
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=timeout) as client:
            async def one(request):
                async with gate:
                    if one_request is not None:
                        return await one_request(self, client, request)
                    return await self._one(client, request)
            return list(await asyncio.gather(*(one(r) for r in requests)))

    # -- one request -------------------------------------------------------------------------
    def body(self, request: GenerationRequest, n: int | None = None) -> tuple[str, dict[str, Any]]:
        """(endpoint path, JSON body) for a request: the translation, kept apart for tests."""
        p = request.params
        body: dict[str, Any] = {"model": self.options.model, "max_tokens": p.max_tokens,
                                "temperature": p.temperature, "top_p": p.top_p, "n": n or p.n}
        if p.stop:
            body["stop"] = list(p.stop)
        if p.seed is not None:
            body["seed"] = p.seed
        if p.frequency_penalty:
            body["frequency_penalty"] = p.frequency_penalty
        if p.presence_penalty:
            body["presence_penalty"] = p.presence_penalty
        if p.repetition_penalty != 1.0:  # a vLLM extra field; hosted OpenAI rejects it (HTTP 400)
            body["repetition_penalty"] = p.repetition_penalty
        if request.messages is not None:
            path, body["messages"] = "/chat/completions", messages_of(request)
        else:
            path, body["prompt"] = "/completions", request.prompt
        if request.structured:
            body.update(self._structured(request.structured))
        return path, body | self.options.extra_body

    def _structured(self, structured: dict[str, Any]) -> dict[str, Any]:
        from recllm.backends import constrain

        if constrain.is_titles_spec(structured):  # a title list -> its GBNF grammar (vLLM reads it)
            structured = constrain.vllm_structured_for_titles(constrain.parse_spec(structured))
        if self.options.structured_format == "vllm":  # vLLM >= 0.12 server field
            return {"structured_outputs": dict(structured)}
        if set(structured) != {"json"}:
            raise RecllmError(f"the openai format supports only a JSON schema, not {sorted(structured)}",
                              hint="use structured_format='vllm' against a vLLM server")
        schema = {"name": "answer", "schema": structured["json"], "strict": True}
        return {"response_format": {"type": "json_schema", "json_schema": schema}}

    async def _one(self, client, request: GenerationRequest) -> GenerationResult:
        started = time.perf_counter()
        texts: list[str] = []
        prompt_tokens, completion_tokens, finish = None, 0, None
        chat = request.messages is not None
        try:
            while len(texts) < request.params.n:  # some servers ignore n>1: ask again for the rest
                path, body = self.body(request, n=request.params.n - len(texts))
                if texts and request.params.seed is not None:
                    body["seed"] = request.params.seed + len(texts)
                reply = _validate(await self._post(client, path, body), chat=chat)
                for choice in reply.choices:
                    text = choice.message.content if chat else choice.text
                    texts.append(cut_at_stop(text, request.params.stop)[0])
                finish = finish or reply.choices[0].finish_reason
                usage = reply.usage or _Usage()
                if usage.prompt_tokens is not None:
                    prompt_tokens = usage.prompt_tokens
                completion_tokens += usage.completion_tokens or 0
        except Exception as exc:  # noqa: BLE001 -- whatever happens, it is this request's error only
            problem = exc.message if isinstance(exc, RecllmError) else f"{type(exc).__name__}: {exc}"
            return GenerationResult([], seconds=time.perf_counter() - started,
                                    error=redact_text(problem, self._secrets))
        return GenerationResult(texts[:request.params.n], prompt_tokens=prompt_tokens,
                                completion_tokens=completion_tokens or None,
                                seconds=time.perf_counter() - started, finish_reason=finish)

    def replica_counts(self) -> list[dict[str, Any]] | None:
        """Per replica (several base_urls only): requests sent, failures, times taken out."""
        if len(self.base_urls) == 1:
            return None
        return [{"base_url": shown, **counts}
                for shown, counts in zip(self.shown_urls, self.replicas.counts)]

    async def _post(self, client, path: str, body: dict[str, Any]) -> Any:
        """POST with bounded retries, each attempt within `timeout` seconds in total, to the
        least busy replica that is not sitting out; returns the decoded JSON or raises RecllmError."""
        import httpx

        opts, pool = self.options, self.replicas
        attempts = opts.max_retries + len(self.base_urls)  # every replica gets its own try
        for attempt in range(attempts):
            wait, at = None, pool.pick()
            url, base = _join(self.base_urls[at], path), self.shown_urls[at]
            shown = _join(base, path)
            pool.start(at)
            try:
                response = await asyncio.wait_for(client.post(url, json=body), opts.timeout)
            except (TimeoutError, httpx.TimeoutException):
                problem = f"no answer from {shown} within {opts.timeout:g}s"
            except httpx.ConnectError as exc:
                problem = f"cannot connect to {base} ({exc}); is the server running?"
            except httpx.TransportError as exc:  # dropped connection, protocol error
                problem = f"connection to {shown} failed: {type(exc).__name__}: {exc}"
            except httpx.DecodingError as exc:  # e.g. a body that claims gzip but is not
                pool.done(at, ok=True)  # the replica answered; the answer is bad
                raise RecllmError(f"server sent a body that cannot be decoded: {exc}") from None
            except BaseException:  # cancelled: not the replica's fault
                pool.done(at, ok=True)
                raise
            else:
                if response.status_code < 400:
                    pool.done(at, ok=True)
                    try:
                        return response.json()
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        raise RecllmError(f"server sent invalid JSON: {response.text[:200]!r}") from None
                problem = f"HTTP {response.status_code} from {shown}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUS:
                    pool.done(at, ok=True)
                    raise RecllmError(problem)  # a bad request stays bad: don't retry it
                wait = _retry_after(response.headers.get("retry-after"))
            pool.done(at, ok=False)
            if attempt + 1 < attempts and pool.any_up():
                continue  # another replica is in service: go there now, no waiting
            if attempt + 1 < attempts:
                delay = min(opts.max_backoff, opts.backoff * 2 ** attempt) * (0.5 + random.random() / 2)
                await asyncio.sleep(min(opts.max_backoff, wait) if wait is not None else delay)
        raise RecllmError(f"{problem} (gave up after {attempts} attempts)")


class Replicas:
    """Which replica gets the next attempt: the fewest in flight among those in service (ties:
    the one sent fewest so far); a failure takes one out for `backoff` seconds, doubling up to
    `max_backoff` while it keeps failing; a success puts it back. All on one event loop."""

    def __init__(self, n: int, backoff: float, max_backoff: float):
        self.backoff, self.max_backoff = backoff, max_backoff
        self.inflight, self.until, self.streak = [0] * n, [0.0] * n, [0] * n
        self.counts = [{"requests": 0, "failed": 0, "taken_out": 0} for _ in range(n)]

    def pick(self) -> int:
        now = time.monotonic()
        up = [i for i in range(len(self.until)) if self.until[i] <= now]
        if not up:  # all sitting out: the one back soonest
            return min(range(len(self.until)), key=lambda i: self.until[i])
        return min(up, key=lambda i: (self.inflight[i], self.counts[i]["requests"]))

    def any_up(self) -> bool:
        now = time.monotonic()
        return len(self.until) > 1 and any(t <= now for t in self.until)

    def start(self, i: int) -> None:
        self.inflight[i] += 1
        self.counts[i]["requests"] += 1

    def done(self, i: int, *, ok: bool) -> None:
        self.inflight[i] -= 1
        if ok:
            self.streak[i], self.until[i] = 0, 0.0
            return
        self.counts[i]["failed"] += 1
        if len(self.until) > 1:  # a lone server is retried with the usual backoff instead
            self.streak[i] += 1
            self.counts[i]["taken_out"] += 1
            self.until[i] = time.monotonic() + min(self.max_backoff,
                                                   self.backoff * 2 ** (self.streak[i] - 1))


def replica_counts(backend: Any) -> list[dict[str, Any]] | None:
    """The replica counts of an openai backend, also inside the response cache; else None."""
    for engine in (backend, getattr(backend, "inner", None)):
        counts = getattr(engine, "replica_counts", None)
        if callable(counts):
            return counts()
    return None


def _run(job: Coroutine) -> Any:
    """Run a coroutine to the end from sync code, also when this thread already has a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(job)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, job).result()


def _join(base: str, path: str) -> str:
    """base_url + endpoint path, keeping a query (?api-version=...&api-key=...) at the end."""
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path))


def _validate(data: Any, *, chat: bool) -> ChatReply | TextReply:
    """The reply as a checked pydantic model; a shape that does not fit is a RecllmError
    naming the first bad field."""
    try:
        return (ChatReply if chat else TextReply).model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "reply"
        raise RecllmError(f"malformed reply: {where}: {first['msg']} "
                          f"(reply {json.dumps(data, default=str)[:200]})") from None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None
