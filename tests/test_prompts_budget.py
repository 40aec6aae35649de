"""Token budget: the oldest history is cut until the prompt fits, by bisection, recorded per user."""

from __future__ import annotations

import pytest

from recllm.backends.base import GenerationRequest
from recllm.data.schema import UserCase
from recllm.prompting import (CHARS_PER_TOKEN, PromptTooLong, estimate_tokens, load_template,
                              render_prompt)


class WordCounter:
    """A fake tokenizer: one token per whitespace-separated word; counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, request: GenerationRequest) -> int:
        self.calls += 1
        if request.prompt is not None:
            return len(request.prompt.split())
        return sum(len(m["content"].split()) + 3 for m in request.messages)


def long_case(n: int) -> UserCase:
    """A user who watched the 11 non-code fixture movies over and over, n items in all."""
    ids = [str(1 + i % 11) for i in range(n)]
    return UserCase("long", tuple(ids), tuple(4.0 for _ in ids), tuple(range(n)), "12", n)


@pytest.mark.parametrize("name", ["generate", "completion", "rank-recency"])
def test_cut_keeps_the_most_recent_items_that_fit(name, tiny_dataset):
    template = load_template(name)
    case = long_case(200)
    cands = ["12", "3"] if template.header.mode == "rank" else []
    full = render_prompt(template, case, tiny_dataset, candidates=cands)
    counter = WordCounter()
    budget = WordCounter()(full.to_request()) // 3
    out = render_prompt(template, case, tiny_dataset, candidates=cands, max_prompt_tokens=budget,
                        count_tokens=counter)
    assert out.prompt_tokens <= budget and out.token_count == "tokenizer"
    assert out.history_used + out.history_cut == 200 and 0 < out.history_used < 200
    # one more item would not fit: the longest window that fits was found
    one_more = render_prompt(template, case, tiny_dataset, candidates=cands,
                             max_history=out.history_used + 1)
    assert WordCounter()(one_more.to_request()) > budget
    # the items kept are the newest ones, still oldest first
    kept = out.variables["history"]
    assert [i.id for i in kept] == list(case.history[-out.history_used:])
    assert counter.calls <= 10  # bisection: ~log2(200) + 1 measurements, not 200


def test_prompt_that_fits_is_measured_once(tiny_dataset):
    counter = WordCounter()
    out = render_prompt(load_template("generate"), long_case(20), tiny_dataset,
                        max_prompt_tokens=10_000, count_tokens=counter)
    assert counter.calls == 1 and out.history_cut == 0 and out.history_used == 20


def test_max_history_cuts_before_the_budget(tiny_dataset):
    out = render_prompt(load_template("generate"), long_case(50), tiny_dataset, max_history=7)
    assert out.history_used == 7 and out.history_cut == 43 and out.prompt_tokens is None


def test_too_long_even_without_history(tiny_dataset):
    with pytest.raises(PromptTooLong, match="no history at all; the budget is 5"):
        render_prompt(load_template("generate"), long_case(30), tiny_dataset,
                      max_prompt_tokens=5, count_tokens=WordCounter())


def test_character_heuristic_when_no_counter(tiny_dataset):
    template = load_template("generate")
    full = render_prompt(template, long_case(100), tiny_dataset)
    budget = estimate_tokens(full) // 2
    none_counter = lambda request: None  # noqa: E731  (a backend without a tokenizer)
    for counter in (None, none_counter):
        out = render_prompt(template, long_case(100), tiny_dataset, max_prompt_tokens=budget,
                            count_tokens=counter)
        assert out.token_count == "chars" and out.prompt_tokens <= budget
        assert 0 < out.history_used < 100
    chars = sum(len(m["content"]) for m in out.messages)
    assert out.prompt_tokens >= chars / CHARS_PER_TOKEN  # errs on the long side


def test_budget_cut_is_deterministic(tiny_dataset):
    args = dict(max_prompt_tokens=150, count_tokens=WordCounter())
    a = render_prompt(load_template("rank-icl"), long_case(80), tiny_dataset, candidates=["12"], **args)
    b = render_prompt(load_template("rank-icl"), long_case(80), tiny_dataset, candidates=["12"], **args)
    assert a == b and a.history_cut > 0
