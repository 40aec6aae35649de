"""Any OpenAI-compatible server (`vllm serve`, `transformers serve`, hosted APIs) over httpx.

Chat messages go to /v1/chat/completions (the server applies the model's chat template), raw
prompts to /v1/completions. Requests run concurrently (asyncio, at most `concurrency` at a time);
each attempt has a TOTAL deadline of `timeout` seconds (httpx's own timeouts are per read, so a
server trickling bytes would never hit them). 429, 5xx, timeouts and dropped connections are
retried with capped exponential backoff and jitter. Whatever still fails, and every reply that
does not fit the OpenAI schema (checked by pydantic models), is that request's recorded error;
the other requests of the batch keep their answers. Credentials (api key, userinfo or a key in
base_url, secrets in extra_body) never appear in identity(), cache keys or error texts.
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
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str | None = None  # default: the environment variable below
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout: float = 120.0  # seconds per HTTP attempt, in total (connect + send + whole reply)
    max_retries: int = 4
    backoff: float = 1.0  # first retry waits about this long; doubles each time (with jitter)
    max_backoff: float = 30.0
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
        self.base_url = options.base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)  # what identity() and messages show
        self.api_key = options.api_key or os.environ.get(options.api_key_env)
        self._secrets = [self.api_key, *url_secrets(self.base_url), *secret_values(options.extra_body)]
        host = urlparse(self.base_url).hostname or ""
        if not self.api_key and host not in LOCAL_HOSTS and not host.startswith("127."):
            raise RecllmError(f"no API key found for {self.shown_url}",
                              hint=f"set {options.api_key_env} or pass api_key (local servers need none)")

    def identity(self) -> dict[str, Any]:
        # Settings that change answers; the newer ones only when not at their defaults, so
        # answers cached before they were keyed stay valid. No secrets: two keys, one answer.
        ident = {"engine": self.name, "model": self.options.model, "base_url": self.shown_url,
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

    async def _post(self, client, path: str, body: dict[str, Any]) -> Any:
        """POST with bounded retries, each attempt within `timeout` seconds in total; returns
        the decoded JSON or raises RecllmError."""
        import httpx

        url, opts = _join(self.base_url, path), self.options
        shown = _join(self.shown_url, path)
        attempts = opts.max_retries + 1
        for attempt in range(attempts):
            wait = None
            try:
                response = await asyncio.wait_for(client.post(url, json=body), opts.timeout)
            except (TimeoutError, httpx.TimeoutException):
                problem = f"no answer from {shown} within {opts.timeout:g}s"
            except httpx.ConnectError as exc:
                problem = f"cannot connect to {self.shown_url} ({exc}); is the server running?"
            except httpx.TransportError as exc:  # dropped connection, protocol error
                problem = f"connection to {shown} failed: {type(exc).__name__}: {exc}"
            except httpx.DecodingError as exc:  # e.g. a body that claims gzip but is not
                raise RecllmError(f"server sent a body that cannot be decoded: {exc}") from None
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        raise RecllmError(f"server sent invalid JSON: {response.text[:200]!r}") from None
                problem = f"HTTP {response.status_code} from {shown}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUS:
                    raise RecllmError(problem)  # a bad request stays bad: don't retry it
                wait = _retry_after(response.headers.get("retry-after"))
            if attempt + 1 < attempts:
                delay = min(opts.max_backoff, opts.backoff * 2 ** attempt) * (0.5 + random.random() / 2)
                await asyncio.sleep(min(opts.max_backoff, wait) if wait is not None else delay)
        raise RecllmError(f"{problem} (gave up after {attempts} attempts)")


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
