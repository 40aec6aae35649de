"""What every scoring backend shares: request checks, the prompt/continuation token boundary,
and the normalizations a ranking uses (sum, mean, PMI).

Token boundary (the one rule for transformers and vLLM): the prompt text and the continuation
are tokenized JOINTLY, and the continuation's tokens are the suffix after the prompt's own
tokens when those are a prefix of the joint ones (the usual case: chat templates end the
assistant header with a newline, where tokenizers split). When the joint tokenization merges
across the boundary, the continuation is tokenized ALONE (no special tokens) and appended to
the prompt's tokens; `Boundary.joint` says which rule served, and backends count fallbacks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from recllm.backends.base import ScoreRequest, ScoreResult, messages_of
from recllm.errors import RecllmError

ScoreNorm = Literal["sum", "mean", "pmi"]
SCORE_NORMS: tuple[str, ...] = ("sum", "mean", "pmi")
# Bumped when the way a score is computed changes (part of score cache keys).
SCORING_VERSION = 1


def problem(request: ScoreRequest) -> str | None:
    """Why a request cannot be scored at all (its error), or None."""
    if not request.continuations:
        return "nothing to score: the request has no continuations (an empty candidate list?)"
    for j, text in enumerate(request.continuations):
        if not text.strip():
            return (f"continuation {j} ({text!r}) is empty: a title that writes to nothing cannot be "
                    "scored (drop it from the catalog or the candidates)")
    return None


def render(tokenizer, request: ScoreRequest, model_name: str) -> tuple[str, bool]:
    """(prompt text, whether it is a raw prompt): chat messages through the model's own
    template with the generation prompt, so a continuation starts the assistant's answer."""
    if request.prompt is not None:
        return request.prompt, True
    if not getattr(tokenizer, "chat_template", None):
        raise RecllmError(f"model {model_name!r} has no chat template (a base model?)",
                          hint="use a completion-style template, which sends a raw prompt")
    return tokenizer.apply_chat_template(messages_of(request), tokenize=False, add_generation_prompt=True), False


@dataclass
class Boundary:
    prompt: list[int]  # the prompt's tokens (as generate() would feed them)
    continuations: list[list[int]]  # each continuation's tokens, scored after `prompt`
    joint: list[bool]  # per continuation: True = suffix of the joint tokenization, False = alone


def split_tokens(tokenizer, prompt_text: str, continuations: Sequence[str], *, raw: bool) -> Boundary:
    """Tokenize per the module's boundary rule. A raw prompt gets the tokenizer's special tokens
    (BOS), a templated one already holds them (same as generation)."""
    prompt = tokenizer(prompt_text, add_special_tokens=raw)["input_ids"]
    conts, joint = [], []
    for j, text in enumerate(continuations):
        ids = tokenizer(prompt_text + text, add_special_tokens=raw)["input_ids"]
        if len(ids) > len(prompt) and ids[:len(prompt)] == prompt:
            conts.append(ids[len(prompt):])
            joint.append(True)
        else:
            alone = tokenizer(text, add_special_tokens=False)["input_ids"]
            if not alone:
                raise RecllmError(f"continuation {j} ({text!r}) tokenizes to nothing")
            conts.append(alone)
            joint.append(False)
    return Boundary(prompt, conts, joint)


def normalized(result: ScoreResult, norm: str = "sum", prior: ScoreResult | None = None) -> list[float]:
    """One ranking score per continuation (higher is better):

    - sum:  log P(c | prompt) = sum_t log p(c_t | prompt, c_<t)
    - mean: log P(c | prompt) / |c|  (per token: removes the pull towards short titles)
    - pmi:  log P(c | prompt) - log P(c | prior prompt)  (the prior prompt is the same request with
            an empty history: removes the title's length and popularity prior)
    """
    if norm not in SCORE_NORMS:
        raise RecllmError(f"unknown score_norm {norm!r}", hint=f"use one of {', '.join(SCORE_NORMS)}")
    if result.error:
        raise RecllmError(f"cannot normalize a failed score: {result.error}")
    if norm == "sum":
        return list(result.logprobs)
    if norm == "mean":
        return result.means
    if prior is None:
        raise RecllmError("score_norm 'pmi' needs the prior scores (the same continuations under the "
                          "empty-history prompt)")
    if prior.error:
        raise RecllmError(f"cannot use a failed prior score for pmi: {prior.error}")
    if len(prior.logprobs) != len(result.logprobs):
        raise RecllmError(f"pmi: {len(result.logprobs)} scores but {len(prior.logprobs)} prior scores "
                          "(score the same continuations under both prompts)")
    return [a - b for a, b in zip(result.logprobs, prior.logprobs)]


def score_with_priors(backend, requests: Sequence[ScoreRequest], priors: Sequence[ScoreRequest] | None = None
                      ) -> list[tuple[ScoreResult, ScoreResult | None]]:
    """Score `requests` and, for pmi, their `priors` (the same continuations under the
    empty-history prompt) in ONE backend call, so an engine batches them together (and a cache
    keeps the prior prompts' scores, which many users share). Pairs in the requests' order."""
    if priors is not None and len(priors) != len(requests):
        raise RecllmError(f"{len(requests)} requests but {len(priors)} prior requests")
    for request, prior in zip(requests, priors or ()):
        if prior.continuations != request.continuations:
            raise RecllmError(f"the prior request for key {request.key!r} scores other continuations")
    results = backend.score([*requests, *(priors or ())])
    n = len(requests)
    return [(results[i], results[n + i] if priors is not None else None) for i in range(n)]


def ranking(scores: Sequence[float]) -> list[int]:
    """Continuation indices, best first; ties keep the shown order (stable, no randomness)."""
    return sorted(range(len(scores)), key=lambda j: -scores[j])


def finite(values: Sequence[float]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
