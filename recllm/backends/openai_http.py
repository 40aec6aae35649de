"""Any OpenAI-compatible server (`vllm serve`, `transformers serve`, hosted APIs) over plain httpx.

Chat messages go to /v1/chat/completions (the server applies the model's chat template), raw
prompts to /v1/completions. Requests run on a bounded thread pool; 429, 5xx, timeouts and
dropped connections are retried with capped exponential backoff and jitter. Whatever still
fails, or comes back as garbage, is recorded as that request's error and the run goes on.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field

from recllm.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    cut_at_stop,
    messages_of,
)
from recllm.errors import RecllmError
from recllm.options import StrictOptions

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


class OpenAIOptions(StrictOptions):
    model: str  # sent as-is: the name the server knows (for `transformers serve`, the folder path)
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str | None = None  # default: the environment variable below
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout: float = 120.0  # seconds per HTTP attempt
    max_retries: int = 4
    backoff: float = 1.0  # first retry waits about this long; doubles each time (with jitter)
    max_backoff: float = 30.0
    structured_format: Literal["vllm", "openai"] = "vllm"  # how `structured` is sent
    extra_body: dict[str, Any] = Field(default_factory=dict)  # merged into every request body
    revision: str | None = None  # your label for the served weights (part of cache keys)


class OpenAIBackend(Backend):
    name = "openai"
    Options = OpenAIOptions

    def __init__(self, options: OpenAIOptions):
        self.options = options
        self.base_url = options.base_url.rstrip("/")
        self.api_key = options.api_key or os.environ.get(options.api_key_env)
        host = urlparse(self.base_url).hostname or ""
        if not self.api_key and host not in LOCAL_HOSTS and not host.startswith("127."):
            raise RecllmError(f"no API key found for {self.base_url}",
                              hint=f"set {options.api_key_env} or pass api_key (local servers need none)")
        self._client = None

    def identity(self) -> dict[str, Any]:
        return {"engine": self.name, "model": self.options.model, "base_url": self.base_url,
                "revision": self.options.revision}

    def _http(self):
        if self._client is None:
            import httpx

            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            limits = httpx.Limits(max_connections=self.options.concurrency)
            timeout = httpx.Timeout(self.options.timeout, connect=min(10.0, self.options.timeout))
            self._client = httpx.Client(headers=headers, limits=limits, timeout=timeout)
        return self._client

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        workers = max(1, min(self.options.concurrency, len(requests)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self._one, requests))

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
        if self.options.structured_format == "vllm":  # vLLM >= 0.12 server field
            return {"structured_outputs": dict(structured)}
        if set(structured) != {"json"}:
            raise RecllmError(f"the openai format supports only a JSON schema, not {sorted(structured)}",
                              hint="use structured_format='vllm' against a vLLM server")
        schema = {"name": "answer", "schema": structured["json"], "strict": True}
        return {"response_format": {"type": "json_schema", "json_schema": schema}}

    def _one(self, request: GenerationRequest) -> GenerationResult:
        started = time.perf_counter()
        texts: list[str] = []
        usage = {"prompt_tokens": None, "completion_tokens": 0}
        finish = None
        try:
            while len(texts) < request.params.n:  # some servers ignore n>1: ask again for the rest
                path, body = self.body(request, n=request.params.n - len(texts))
                if texts and request.params.seed is not None:
                    body["seed"] = request.params.seed + len(texts)
                data = self._post(path, body)
                got, reason = _parse(data, chat=request.messages is not None)
                texts += [cut_at_stop(t, request.params.stop)[0] for t in got]
                finish = finish or reason
                u = data.get("usage") or {}
                usage["prompt_tokens"] = u.get("prompt_tokens", usage["prompt_tokens"])
                usage["completion_tokens"] += u.get("completion_tokens") or 0
        except RecllmError as exc:
            return GenerationResult([], seconds=time.perf_counter() - started, error=str(exc))
        return GenerationResult(texts[:request.params.n], prompt_tokens=usage["prompt_tokens"],
                                completion_tokens=usage["completion_tokens"] or None,
                                seconds=time.perf_counter() - started, finish_reason=finish)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST with bounded retries; returns the decoded JSON object or raises RecllmError."""
        import httpx

        url, opts = self.base_url + path, self.options
        attempts = opts.max_retries + 1
        for attempt in range(attempts):
            wait = None
            try:
                response = self._http().post(url, json=body)
            except httpx.ConnectError as exc:
                problem = f"cannot connect to {self.base_url} ({exc}); is the server running?"
            except httpx.TimeoutException:
                problem = f"no answer from {url} within {opts.timeout:g}s"
            except httpx.TransportError as exc:  # dropped connection, protocol error
                problem = f"connection to {url} failed: {type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    try:
                        data = response.json()
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        raise RecllmError(f"server sent invalid JSON: {response.text[:200]!r}") from None
                    if not isinstance(data, dict):
                        raise RecllmError(f"server sent JSON that is not an object: {response.text[:200]!r}")
                    return data
                problem = f"HTTP {response.status_code} from {url}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUS:
                    raise RecllmError(problem)  # a bad request stays bad: don't retry it
                wait = _retry_after(response.headers.get("retry-after"))
            if attempt + 1 < attempts:
                delay = min(opts.max_backoff, opts.backoff * 2 ** attempt) * (0.5 + random.random() / 2)
                time.sleep(min(opts.max_backoff, wait) if wait is not None else delay)
        raise RecllmError(f"{problem} (gave up after {attempts} attempts)")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


def _parse(data: dict[str, Any], *, chat: bool) -> tuple[list[str], str | None]:
    """Texts and the first finish_reason from a (chat) completion object; missing fields raise."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise RecllmError(f"response has no choices: {json.dumps(data)[:200]}")
    texts = []
    for choice in choices:
        text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
        if not isinstance(text, str):
            field = "message.content" if chat else "text"
            raise RecllmError(f"response choice lacks {field}: {json.dumps(choice)[:200]}")
        texts.append(text)
    return texts, choices[0].get("finish_reason")
