"""vLLM in process: `LLM.chat` for messages, `LLM.generate` for raw prompts, prefix caching on
(every prompt of a template shares its long instruction prefix), structured outputs on request.

Written against vLLM's current API: `SamplingParams(structured_outputs=StructuredOutputsParams(
choice=... | regex=... | json=...))` (vLLM >= 0.12, where the older `guided_decoding=
GuidedDecodingParams(...)` was removed); older releases get the old spelling. vllm is imported
inside methods only, so this module loads anywhere.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

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

STRUCTURED_KINDS = ("choice", "regex", "json", "grammar")


class VLLMOptions(StrictOptions):
    model: str  # alias (recllm.models), folder or hub id
    tensor_parallel_size: int = 1
    dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    seed: int = 0
    enable_prefix_caching: bool = True
    revision: str | None = None
    trust_remote_code: bool = False
    quantization: str | None = None
    adapter: str | None = None  # a LoRA adapter folder (`recllm tune`) over `model`; a tuned alias brings its own


class VLLMBackend(Backend):
    name = "vllm"
    Options = VLLMOptions

    def __init__(self, options: VLLMOptions):
        from recllm.models import resolve

        self.options = options
        self.resolved = resolve(options.model, fetch=True, revision=options.revision)
        if options.adapter:
            from recllm.backends.adapters import with_adapter

            self.resolved = with_adapter(self.resolved, options.adapter)
        self._llm = None

    def _engine(self):
        if self._llm is None:
            try:
                import vllm
            except ImportError:
                raise RecllmError("the vllm backend needs vLLM", hint="pip install 'recllm[vllm]' (Linux + CUDA GPU)") from None
            o = self.options
            self._llm = vllm.LLM(
                model=self.resolved.path, tensor_parallel_size=o.tensor_parallel_size, dtype=o.dtype,
                max_model_len=o.max_model_len, gpu_memory_utilization=o.gpu_memory_utilization, seed=o.seed,
                enable_prefix_caching=o.enable_prefix_caching, revision=o.revision,
                trust_remote_code=o.trust_remote_code, quantization=o.quantization, **self._lora_engine_args())
        return self._llm

    # -- LoRA (vLLM docs, "LoRA Adapters": LLM(enable_lora=True, max_lora_rank=r) and
    # generate/chat(..., lora_request=LoRARequest(name, int_id, path))) --------------------
    def _lora_engine_args(self) -> dict[str, Any]:
        if not self.resolved.adapter:
            return {}
        return {"enable_lora": True, "max_loras": 1, "max_lora_rank": lora_rank(self.resolved.adapter)}

    def _lora(self) -> dict[str, Any]:
        """{'lora_request': LoRARequest} for every engine call when an adapter is loaded, else {}."""
        if not self.resolved.adapter:
            return {}
        from vllm.lora.request import LoRARequest

        return {"lora_request": LoRARequest(self.resolved.name, 1, self.resolved.adapter)}

    def identity(self) -> dict[str, Any]:
        ident = {"engine": self.name, "model": self.resolved.name, "revision": self.resolved.revision,
                 "dtype": self.options.dtype}
        if self.options.quantization:  # only when set: keys cached without it stay valid
            ident["quantization"] = self.options.quantization
        return ident

    def count_tokens(self, request: GenerationRequest) -> int | None:
        tokenizer = self._engine().get_tokenizer()
        if request.prompt is not None:
            return len(tokenizer(request.prompt)["input_ids"])
        text = tokenizer.apply_chat_template(messages_of(request), tokenize=False, add_generation_prompt=True)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        llm = self._engine()
        results: list[GenerationResult | None] = [None] * len(requests)
        chats = [i for i, r in enumerate(requests) if r.messages is not None]
        prompts = [i for i, r in enumerate(requests) if r.messages is None]
        for indices, is_chat in ((chats, True), (prompts, False)):
            if indices:
                for i, result in zip(indices, self._run(llm, [requests[i] for i in indices], is_chat)):
                    results[i] = result
        return results  # type: ignore[return-value]

    def _run(self, llm, batch: list[GenerationRequest], is_chat: bool) -> list[GenerationResult]:
        """One engine call for the batch; if it fails, each request alone so one bad request
        (too long, bad regex) is that request's error only."""
        try:
            params = [sampling_params(r) for r in batch]
            started = time.perf_counter()
            if is_chat:
                outputs = llm.chat([messages_of(r) for r in batch], sampling_params=params, use_tqdm=False,
                                   **self._lora())
            else:
                outputs = llm.generate([r.prompt for r in batch], sampling_params=params, use_tqdm=False,
                                       **self._lora())
            seconds = (time.perf_counter() - started) / len(batch)
        except Exception as exc:  # noqa: BLE001
            if len(batch) == 1:
                return [GenerationResult([], error=f"{type(exc).__name__}: {exc}")]
            return [r for request in batch for r in self._run(llm, [request], is_chat)]
        return [_result(out, req, seconds) for out, req in zip(outputs, batch)]

    can_score = True

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """prompt + continuation as token ids, one engine prompt per continuation, all in one
        call: SamplingParams(max_tokens=1, prompt_logprobs=1) returns the log-probability of every
        prompt token, and the continuation's are summed. Token boundary: recllm.backends.scoring.
        vLLM V1 does not read its prefix cache for prompt-logprob requests (cached positions
        have no logits: vllm PRs #17251, #28194), so each continuation recomputes the shared
        prompt; on a GPU the continuations run in parallel, and the scores are exact."""
        from recllm.backends.scoring import problem, render, split_tokens

        llm = self._engine()
        tokenizer = llm.get_tokenizer()
        results: list[ScoreResult | None] = [None] * len(requests)
        bounds = {}
        for i, request in enumerate(requests):
            error = problem(request)
            if error is None:
                try:
                    text, raw = render(tokenizer, request, self.resolved.name)
                    bounds[i] = split_tokens(tokenizer, text, request.continuations, raw=raw)
                except RecllmError as exc:
                    error = exc.message
                except Exception as exc:  # noqa: BLE001 -- e.g. a chat template that rejects a role
                    error = f"cannot build the prompt: {type(exc).__name__}: {exc}"
            if error is not None:
                results[i] = ScoreResult([], [], error=error)
        for i, result in zip(bounds, self._score_run(llm, list(bounds.values()))):
            results[i] = result
        return results  # type: ignore[return-value]

    def _score_run(self, llm, bounds: list) -> list[ScoreResult]:
        """One engine call for every continuation of `bounds`; if it fails, each request alone."""
        if not bounds:
            return []
        try:
            params = score_params()
            prompts = [{"prompt_token_ids": b.prompt + c} for b in bounds for c in b.continuations]
            started = time.perf_counter()
            outputs = llm.generate(prompts, sampling_params=params, use_tqdm=False, **self._lora())
            seconds = (time.perf_counter() - started) / len(bounds)
        except Exception as exc:  # noqa: BLE001
            if len(bounds) == 1:
                return [ScoreResult([], [], prompt_tokens=len(bounds[0].prompt), error=f"{type(exc).__name__}: {exc}")]
            return [r for b in bounds for r in self._score_run(llm, [b])]
        results, at = [], 0
        for b in bounds:
            outs, at = outputs[at:at + len(b.continuations)], at + len(b.continuations)
            try:
                sums = [_prompt_logprob_sum(out, len(b.prompt), cont) for out, cont in zip(outs, b.continuations)]
                results.append(ScoreResult(sums, [len(c) for c in b.continuations], prompt_tokens=len(b.prompt),
                                           seconds=seconds))
            except RecllmError as exc:
                results.append(ScoreResult([], [], prompt_tokens=len(b.prompt), error=exc.message))
        return results

    def close(self) -> None:
        self._llm = None


LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


def lora_rank(adapter: str) -> int:
    """The smallest max_lora_rank vLLM accepts that holds the adapter's rank (adapter_config.json `r`)."""
    import json
    from pathlib import Path

    try:
        r = int(json.loads((Path(adapter) / "adapter_config.json").read_text())["r"])
    except (OSError, ValueError, KeyError, TypeError):
        raise RecllmError(f"no readable adapter_config.json in {adapter}", where="adapter") from None
    return next((x for x in LORA_RANKS if x >= r), r)


def sampling_params(request: GenerationRequest):
    """A recllm request -> vllm.SamplingParams (with structured outputs when asked)."""
    import vllm

    p = request.params
    kwargs: dict[str, Any] = {"n": p.n, "max_tokens": p.max_tokens, "temperature": p.temperature,
                              "top_p": p.top_p, "seed": p.seed, "stop": list(p.stop) or None}
    if p.penalized:  # vLLM's names and semantics are ours (vllm.SamplingParams docs)
        kwargs.update(repetition_penalty=p.repetition_penalty, frequency_penalty=p.frequency_penalty,
                      presence_penalty=p.presence_penalty)
    if request.structured:
        kwargs.update(_structured(request.structured))
    return vllm.SamplingParams(**kwargs)


def _structured(structured: dict[str, Any]) -> dict[str, Any]:
    from recllm.backends import constrain

    if constrain.is_titles_spec(structured):  # {"titles": [...]} -> a GBNF grammar over them
        structured = constrain.vllm_structured_for_titles(constrain.parse_spec(structured))
    unknown = set(structured) - set(STRUCTURED_KINDS)
    if unknown or len(structured) != 1:
        raise RecllmError(f"structured output takes exactly one of {STRUCTURED_KINDS}, got {sorted(structured)}")
    import vllm.sampling_params as sp

    if hasattr(sp, "StructuredOutputsParams"):  # vLLM >= 0.11
        return {"structured_outputs": sp.StructuredOutputsParams(**structured)}
    return {"guided_decoding": sp.GuidedDecodingParams(**structured)}  # older releases


def _result(output, request: GenerationRequest, seconds: float) -> GenerationResult:
    completions = list(output.outputs)
    texts = [cut_at_stop(c.text, request.params.stop)[0] for c in completions]
    return GenerationResult(
        texts, prompt_tokens=len(output.prompt_token_ids or []),
        completion_tokens=sum(len(c.token_ids) for c in completions), seconds=seconds,
        finish_reason=completions[0].finish_reason if completions else None)


def score_params():
    """Greedy, one new token (vLLM needs at least one), and the prompt tokens' log-probabilities
    (1: the top token besides the prompt's own, which vLLM always includes)."""
    import vllm

    return vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)


def _prompt_logprob_sum(output, start: int, continuation: list[int]) -> float:
    """Sum of the prompt log-probabilities at positions start.. (the continuation's tokens).
    `prompt_logprobs` is a list (or vLLM's FlatLogprobs sequence) of {token id: Logprob} per
    prompt position, None at the first."""
    table = getattr(output, "prompt_logprobs", None)
    if table is None or len(table) < start + len(continuation):
        raise RecllmError("vLLM returned no prompt log-probabilities for the continuation "
                          f"({0 if table is None else len(table)} positions for {start + len(continuation)} tokens)")
    total = 0.0
    for t, token in enumerate(continuation):
        position = table[start + t]
        entry = position.get(token) if position is not None else None
        value = getattr(entry, "logprob", entry)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RecllmError(f"vLLM returned no log-probability for continuation token {t} (id {token})")
        total += float(value)
    return total
