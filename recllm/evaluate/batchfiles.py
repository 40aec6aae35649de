"""OpenAI batch files: export a run's requests, finish the run from the batch's answers.

`--export-requests FILE` writes one line per request the run would send, in the format of the
OpenAI Batch API and `vllm run-batch` ({"custom_id", "method", "url", "body"}), and stops.
`--import-answers FILE` reads the batch output ({"custom_id", "response": {"status_code",
"body"}, "error"}) and replays it as the run's engine, so grounding, scoring and the run folder
are exactly those of a run that generated the answers itself. custom_id = "<config hash>:<user>
#ask<N>": an answers file made for another config is refused, not silently mixed in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recllm.backends.base import Backend, GenerationRequest, GenerationResult, cut_at_stop
from recllm.errors import RecllmError
from recllm.requests import SamplingParams, ask_key, split_ask_key

METHOD = "POST"


def custom_id(run_hash: str, key: str) -> str:
    """"<hash>:<user>#ask<N>" for request key `key` ("user" or "user#askN")."""
    user, ask = split_ask_key(key)
    return f"{run_hash}:{user}#ask{ask}"


def split_id(cid: str) -> tuple[str, str]:
    """(run hash, request key) of a custom_id."""
    run_hash, _, rest = cid.partition(":")
    return run_hash, ask_key(*split_ask_key(rest))


def body_maker(cfg) -> Any:
    """The openai backend's translation of requests to bodies, with the served model's name
    (the openai backend's `model` option, else the config's model) and its body options."""
    from recllm.backends.openai_http import OpenAIBackend, OpenAIOptions

    opts = dict(cfg.backend_options) if cfg.backend in ("openai", "http") else {}
    keep = {k: opts[k] for k in ("structured_format", "extra_body") if k in opts}
    model = opts.get("model") or cfg.model
    return OpenAIBackend(OpenAIOptions(model=str(model), **keep))


def engine_for(cfg) -> Backend:
    """The run's engine for --export-requests (nothing is generated) or --import-answers."""
    model = str(body_maker(cfg).options.model)
    if cfg.export_requests:
        return Exporter(cfg, model)
    return AnswersBackend(cfg.import_answers, cfg.hash(), model)


class BatchFileEngine(Backend):
    """What answers a batch-file run: named by the served model, not by a file, so exporting,
    importing and a second batch all continue one run (its fingerprint)."""

    name = "batch-file"

    def __init__(self, model: str):
        self.model = model

    def identity(self) -> dict[str, Any]:
        return {"engine": self.name, "model": self.model}


class Exporter(BatchFileEngine):
    """Stands in for the engine while requests are exported; a token budget
    (max_prompt_tokens) still counts with the configured engine's tokenizer."""

    def __init__(self, cfg, model: str):
        super().__init__(model)
        self.cfg, self._engine = cfg, None

    def count_tokens(self, request: GenerationRequest) -> int | None:
        if self._engine is None:
            from recllm.evaluate.llm import make_backend
            self._engine = make_backend(self.cfg)
        return self._engine.count_tokens(request)

    def generate(self, requests):  # pragma: no cover - export never generates
        raise RecllmError("export writes requests; it generates nothing")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


def export(cfg, plan, pending: list, llm, log) -> int:
    """Write every request of the pending users (rendered by the run's LLMRecommender) to
    cfg.export_requests; returns the count."""
    if cfg.mode != "generate":
        raise RecllmError("batch files carry generation requests; score mode needs logprobs of "
                          "the candidates", where="--export-requests",
                          hint="use mode: generate, or run score mode against a server")
    maker, run_hash = body_maker(cfg), cfg.hash()
    path = Path(cfg.export_requests)
    tmp, n = path.with_name(path.name + ".tmp"), 0
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tmp.open("w", encoding="utf-8") as out:
            for start in range(0, len(pending), cfg.batch_size):
                batch = pending[start:start + cfg.batch_size]
                for request in llm.prepare(batch, plan.candidates_of(batch)).requests:
                    url, body = maker.body(request)
                    out.write(json.dumps({"custom_id": custom_id(run_hash, request.key),
                                          "method": METHOD, "url": "/v1" + url, "body": body},
                                         ensure_ascii=False) + "\n")
                    n += 1
    finally:
        if llm is not None:
            llm.backend.close()
    tmp.replace(path)
    log(f"wrote {n} requests for {len(pending)} users to {path}; run them (e.g. `vllm run-batch "
        f"-i {path} -o answers.jsonl --model MODEL`), then rerun with --import-answers answers.jsonl")
    return n


class AnswersBackend(BatchFileEngine):
    """Replays a batch output file: each request answered by its custom_id; a missing or
    failed answer is that request's error (retry with a second file: --resume --retry-failed)."""

    def __init__(self, path: str | Path, run_hash: str, model: str):
        super().__init__(model)
        self.path, self.run_hash = Path(path), run_hash
        self.answers = load_answers(self.path, run_hash)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        out = []
        for request in requests:
            cid = custom_id(self.run_hash, str(request.key))
            found = self.answers.get(cid)
            if found is None:
                out.append(GenerationResult([], error=f"no answer for {cid} in {self.path.name}"))
            elif isinstance(found, str):
                out.append(GenerationResult([], error=found))
            else:
                out.append(_result(found, request, cid))
        return out


