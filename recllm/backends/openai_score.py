"""Likelihood scoring over an OpenAI-compatible server: /v1/completions with `echo` + `logprobs`.

One POST per continuation (a plain string `prompt`, which every server takes; a request's
continuations go one after another, requests run `concurrency` at a time): `echo: true`
returns the text's tokens with `token_logprobs` and `text_offset`, and the continuation's tokens
are those that end after the prompt text and start before the continuation's end (a token that
straddles the boundary counts for the continuation: the server tokenizes the joined text and
we cannot split one of its tokens). `max_tokens: 1` (the least every server accepts); the
generated token lies after the text and is ignored.

The completions endpoint takes raw text, so a chat request needs the model's chat template
here: the `tokenizer` option (alias, folder or hub id of the served model; default: `model`
when that is a local folder, as with `transformers serve`) renders it with the generation
prompt, exactly as the server's chat endpoint would. Without one, chat requests are refused.
Servers tokenize raw text WITH special tokens (vLLM, transformers serve), so when the template
wrote the BOS that the tokenizer adds anyway, that BOS text is left out (else it would double).

A server that cannot do this (no /v1/completions, `echo` or `logprobs` refused, a reply without
log-probabilities or without the echoed prompt) is one clear RecllmError for the whole call,
never a silent fallback; a reply whose log-probabilities are malformed is that request's error.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from recllm.backends.base import ScoreRequest, ScoreResult
from recllm.backends.scoring import problem
from recllm.errors import RecllmError
from recllm.redact import redact_text


class Unsupported(RecllmError):
    """The server lacks what scoring needs: raised for the whole call."""


class _Logprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float | None]
    text_offset: list[int]


class _ScoreChoice(BaseModel):
    text: str = ""
    index: int = 0
    logprobs: _Logprobs | None = None


class ScoreReply(BaseModel):
    choices: list[_ScoreChoice] = Field(min_length=1)


def chat_renderer(backend):
    """A function rendering chat messages with the served model's template, loaded once."""
    if getattr(backend, "_render", None) is not None:
        return backend._render
    name = backend.options.tokenizer or (backend.options.model if Path(backend.options.model).is_dir() else None)
    if name is None:
        raise RecllmError(
            f"scoring chat requests over HTTP needs the served model's chat template here "
            f"(/v1/completions takes raw text; {backend.shown_url} serves {backend.options.model!r})",
            hint="pass the backend option tokenizer=<alias, folder or hub id of that model>, "
                 "or use a completion-style template (raw prompt)")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise RecllmError("rendering the chat template needs transformers",
                          hint="pip install 'recllm[hf]', or use a completion-style template (raw prompt)") from None
    from recllm.models import resolve

    path = name if Path(name).is_dir() else resolve(name, fetch=True).path
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise RecllmError(f"cannot load the tokenizer {name!r}: {exc}".splitlines()[0],
                          hint="pass tokenizer= a local folder or a fetched alias") from None
    if not tokenizer.chat_template:
        raise RecllmError(f"tokenizer {name!r} has no chat template",
                          hint="use a completion-style template, which sends a raw prompt")
    bos = tokenizer.bos_token or ""

    def render(messages) -> str:
        text = tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=False, add_generation_prompt=True)
        if bos and text.startswith(bos):
            plain = tokenizer(text, add_special_tokens=False)["input_ids"]
            if tokenizer(text)["input_ids"] == [tokenizer.bos_token_id, *plain]:  # encoding adds a second BOS
                text = text[len(bos):]
        return text

    backend._render = render
    return render


def body(backend, text: str) -> dict[str, Any]:
    return {"model": backend.options.model, "prompt": text, "echo": True, "logprobs": 1, "max_tokens": 1,
            "temperature": 0.0} | backend.options.extra_body


async def score_one(backend, client, request: ScoreRequest) -> ScoreResult:
    started = time.perf_counter()
    error = problem(request)
    if error:
        return ScoreResult([], [], error=error)
    text = request.prompt if request.prompt is not None else chat_renderer(backend)(request.messages)
    logprobs, tokens = [], []
    try:
        for j, cont in enumerate(request.continuations):
            try:
                data = await backend._post(client, "/completions", body(backend, text + cont))
            except RecllmError as exc:
                status = re.match(r"HTTP (\d{3}) ", exc.message)
                if status and (status.group(1) in ("404", "405", "501") or (
                        status.group(1) in ("400", "422") and re.search(r"echo|logprob", exc.message, re.I))):
                    raise Unsupported(f"{backend.shown_url} cannot score: {exc.message[:300]}", hint=HINT) from None
                raise
            logprob, count = read_reply(backend, data, text, cont, j)
            logprobs.append(logprob)
            tokens.append(count)
    except Unsupported:
        raise
    except Exception as exc:  # noqa: BLE001 -- whatever else happens, it is this request's error only
        problem_text = exc.message if isinstance(exc, RecllmError) else f"{type(exc).__name__}: {exc}"
        return ScoreResult([], [], seconds=time.perf_counter() - started,
                           error=redact_text(problem_text, backend._secrets))
    return ScoreResult(logprobs, tokens, seconds=time.perf_counter() - started)


HINT = ("score mode needs /v1/completions with echo + logprobs (vLLM's server has them; transformers serve "
        "does not): use such a server, the transformers or vllm backend, or mode: generate")


def read_reply(backend, data: Any, text: str, cont: str, j: int) -> tuple[float, int]:
    """(summed log-prob, token count) of `cont` after `text` from one echoed reply."""
    try:
        reply = ScoreReply.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "reply"
        raise RecllmError(f"malformed reply for continuation {j}: {where}: {first['msg']}") from None
    choice = reply.choices[0]
    if choice.logprobs is None:
        raise Unsupported(f"{backend.shown_url} returned no log-probabilities with echo", hint=HINT)
    if not choice.text.startswith(text + cont):
        raise Unsupported(f"{backend.shown_url} did not echo the prompt (echo: true)", hint=HINT)
    lp = choice.logprobs
    if not len(lp.tokens) == len(lp.token_logprobs) == len(lp.text_offset):
        raise RecllmError(f"malformed reply for continuation {j}: tokens, token_logprobs and text_offset "
                          "differ in length")
    start, end = len(text), len(text) + len(cont)
    ends = lp.text_offset[1:] + [len(choice.text)]
    picked = [lp.token_logprobs[t] for t, (a, b) in enumerate(zip(lp.text_offset, ends)) if a < end and b > start]
    if not picked or any(v is None or not math.isfinite(v) for v in picked):
        raise RecllmError(f"malformed reply for continuation {j}: no finite log-probability for its tokens")
    return float(sum(picked)), len(picked)
