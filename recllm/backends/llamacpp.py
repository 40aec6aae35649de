"""In-process llama.cpp (the `xllamacpp` wheel): GGUF files as they are, fast on a CPU.

One llama.cpp server lives inside this process (no HTTP for generation: `handle_chat_completions`
takes and returns dicts). A batch is submitted all at once from a thread pool onto `batch_size`
parallel slots, which llama.cpp decodes together (continuous batching); the answers go back in
the caller's order. The chat template is the GGUF's own (Jinja), applied by llama.cpp.

Token counts (`count_tokens`, for `max_prompt_tokens`) use the engine's own template and
tokenizer through its /apply-template and /tokenize routes on loopback, guarded by a random key.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import Field

from recllm.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
    cut_at_stop,
    messages_of,
)
from recllm.backends.cpu import idle_cores
from recllm.errors import RecllmError
from recllm.models import DEFAULT_MODEL, file_sha256, resolve_gguf
from recllm.options import StrictOptions


class LlamaCppOptions(StrictOptions):
    model: str = DEFAULT_MODEL  # alias with a GGUF source, a .gguf file, or a folder holding one
    n_ctx: int = Field(4096, ge=64)  # context per request (each slot gets this much)
    batch_size: int = Field(4, ge=1)  # parallel slots: requests decoded together
    threads: int | None = Field(None, ge=1)  # CPU threads; None: the idle cores (see idle_cores)
    max_new_tokens: int | None = Field(None, ge=1)  # hard cap over every request's max_tokens


class LlamaCppBackend(Backend):
    name = "llamacpp"
    Options = LlamaCppOptions

    def __init__(self, options: LlamaCppOptions | None = None):
        try:
            import xllamacpp
        except ImportError:
            raise RecllmError("the llamacpp backend needs the xllamacpp package",
                              hint="pip install 'recllm[cpu]'") from None
        self.version = xllamacpp.__version__
        self.options = opts = options or LlamaCppOptions()
        self.gguf = resolve_gguf(opts.model, fetch=True)
        self._server = self._http = None
        self._key = secrets.token_urlsafe(16)
        self._sha: str | None = None

    # -- engine ------------------------------------------------------------------------------
    def _load(self):
        if self._server is not None:
            return self._server
        import xllamacpp

        opts = self.options
        params = xllamacpp.CommonParams()
        params.model.path = str(self.gguf)
        params.n_parallel = opts.batch_size
        params.n_ctx = opts.n_ctx * opts.batch_size  # split evenly: every slot gets n_ctx
        params.fit_params = False  # keep the context asked for (fitting shrinks it to the device)
        self.threads = threads = opts.threads or idle_cores()
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
        params.use_jinja = True  # the GGUF's own chat template
        params.warmup = False
        params.cache_ram_mib = 0  # no extra host prompt cache (up to 8 GiB by default); slots still reuse
        params.verbosity = -1
        params.api_keys = [self._key]  # its loopback HTTP routes: for us only
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # noqa: BLE001 -- a damaged or unsupported GGUF
            raise RecllmError(f"llama.cpp cannot load {self.gguf}: {exc}".splitlines()[0],
                              hint="check the file (`recllm models fetch ALIAS --engine llamacpp --force`)")
        return self._server

    def identity(self) -> dict[str, Any]:
        # The weights by content; the engine version; options that change the answers. Threads
        # and batch_size do not (they change speed).
        if self._sha is None:
            self._sha = file_sha256(self.gguf)
        ident = {"engine": self.name, "model": self.options.model, "gguf_sha256": self._sha,
                 "engine_version": self.version, "n_ctx": self.options.n_ctx}
        if self.options.max_new_tokens:
            ident["max_new_tokens"] = self.options.max_new_tokens
        return ident

    # -- tokens ------------------------------------------------------------------------------
    def _route(self, path: str, body: dict) -> dict:
        import httpx

        server = self._load()
        if self._http is None:
            self._http = httpx.Client(base_url=server.listening_address, timeout=60,
                                      headers={"Authorization": f"Bearer {self._key}"})
        reply = self._http.post(path, json=body)
        reply.raise_for_status()
        return reply.json()

    def render(self, request: GenerationRequest) -> str:
        """The exact text the model sees: the GGUF's chat template applied by llama.cpp."""
        if request.prompt is not None:
            return request.prompt
        return self._route("/apply-template", {"messages": messages_of(request)})["prompt"]

    def count_tokens(self, request: GenerationRequest) -> int | None:
        body = {"content": self.render(request), "add_special": request.prompt is not None, "parse_special": True}
        return len(self._route("/tokenize", body)["tokens"])

    # -- generation --------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        for request in requests:
            check_params(request.params)
        server = self._load()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=self.options.batch_size) as pool:
            results = list(pool.map(lambda r: self._one(server, r), requests))
        share = (time.perf_counter() - started) / max(1, len(requests))  # batch time, shared evenly
        for result in results:
            result.seconds = share
        return results

    def _one(self, server, request: GenerationRequest) -> GenerationResult:
        params = request.params
        try:
            body = self.body(request)
            if request.messages is not None:
                reply = server.handle_chat_completions(body)
            else:
                reply = server.handle_completions(body)
        except RecllmError as exc:
            return GenerationResult([], error=exc.message)
        except Exception as exc:  # noqa: BLE001 -- one bad request must not sink its batch
            return GenerationResult([], error=f"{type(exc).__name__}: {exc}")
        error = reply_error(reply, self.options.n_ctx)
        if error:
            return GenerationResult([], error=error)
        texts, reasons = [], []
        for choice in reply["choices"]:
            raw = (choice.get("message") or {}).get("content") if "message" in choice else choice.get("text")
            text, stopped = cut_at_stop(raw or "", params.stop)
            texts.append(text)
            reasons.append("stop" if stopped else choice.get("finish_reason"))
        if params.n > 1 and len(texts) == 1:  # greedy copies are identical; asked once
            texts, reasons = texts * params.n, reasons * params.n
        usage = reply.get("usage") or {}
        return GenerationResult(texts, prompt_tokens=usage.get("prompt_tokens"),
                                completion_tokens=usage.get("completion_tokens"),
                                finish_reason=reasons[0] if reasons else None)

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        """The llama.cpp request for `request`: HF/vLLM sampling semantics made explicit
        (llama.cpp's own defaults add top_k=40 and min_p=0.05, and count penalties over the
        last 64 tokens only)."""
        params = request.params
        max_new = params.max_tokens
        if self.options.max_new_tokens:
            max_new = min(max_new, self.options.max_new_tokens)
        body: dict[str, Any] = {
            "max_tokens": max_new, "temperature": max(0.0, params.temperature), "top_p": params.top_p,
            "top_k": 0, "min_p": 0.0, "repeat_penalty": params.repetition_penalty,
            "repeat_last_n": self.options.n_ctx,  # the whole context: prompt and answer, as HF/vLLM count
            "cache_prompt": True,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.n > 1 and not params.greedy:
            body["n"] = params.n
        if request.structured:
            body.update(structured_body(request.structured))
        if request.messages is not None:
            body["messages"] = messages_of(request)
        else:
            body["prompt"] = request.prompt
        return body

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        self._server = self._http = None  # the server's destructor stops its loop


def check_params(params: SamplingParams) -> None:
    """Refuse what llama.cpp cannot do as the contract says (rather than do something else)."""
    if params.frequency_penalty or params.presence_penalty:
        raise RecllmError(
            "the llamacpp backend cannot apply frequency/presence penalties to the answer only "
            "(llama.cpp counts the prompt's tokens too)", where="sampling",
            hint="set frequency_penalty and presence_penalty to 0 (repetition_penalty works), "
                 "or use the transformers or vllm backend")


def structured_body(structured: dict[str, Any]) -> dict[str, Any]:
    """`structured` as llama.cpp request fields: a GBNF `grammar` (choice, raw grammar, a title
    list: recllm.backends.constrain), a `json_schema`, or a regex through llguidance's Lark
    syntax (GBNF has no regexes)."""
    from recllm.backends import constrain

    if constrain.is_titles_spec(structured):
        spec = constrain.parse_spec(structured)
        return {"grammar": constrain.gbnf_for_titles(spec.titles, spec.max_items,
                                                     numbered=spec.format == "numbered",
                                                     exclude=spec.exclude)}
    if len(structured) != 1:
        raise RecllmError(f"structured output takes one key, got {sorted(structured)}",
                          hint="one of choice, regex, json, grammar")
    (kind, value), = structured.items()
    if kind == "choice":
        if not value or not all(isinstance(v, str) and v for v in value):
            raise RecllmError("structured choice needs a non-empty list of non-empty strings")
        return {"grammar": "root ::= " + " | ".join(gbnf_literal(v) for v in value)}
    if kind == "regex":
        return {"grammar": "%llguidance {}\nstart: /" + re.sub(r"(?<!\\)/", r"\\/", value) + "/"}
    if kind == "json":
        return {"json_schema": value}
    if kind == "grammar":
        return {"grammar": value}
    from recllm.errors import unknown
    raise unknown("structured output kind", kind, ["choice", "regex", "json", "grammar"])


def gbnf_literal(text: str) -> str:
    """`text` as a GBNF string literal: quotes and backslashes escaped, control characters as
    \\xHH (UTF-8 stays as it is)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def reply_error(reply: Any, n_ctx: int) -> str | None:
    """The error in a llama.cpp reply, as one line, or None for an answer."""
    if not isinstance(reply, dict):
        return f"llama.cpp answered {type(reply).__name__}, not a JSON object"
    error = reply.get("error") if "error" in reply else reply if "code" in reply and "message" in reply else None
    if error is None:
        return None if isinstance(reply.get("choices"), list) and reply["choices"] else "llama.cpp sent no choices"
    if not isinstance(error, dict):
        return f"llama.cpp: {error}"
    if error.get("type") == "exceed_context_size_error":
        return (f"prompt has {error.get('n_prompt_tokens')} tokens; the context is {n_ctx} per request "
                "(cut the history with max_prompt_tokens, or raise the n_ctx option)")
    message = str(error.get("message", error))
    if "grammar" in message:
        message += " (the structured output's grammar was refused)"
    return f"llama.cpp: {message}"
