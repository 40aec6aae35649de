"""Likelihood scoring for the transformers backend, with the prompt computed once per request.

Per request: one forward pass over the prompt keeps its KV cache and the next-token
distribution after it (which scores every continuation's first token); the continuations then
run in batches of `batch_size` over copies of that cache, padded on the RIGHT (they all start
at the prompt's end, so positions line up and causal attention keeps padding out of the real
tokens), and each token's log-probability is gathered. This equals one full pass over
prompt + continuation per candidate (tests check it to 1e-4) at a fraction of the cost
(eval/bench/scoring.py). The token boundary rule is recllm.backends.scoring's.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Sequence

from recllm.backends.base import ScoreRequest, ScoreResult
from recllm.backends.scoring import Boundary, problem, render, split_tokens
from recllm.errors import RecllmError


def score(backend, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
    """ScoreResults for `requests` (same order); a request that fails is that request's error."""
    model, tokenizer = backend._load()
    limit = getattr(model.config, "max_position_embeddings", None)
    results = []
    for request in requests:
        started = time.perf_counter()
        error = problem(request)
        if error:
            results.append(ScoreResult([], [], error=error))
            continue
        try:
            text, raw = render(tokenizer, request, backend.resolved.name)
            bound = split_tokens(tokenizer, text, request.continuations, raw=raw)
        except RecllmError as exc:
            results.append(ScoreResult([], [], error=exc.message))
            continue
        except Exception as exc:  # noqa: BLE001 -- e.g. a chat template that rejects a role
            results.append(ScoreResult([], [], error=f"cannot build the prompt: {type(exc).__name__}: {exc}"))
            continue
        longest = max(len(c) for c in bound.continuations)
        if limit and len(bound.prompt) + longest > limit:
            results.append(ScoreResult([], [], prompt_tokens=len(bound.prompt), error=(
                f"prompt has {len(bound.prompt)} tokens and the longest continuation {longest}; the model's "
                f"context is {limit} (shorten the history, e.g. max_prompt_tokens)")))
            continue
        backend.boundary_fallbacks = getattr(backend, "boundary_fallbacks", 0) + bound.joint.count(False)
        try:
            logprobs = continuation_logprobs(model, bound, tokenizer.pad_token_id, backend.device,
                                             max(1, backend.options.batch_size))
        except Exception as exc:  # noqa: BLE001 -- one bad request must not sink the others
            results.append(ScoreResult([], [], prompt_tokens=len(bound.prompt), error=f"{type(exc).__name__}: {exc}"))
            continue
        results.append(ScoreResult(logprobs, [len(c) for c in bound.continuations], prompt_tokens=len(bound.prompt),
                                   seconds=time.perf_counter() - started))
    return results


def continuation_logprobs(model, bound: Boundary, pad: int, device: str, batch_size: int) -> list[float]:
    """sum_t log p(c_t | prompt, c_<t) for each continuation, reusing the prompt's KV cache."""
    import torch

    accepted = inspect.signature(model.forward).parameters
    keep = {"logits_to_keep": 1} if "logits_to_keep" in accepted else {}
    cache_arg = "cache" if "cache" in accepted else "past_key_values"  # renamed in transformers 5.2x
    conts = bound.continuations
    sums = [0.0] * len(conts)
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([bound.prompt], device=device), use_cache=True, **keep)
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)  # scores each first token
        order = sorted(range(len(conts)), key=lambda j: len(conts[j]))  # similar lengths pad less
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            for j in chunk:
                sums[j] = first[conts[j][0]].item()
            width = max(len(conts[j]) for j in chunk) - 1  # the last token's output is not needed
            if width == 0:
                continue  # single-token continuations: the prompt pass scored them
            ids = torch.tensor([conts[j][:-1] + [pad] * (width + 1 - len(conts[j])) for j in chunk], device=device)
            real = torch.tensor([[1] * (len(conts[j]) - 1) + [0] * (width + 1 - len(conts[j])) for j in chunk],
                                device=device)
            mask = torch.cat([torch.ones(len(chunk), len(bound.prompt), dtype=real.dtype, device=device), real], 1)
            kv = copy.deepcopy(cache)  # the forward appends to it; the prompt's stays for the next chunk
            kv.batch_repeat_interleave(len(chunk))
            logits = model(input_ids=ids, attention_mask=mask, use_cache=True, **{cache_arg: kv}).logits
            logp = torch.log_softmax(logits.float(), dim=-1)  # position t predicts token t + 1
            targets = torch.tensor([conts[j][1:] + [0] * (width + 1 - len(conts[j])) for j in chunk], device=device)
            picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * real
            for row, j in enumerate(chunk):
                sums[j] += picked[row].sum().item()
    return sums


def full_pass_logprobs(model, bound: Boundary, device: str) -> list[float]:
    """The reference: one full forward pass over prompt + continuation per continuation."""
    import torch

    sums = []
    with torch.inference_mode():
        for cont in bound.continuations:
            ids = torch.tensor([bound.prompt + cont], device=device)
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            n = len(bound.prompt)
            sums.append(sum(logp[n - 1 + t, tok].item() for t, tok in enumerate(cont)))
    return sums
