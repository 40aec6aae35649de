"""Grounding: an LLM's free-text answer -> ordered titles (parse) -> catalog item ids (match).

    from recllm.grounding import TitleMatcher, ground
    matcher = TitleMatcher.from_catalog(dataset.catalog)
    result = ground(answer_text, matcher, k=10, history=case.history)
    result.item_ids, result.n_out_of_catalog, result.shortfall

Nothing here imports torch; the optional embedding matcher imports sentence-transformers
only when it is built.
"""

from recllm.grounding.ground import Grounded, ground
from recllm.grounding.match import Match, TitleMatcher, match_key
from recllm.grounding.parse import ParsedAnswer, parse_titles, strip_reasoning

__all__ = ["Grounded", "Match", "ParsedAnswer", "TitleMatcher", "ground", "match_key",
           "parse_titles", "strip_reasoning", "EmbeddingMatcher"]


def __getattr__(name: str):
    if name == "EmbeddingMatcher":  # lazy: pulls numpy-heavy code only when asked for
        from recllm.grounding.embed import EmbeddingMatcher
        return EmbeddingMatcher
    raise AttributeError(name)
