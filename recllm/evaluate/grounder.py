"""One LLM answer -> the ranked item ids scored, and counts of every way it fell short.

A thin adapter over `recllm.grounding.ground`: it keeps the matcher (built once per run, with
training popularity to break ties between same-title items) and turns the per-answer report
into the integer counters samples.jsonl stores (see recllm.evaluate.aggregate.VALIDITY_FIELDS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class GroundedAnswer:
    ranked: list[str]
    parsed: list[str]
    matched: list[str | None]
    validity: dict[str, int] = field(default_factory=dict)


class Grounder:
    """Parse + match with per-answer validity counts."""

    def __init__(self, catalog, popularity: Mapping[str, float] | None = None,
                 **matcher_options: Any):
        from recllm.grounding import TitleMatcher

        opts = dict(matcher_options)
        if popularity is not None:  # training counts, never test targets
            opts.setdefault("popularity", popularity)
        self.matcher = TitleMatcher.from_catalog(catalog, **opts)
        self._scoped = _CatalogFirst(self.matcher)

    @staticmethod
    def empty_validity(*, error: bool, k: int) -> dict[str, int]:
        return {"asked": k, "parsed": 0, "matched": 0, "out_of_catalog": 0,
                "out_of_candidates": 0, "duplicates": 0, "history_repeats": 0, "shortfall": k,
                "parse_failure": 1, "error": int(error)}

    def ground(self, text: str, *, k: int, history: Sequence[str],
               candidates: Sequence[str] | None = None, exclude_history: bool = True) -> GroundedAnswer:
        """Ranked ids (at most k, answer order, each once; history items dropped when
        `exclude_history`, as the baselines do) and the counts:
        parsed = titles written (repeats included), matched = titles naming an item,
        out_of_catalog / out_of_candidates / duplicates / history_repeats, asked = k,
        shortfall = k - len(ranked),
        parse_failure = 1 when no title could be read."""
        from recllm.grounding import ground, parse_titles

        answer = parse_titles(text)
        g = ground(answer, self._scoped, k=k, history=history, candidates=candidates,
                   drop_history=exclude_history)
        validity = {
            "asked": k,
            "parsed": g.n_parsed + answer.n_duplicates,
            "matched": g.n_matched,
            "out_of_catalog": g.n_out_of_catalog,
            "out_of_candidates": g.n_out_of_candidates,
            "duplicates": g.n_duplicates,
            "history_repeats": g.n_in_history,
            "shortfall": g.shortfall,
            "parse_failure": int(g.n_parsed == 0),
            "error": 0,
        }
        matched = [m.item_id if m is not None else None for m in g.matches]
        return GroundedAnswer(list(g.item_ids), list(g.titles), matched, validity)


class _CatalogFirst:
    """The matcher as `ground` sees it: restricting to candidates returns a scope that tries
    the catalog matcher first (its per-title cache makes repeated titles free) and builds the
    restricted matcher only for titles that land outside the candidates."""

    def __init__(self, matcher):
        self.matcher = matcher

    def match_one(self, title: str, *, fuzzy: bool = True):
        return self.matcher.match_one(title, fuzzy=fuzzy)

    def restrict(self, item_ids) -> "_CandidateScope":
        return _CandidateScope(self.matcher, list(item_ids))


class _CandidateScope:
    def __init__(self, matcher, candidates: list[str]):
        self.matcher, self.candidates, self.allowed = matcher, candidates, set(candidates)
        self._within = None

    def match_one(self, title: str, *, fuzzy: bool = True):
        found = self.matcher.match_one(title, fuzzy=fuzzy)
        if found is not None and found.item_id in self.allowed:
            return found
        if self._within is None:  # e.g. a remake: same title, the candidate is the other year
            self._within = self.matcher.restrict(self.candidates)
        return self._within.match_one(title, fuzzy=fuzzy)