def _result(body: dict[str, Any], request: GenerationRequest, cid: str) -> GenerationResult:
    """A chat/completions reply body as the openai backend would have returned it."""
    from recllm.backends.openai_http import _Usage, _validate

    try:
        reply = _validate(body, chat=request.messages is not None)
    except RecllmError as exc:
        return GenerationResult([], error=f"{cid}: {exc.message}")
    chat = request.messages is not None
    texts = [cut_at_stop(c.message.content if chat else c.text, request.params.stop)[0]
             for c in reply.choices]
    usage = reply.usage or _Usage()
    return GenerationResult(texts[:request.params.n], prompt_tokens=usage.prompt_tokens,
                            completion_tokens=usage.completion_tokens or None,
                            finish_reason=reply.choices[0].finish_reason)


def load_answers(path: Path, run_hash: str) -> dict[str, dict[str, Any] | str]:
    """custom_id -> reply body (or the error text of a failed request). Refused: a line that is
    not a batch output object, a custom_id of another run, a custom_id seen twice."""
    from recllm.files import json_objects

    answers: dict[str, dict[str, Any] | str] = {}
    for where, row in json_objects(path, hint="pass the output file of the batch (vllm run-batch -o FILE)"):
        cid = row.get("custom_id")
        if not isinstance(cid, str) or ":" not in cid:
            raise RecllmError("a line needs a custom_id written by --export-requests", where=where)
        theirs = cid.partition(":")[0]
        if theirs != run_hash:
            raise RecllmError(f"this answers file belongs to another run (config hash {theirs}, "
                              f"this run {run_hash})", where=where,
                              hint="import answers exported with this same config")
        if cid in answers:
            raise RecllmError(f"custom_id {cid!r} appears twice", where=where,
                              hint="each request must be answered once; drop the duplicate")
        answers[cid] = _answer(row)
    return answers


def _answer(row: dict[str, Any]) -> dict[str, Any] | str:
    """The reply body of a successful line, else the failure as text."""
    error, response = row.get("error"), row.get("response")
    if error:
        return f"batch error: {json.dumps(error, default=str)[:300]}"
    if not isinstance(response, dict):
        return "batch line without a response"
    if "choices" in response and "body" not in response:  # a bare reply (some batch runners)
        return response
    status, body = response.get("status_code", 200), response.get("body")
    if status != 200:
        return f"HTTP {status} in the batch: {json.dumps(body, default=str)[:300]}"
    return body if isinstance(body, dict) else "batch response without a body"


def answer_file(requests_path: str | Path, answers_path: str | Path, backend: Backend) -> int:
    """Answer a request file with any recllm backend, writing the batch output format (what
    `vllm run-batch` does; for tests and for engines without a batch runner). Returns the count."""
    rows = [json.loads(line) for line in Path(requests_path).read_text(encoding="utf-8").splitlines()
            if line.strip()]
    requests = [request_of(r["body"], r["custom_id"]) for r in rows]
    results = backend.generate(requests) if requests else []
    with Path(answers_path).open("w", encoding="utf-8") as out:
        for n, (row, request, result) in enumerate(zip(rows, requests, results)):
            line: dict[str, Any] = {"id": f"recllm-{n}", "custom_id": row["custom_id"],
                                    "response": None, "error": None}
            if result.error:
                line["error"] = {"message": result.error}
            else:
                chat = request.messages is not None
                choices = [{"index": i, "finish_reason": result.finish_reason or "stop",
                            **({"message": {"role": "assistant", "content": t}} if chat else {"text": t})}
                           for i, t in enumerate(result.texts)]
                usage = {"prompt_tokens": result.prompt_tokens,
                         "completion_tokens": result.completion_tokens}
                line["response"] = {"status_code": 200, "request_id": f"recllm-{n}",
                                    "body": {"choices": choices, "usage": usage}}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return len(rows)


def request_of(body: dict[str, Any], cid: str) -> GenerationRequest:
    """A batch request body back as a GenerationRequest, keyed by its request key."""
    params = SamplingParams(max_tokens=body.get("max_tokens", 256),
                            temperature=body.get("temperature", 0.0), top_p=body.get("top_p", 1.0),
                            stop=tuple(body.get("stop") or ()), seed=body.get("seed"),
                            n=body.get("n", 1),
                            repetition_penalty=body.get("repetition_penalty", 1.0),
                            frequency_penalty=body.get("frequency_penalty", 0.0),
                            presence_penalty=body.get("presence_penalty", 0.0))
    key = split_id(cid)[1]
    if "messages" in body:
        return GenerationRequest(messages=tuple(body["messages"]), params=params, key=key)
    return GenerationRequest(prompt=body["prompt"], params=params, key=key)
