"""Render one user's prompt, cutting the oldest history until it fits the model's context.

The budget is measured in the model's own tokens with a `count_tokens(request)` callable
(`Backend.count_tokens`); without one, or when it answers None, a character heuristic stands
in: tokens ~= ceil(chars / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD per message. 3 characters a
token over-counts English titles a little (BPE tokenizers average about 4), so the guess errs
on the side of fitting. History cut is searched by bisection over the number of items kept:
about log2(len(history)) renders, not one per item.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from recllm.requests import GenerationRequest, Message, SamplingParams
from recllm.data.schema import RecDataset, UserCase
from recllm.errors import RecllmError
from recllm.prompting.context import PromptContext, build_context
from recllm.prompting.template import PromptTemplate

TokenCounter = Callable[[GenerationRequest], "int | None"]
CHARS_PER_TOKEN = 3.0
MESSAGE_OVERHEAD = 4  # role markers and separators a chat template adds per message


class PromptTooLong(RecllmError):
    """Even with no history at all the prompt exceeds the budget (recorded as a user failure)."""


@dataclass(frozen=True)
class RenderedPrompt:
    """One user's rendered prompt: chat `messages` or a raw `prompt`, and how it was made.

    `candidates` are the item ids shown, in order (so "3." can be read back as an id);
    `history_used`/`history_cut` count the history items kept and cut (oldest first) by
    `max_history` and the token budget; `prompt_tokens` is the measured length and
    `token_count` says how it was measured ('tokenizer', 'chars' or None when not measured).
    """

    template: str
    template_hash: str
    key: str
    mode: str
    output: str
    k: int
    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    candidates: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    history_used: int = 0
    history_cut: int = 0
    prompt_tokens: int | None = None
    token_count: str | None = None
    variables: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def text(self) -> str:
        """Everything the model reads, for display and character counts."""
        if self.prompt is not None:
            return self.prompt
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in self.messages or ())

    def to_request(self, params: SamplingParams | None = None, key: str | None = None,
                   structured: dict[str, Any] | None = None) -> GenerationRequest:
        """A backend request. The template's default stop strings apply when `params.stop` is empty."""
        params = params or SamplingParams()
        if not params.stop and self.stop:
            params = replace(params, stop=self.stop)
        return GenerationRequest(messages=self.messages, prompt=self.prompt, params=params,
                                 key=key if key is not None else self.key, structured=structured)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (for samples.jsonl and `recllm prompts render --json`)."""
        return {
            "template": self.template, "template_hash": self.template_hash, "key": self.key,
            "mode": self.mode, "output": self.output, "k": self.k,
            "messages": list(self.messages) if self.messages is not None else None,
            "prompt": self.prompt, "candidates": list(self.candidates), "stop": list(self.stop),
            "history_used": self.history_used, "history_cut": self.history_cut,
            "prompt_tokens": self.prompt_tokens, "token_count": self.token_count,
        }


def estimate_tokens(rendered: RenderedPrompt) -> int:
    """The character heuristic described in the module docstring."""
    if rendered.prompt is not None:
        return math.ceil(len(rendered.prompt) / CHARS_PER_TOKEN)
    return sum(math.ceil(len(m["content"]) / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD
               for m in rendered.messages or ())


def render_context(template: PromptTemplate, context: PromptContext, keep: int) -> RenderedPrompt:
    """Render with the `keep` most recent history items."""
    variables = context.window(keep)
    out = template.render(variables)
    chat = not isinstance(out, str)
    header = template.header
    return RenderedPrompt(
        template=template.name, template_hash=template.sha256, key=context.user_id,
        mode=header.mode, output=header.output, k=variables["k"],
        messages=out if chat else None, prompt=None if chat else out,
        candidates=tuple(c.id for c in context.candidates), stop=tuple(header.stop),
        history_used=len(variables["history"]), history_cut=variables["history_cut"],
        variables=variables)


def render_prompt(
    template: PromptTemplate,
    case: UserCase,
    dataset: RecDataset,
    *,
    k: int | None = None,
    candidates: Sequence[str] = (),
    domain: str | None = None,
    domain_plural: str | None = None,
    demos: Sequence[Any] = (),
    demo_domain: tuple[str, str] | None = None,
    max_history: int | None = None,
    max_prompt_tokens: int | None = None,
    count_tokens: TokenCounter | None = None,
) -> RenderedPrompt:
    """Render `template` for one user: the newest `max_history` items (all when None), cut
    further from the oldest end until the prompt is at most `max_prompt_tokens` long.

    `k` defaults to the template's header; `candidates` are item ids in protocol order (a rank
    template with none is an error); `domain`/`domain_plural` name the target domain.
    Raises PromptTooLong when even an empty history does not fit.
    """
    if template.header.mode == "rank" and not candidates:
        raise RecllmError(f"template {template.name!r} ranks candidates, but none were given",
                          where=template.where, hint="pass candidates (a candidate protocol) "
                          "or use a generate-mode template")
    context = build_context(case, dataset, k=k or template.header.k, candidates=candidates,
                            domain=domain, domain_plural=domain_plural, demos=demos,
                            demo_domain=demo_domain)
    n = len(context.history) if max_history is None else min(max_history, len(context.history))
    first = render_context(template, context, n)
    if max_prompt_tokens is None:
        return first
    return fit_budget(template, context, first, max_prompt_tokens, count_tokens)


def fit_budget(template: PromptTemplate, context: PromptContext, first: RenderedPrompt,
               budget: int, count_tokens: TokenCounter | None) -> RenderedPrompt:
    """The longest history window (<= first.history_used) whose prompt fits `budget` tokens.
    Assumes more history never makes a prompt shorter; bisection renders O(log n) times."""
    cache: dict[int, RenderedPrompt] = {first.history_used: _measure(first, count_tokens)}

    def attempt(keep: int) -> RenderedPrompt:
        if keep not in cache:
            cache[keep] = _measure(render_context(template, context, keep), count_tokens)
        return cache[keep]

    if cache[first.history_used].prompt_tokens <= budget:
        return cache[first.history_used]
    lo, hi, best = 0, first.history_used - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if attempt(mid).prompt_tokens <= budget:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    if best is None:
        smallest = attempt(0)
        raise PromptTooLong(
            f"prompt needs {smallest.prompt_tokens} tokens ({smallest.token_count}) with no history "
            f"at all; the budget is {budget}", where=f"{template.where} (user {context.user_id})",
            hint="raise max_prompt_tokens, lower k, or show fewer candidates")
    return attempt(best)


def _measure(rendered: RenderedPrompt, count_tokens: TokenCounter | None) -> RenderedPrompt:
    tokens = count_tokens(rendered.to_request()) if count_tokens is not None else None
    if tokens is not None:
        return replace(rendered, prompt_tokens=int(tokens), token_count="tokenizer")
    return replace(rendered, prompt_tokens=estimate_tokens(rendered), token_count="chars")
