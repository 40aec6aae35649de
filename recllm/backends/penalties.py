"""Repetition control for the transformers backend, with vLLM's semantics, padding-aware.

transformers' own `repetition_penalty` counts every id in `input_ids`, left padding included,
so the same prompt is penalized differently alone and in a batch (wherever the pad id is a real
token, e.g. EOS), and it has no OpenAI-style frequency/presence penalties. This processor takes
each row's true prompt start and the prompt width, and applies, in vLLM's order:

    repetition (prompt + answer tokens t):  l_t = l_t / r if l_t > 0 else l_t * r
    frequency and presence (answer only):  l_t -= f * count_t + p * [count_t > 0]

It runs before temperature and top-p (transformers merges custom processors ahead of its
warpers), so penalties act on raw logits, as in vLLM.
"""

from __future__ import annotations

from collections.abc import Sequence

from recllm.backends.base import SamplingParams


def penalty_processor(params: SamplingParams, starts: Sequence[int], width: int, copies: int = 1):
    """A LogitsProcessor for one batch, or None when no penalty is on. `starts[i]`: where row i's
    prompt begins after left padding; `width`: the padded prompt length; `copies`: sequences
    per prompt (num_return_sequences) -- transformers repeats each row that many times."""
    if not params.penalized:
        return None
    from transformers import LogitsProcessor

    class Penalties(LogitsProcessor):
        def __call__(self, input_ids, scores):
            return apply_penalties(input_ids, scores, params, starts, width, copies)

    return Penalties()


def apply_penalties(input_ids, scores, params: SamplingParams, starts: Sequence[int], width: int,
                    copies: int = 1):
    """Penalized copy of `scores` (rows x vocab) given the ids so far (rows x (width + generated))."""
    import torch

    scores = scores.clone()
    rows, vocab = scores.shape
    # Only ids inside the vocabulary the logits cover (some tokenizers have added tokens past it).
    start = torch.tensor([starts[r // copies] for r in range(rows)], device=input_ids.device)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    real = positions[None, :] >= start[:, None]  # False on left padding
    generated = positions[None, :] >= width
    ids = input_ids.clamp(0, vocab - 1)
    valid = (input_ids >= 0) & (input_ids < vocab)
    if params.repetition_penalty != 1.0:
        seen = torch.zeros(rows, vocab, device=scores.device, dtype=scores.dtype)
        seen.scatter_add_(1, ids, (real & valid).to(scores.dtype))  # occurrences, padding excluded
        hit = seen > 0
        r = params.repetition_penalty
        scores = torch.where(hit, torch.where(scores > 0, scores / r, scores * r), scores)
    if params.frequency_penalty != 0.0 or params.presence_penalty != 0.0:
        counts = torch.zeros(rows, vocab, device=scores.device, dtype=scores.dtype)
        counts.scatter_add_(1, ids, (generated & valid).to(scores.dtype))
        scores = scores - params.frequency_penalty * counts - params.presence_penalty * (counts > 0).to(scores.dtype)
    return scores
