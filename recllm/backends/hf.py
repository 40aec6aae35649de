"""In-process generation with transformers on CPU or GPU: the embedded default backend.

Requests with the same sampling settings are batched; within a group they are sorted by prompt
length so each batch pads little, padded on the LEFT (a decoder continues from the last
position), and the answers go back in the caller's order. Chat messages go through the model's
own chat template as a string and are tokenized with add_special_tokens=False, so the BOS the
template already wrote is not doubled.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, Literal

from recllm.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
    ScoreRequest,
    ScoreResult,
    cut_at_stop,
    messages_of,
)
from recllm.errors import RecllmError
from recllm.models import DEFAULT_MODEL, resolve
from recllm.options import StrictOptions


class TransformersOptions(StrictOptions):
    model: str = DEFAULT_MODEL  # alias, folder or hub id (see recllm.models)
    device: str = "auto"  # auto: cuda if available, else cpu
    # auto: bf16 on GPU, fp32 on CPU (reproducible); bfloat16 is ~3x faster on CPUs with AVX512-BF16/AMX
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = 16
    max_new_tokens: int | None = None  # hard cap over every request's max_tokens
    revision: str | None = None  # hub revision, for hub ids
    trust_remote_code: bool = False
    threads: int | None = None  # torch CPU threads; None: the idle cores (recllm.backends.cpu)
    adapter: str | None = None  # a LoRA adapter folder (`recllm tune`) over `model`; a tuned alias brings its own


class TransformersBackend(Backend):
    name = "transformers"
    Options = TransformersOptions

    def __init__(self, options: TransformersOptions | None = None):
        try:
            import torch
        except ImportError:
            raise RecllmError("the transformers backend needs torch and transformers",
                              hint="pip install 'recllm[hf]' (CPU: install torch's CPU wheel first)") from None
        self.options = opts = options or TransformersOptions()
        self.resolved = resolve(opts.model, fetch=True, revision=opts.revision)
        if opts.adapter:
            from recllm.backends.adapters import with_adapter

            self.resolved = with_adapter(self.resolved, opts.adapter)
        gpu = torch.cuda.is_available()
        self.device = opts.device if opts.device != "auto" else ("cuda" if gpu else "cpu")
        on_gpu = self.device.startswith("cuda")
        self.dtype = opts.dtype if opts.dtype != "auto" else ("bfloat16" if on_gpu else "float32")
        self._model = self._tokenizer = None
        self._warned = False

    # -- loading ---------------------------------------------------------------------------
    def _load(self):
        if self._model is not None:
            return self._model, self._tokenizer
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from recllm.backends.cpu import idle_cores

        opts = self.options
        if self.device == "cpu":  # a busy machine: fewer threads, or they stall each other
            torch.set_num_threads(opts.threads or idle_cores())
        kwargs = {"revision": opts.revision, "trust_remote_code": opts.trust_remote_code}
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.resolved.path, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(self.resolved.path, dtype=getattr(torch, self.dtype),
                                                         **kwargs)
        except OSError as exc:  # hub id without network, or unreadable files
            raise RecllmError(f"cannot load model {self.resolved.name!r}: {exc}".splitlines()[0],
                              hint="use a fetched alias (`recllm models list`) or a complete local folder")
        if self.resolved.adapter:  # base + LoRA, merged in memory: as fast as the base model
            from recllm.backends.adapters import merge_adapter

            model = merge_adapter(model, self.resolved.adapter)
        model.to(self.device).eval()
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:  # Llama-style tokenizers ship without one
            tokenizer.pad_token = tokenizer.eos_token
        self._model, self._tokenizer = model, tokenizer
        return model, tokenizer

    def identity(self) -> dict[str, Any]:
        # The effective dtype: bf16 on a GPU and fp32 on CPU answer differently. The answer cap
        # only when set, so answers cached before it was keyed stay valid.
        ident = {"engine": self.name, "model": self.resolved.name, "revision": self.resolved.revision,
                 "dtype": self.dtype}
        if self.options.max_new_tokens:
            ident["max_new_tokens"] = self.options.max_new_tokens
        return ident

    # -- tokens ------------------------------------------------------------------------------
    def render(self, request: GenerationRequest) -> str:
        """The exact text the model sees: chat template applied, generation prompt added."""
        _, tokenizer = self._load()
        if request.prompt is not None:
            return request.prompt
        if not tokenizer.chat_template:
            raise RecllmError(f"model {self.resolved.name!r} has no chat template (a base model?)",
                              hint="use a completion-style template, which sends a raw prompt")
        return tokenizer.apply_chat_template(messages_of(request), tokenize=False, add_generation_prompt=True)

    def encode(self, request: GenerationRequest) -> list[int]:
        _, tokenizer = self._load()
        # A raw prompt gets the tokenizer's special tokens (BOS); a chat-templated string
        # already contains them.
        return tokenizer(self.render(request), add_special_tokens=request.prompt is not None)["input_ids"]

    def count_tokens(self, request: GenerationRequest) -> int | None:
        return len(self.encode(request))

    # -- scoring (prompt once, continuations batched over its KV cache: see hf_score) --------
    can_score = True
    boundary_fallbacks = 0  # continuations tokenized alone (see recllm.backends.scoring)

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        from recllm.backends.hf_score import score

        return score(self, requests)

    # -- generation --------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        model, _ = self._load()
        from recllm.backends import constrain

        if any(r.structured and not constrain.is_titles_spec(r.structured) for r in requests) and not self._warned:
            self._warned = True  # say it once: only title constraints (recllm.backends.constrain) are enforced
            print("warning: the transformers backend does not enforce `structured` outputs other than title "
                  "lists ({'titles': ...}); use the vllm backend (or a vLLM server via openai) for choice/regex/json",
                  file=sys.stderr)
        results: list[GenerationResult | None] = [None] * len(requests)
        encoded: dict[int, list[int]] = {}
        titles: dict[int, tuple] = {}  # request index -> (trie, spec) for title-constrained requests
        limit = getattr(model.config, "max_position_embeddings", None)
        for i, request in enumerate(requests):
            try:
                ids = self.encode(request)
            except RecllmError as exc:
                results[i] = GenerationResult([], error=exc.message)
                continue
            except Exception as exc:  # noqa: BLE001 -- e.g. a chat template that rejects a role
                results[i] = GenerationResult([], error=f"cannot build the prompt: {type(exc).__name__}: {exc}")
                continue
            if limit and len(ids) >= limit:
                results[i] = GenerationResult([], prompt_tokens=len(ids), error=(
                    f"prompt has {len(ids)} tokens; the model's context is {limit} (shorten the history)"))
                continue
            if constrain.is_titles_spec(request.structured):
                try:  # built once per title list and tokenizer (cached), per request only its place
                    spec = constrain.parse_spec(request.structured)
                    titles[i] = (constrain.trie_for(self._tokenizer, spec.titles, spec.format), spec)
                except RecllmError as exc:
                    results[i] = GenerationResult([], prompt_tokens=len(ids), error=exc.message)
                    continue
            encoded[i] = ids
        # Group by sampling settings (one generate() call takes one set), then by length. Title
        # constraints differ per row inside one batch (each row follows its own trie).
        groups: dict[tuple, list[int]] = {}
        for i in encoded:
            s = requests[i].structured
            kind = ("titles",) if i in titles else repr(s)
            groups.setdefault((requests[i].params, kind), []).append(i)
        for (params, _), members in groups.items():
            members.sort(key=lambda i: len(encoded[i]))
            size = max(1, self.options.batch_size)
            for start in range(0, len(members), size):
                batch = members[start:start + size]
                outs = self._generate_batch([encoded[i] for i in batch], params, [titles.get(i) for i in batch])
                for i, result in zip(batch, outs):
                    results[i] = result
        return results  # type: ignore[return-value]

    def _generate_batch(self, batch: list[list[int]], params: SamplingParams,
                        titles: list | None = None) -> list[GenerationResult]:
        titles = titles or [None] * len(batch)
        try:
            return self._run(batch, params, titles)
        except Exception as exc:  # noqa: BLE001 -- one bad request must not sink its batch
            if len(batch) == 1:
                return [GenerationResult([], prompt_tokens=len(batch[0]), error=f"{type(exc).__name__}: {exc}")]
            return [r for ids, t in zip(batch, titles) for r in self._generate_batch([ids], params, [t])]

    def _run(self, batch: list[list[int]], params: SamplingParams, titles: list) -> list[GenerationResult]:
        import torch

        model, tokenizer = self._model, self._tokenizer
        width = max(len(ids) for ids in batch)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=self.device)
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=self.device)
        max_new = params.max_tokens
        if self.options.max_new_tokens:
            max_new = min(max_new, self.options.max_new_tokens)
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit:
            max_new = max(1, min(max_new, limit - width))
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": pad}
        if params.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None,
                          num_return_sequences=params.n)
            if params.seed is not None:
                torch.manual_seed(params.seed)  # reproducible for the same batch composition
        from recllm.backends.penalties import penalty_processor

        penalties = penalty_processor(params, [width - len(ids) for ids in batch], width,
                                      copies=1 if params.greedy else params.n)
        processors = []
        if penalties is not None:
            # Ours replaces transformers' own (which counts left padding), and a model's default.
            processors.append(penalties)
            kwargs.update(repetition_penalty=1.0)
        if any(titles):  # after the penalties, before temperature/top-p (transformers adds those last)
            from recllm.backends.constrain import TitleConstraint

            processors.append(TitleConstraint(
                tokenizer, [t[0] if t else None for t in titles], [t[1] if t else None for t in titles],
                _eos_ids(model, tokenizer), width, max_new, copies=1 if params.greedy else params.n))
        if processors:
            from transformers import LogitsProcessorList
            kwargs.update(logits_processor=LogitsProcessorList(processors))
        if params.stop and self._stop_criteria_work(params.stop):
            kwargs.update(stop_strings=list(params.stop), tokenizer=tokenizer)  # ends rows early
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        seconds = (time.perf_counter() - started) / len(batch)  # batch time, shared evenly
        new = output[:, width:].tolist()
        copies = 1 if params.greedy else params.n
        eos = _eos_ids(model, tokenizer) | {pad}  # rows that finished early are padded after EOS
        results = []
        for row, ids in enumerate(batch):
            texts, counts, reasons = [], [], []
            for seq in new[row * copies:(row + 1) * copies]:
                end = next((j for j, t in enumerate(seq) if t in eos), None)
                tokens = seq if end is None else seq[:end]
                text, stopped = cut_at_stop(tokenizer.decode(tokens, skip_special_tokens=True), params.stop)
                texts.append(text)
                counts.append(len(tokens))
                reasons.append("stop" if stopped or end is not None or len(tokens) < max_new else "length")
            if params.greedy and params.n > 1:  # greedy copies are identical; don't recompute them
                texts, counts, reasons = texts * params.n, counts * params.n, reasons * params.n
            results.append(GenerationResult(texts, prompt_tokens=len(ids), completion_tokens=sum(counts),
                                            seconds=seconds, finish_reason=reasons[0]))
        return results

    def _stop_criteria_work(self, stop: tuple[str, ...]) -> bool:
        """transformers' StopStringCriteria cannot map every tokenizer's vocabulary (it fails on
        some word-level ones); then we only cut at the stop string after generation."""
        from transformers import StopStringCriteria

        try:
            StopStringCriteria(self._tokenizer, list(stop))
            return True
        except Exception:  # noqa: BLE001
            return False

    def close(self) -> None:
        self._model = self._tokenizer = None


def _eos_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
