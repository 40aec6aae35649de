"""One answer -> a ranked list of item ids, and an account of every way the answer fell short.

The ranked list is what the model really said: matched titles, each item once, in answer
order, cut at k. Nothing is padded or reordered; a short list is reported as `shortfall`
and scored as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from recllm.errors import RecllmError
from recllm.grounding.match import Match, TitleMatcher
from recllm.grounding.parse import ParsedAnswer, parse_titles


@dataclass(frozen=True)
class Grounded:
    """The grounded answer of one user.

    item_ids: matched items, first mention only, answer order, at most k.
    titles / matches: every distinct parsed title and its match (None: not found).
    n_parsed: distinct titles parsed.  n_matched: of those, matched to an item.
    n_out_of_catalog: titles that name no catalog item (hallucinated or unmatchable).
    n_out_of_candidates: ranking prompts only: catalog items that were not among the candidates.
    n_duplicates: titles the answer repeated + titles naming an item already listed.
    n_in_history: listed items the user already had (kept unless drop_history).
    n_beyond_k: distinct items listed after the first k (ignored for scoring).
    shortfall: k - len(item_ids) when the answer gave fewer than k items.
    parse_failure: why nothing was parsed ("empty", "unfinished reasoning", ...), else None.
    """

    item_ids: tuple[str, ...]
    titles: tuple[str, ...]
    matches: tuple[Match | None, ...]
    k: int
    n_parsed: int
    n_matched: int
    n_out_of_catalog: int
    n_out_of_candidates: int
    n_duplicates: int
    n_in_history: int
    n_beyond_k: int
    shortfall: int
    parse_failure: str | None
    format: str
    truncated: bool

    def report(self) -> dict:
        """The counts, for samples.jsonl (without the per-title detail)."""
        out = asdict(self)
        for field in ("item_ids", "titles", "matches"):
            out.pop(field)
        return out

    def to_dict(self) -> dict:
        out = self.report()
        out["item_ids"] = list(self.item_ids)
        out["titles"] = list(self.titles)
        out["matches"] = [None if m is None else asdict(m) for m in self.matches]
        return out


def ground(
    text: str | ParsedAnswer,
    matcher: TitleMatcher,
    *,
    k: int,
    history: Iterable[str] = (),
    candidates: Iterable[str] | None = None,
    drop_history: bool = False,
) -> Grounded:
    """Parse `text` (or take an already parsed answer), match its titles, rank, count.

    candidates: a ranking prompt's item ids; titles are matched only among them, and a title
        that names another catalog item is counted in `n_out_of_candidates`.
    drop_history: leave items the user already had out of the ranked list (off by default:
        re-recommending a seen item is the model's mistake, and scoring shows it; either way
        `n_in_history` counts them).
    """
    if k < 1:
        raise RecllmError(f"k must be at least 1, got {k}")
    parsed = text if isinstance(text, ParsedAnswer) else parse_titles(text)
    scope = matcher.restrict(candidates) if candidates is not None else matcher
    seen_history = set(history)
    ranked: list[str] = []
    listed: set[str] = set()
    matches: list[Match | None] = []
    n_ooc = n_ooc_cand = n_in_history = n_beyond = 0
    dups = parsed.n_duplicates
    alternatives = parsed.alternatives or ((),) * len(parsed.titles)
    for title, alts in zip(parsed.titles, alternatives):
        found = match_readings(scope, title, alts)
        matches.append(found)
        if found is None:
            if candidates is not None and match_readings(matcher, title, alts) is not None:
                n_ooc_cand += 1
            else:
                n_ooc += 1
            continue
        item = found.item_id
        if item in listed:
            dups += 1
            continue
        listed.add(item)
        if item in seen_history:
            n_in_history += 1
            if drop_history:
                continue
        if len(ranked) < k:
            ranked.append(item)
        else:
            n_beyond += 1
    n_matched = sum(m is not None for m in matches)
    return Grounded(
        item_ids=tuple(ranked), titles=parsed.titles, matches=tuple(matches), k=k,
        n_parsed=len(parsed.titles), n_matched=n_matched, n_out_of_catalog=n_ooc,
        n_out_of_candidates=n_ooc_cand, n_duplicates=dups, n_in_history=n_in_history,
        n_beyond_k=n_beyond, shortfall=max(0, k - len(ranked)), parse_failure=parsed.failure,
        format=parsed.format, truncated=parsed.truncated,
    )


def match_readings(matcher: TitleMatcher, title: str, alternatives: tuple[str, ...] = ()) -> Match | None:
    """Match a parsed title, trying its other readings when it has some.

    An exact key match of the longest reading wins ("Life is Beautiful" over "Life"): a full
    line that equals a catalog title is never a title plus a reason. Fuzzy matching then tries
    the parser's best reading first.
    """
    if not alternatives:
        return matcher.match_one(title)
    readings = sorted((title, *alternatives), key=len, reverse=True)
    for reading in readings:
        found = matcher.match_one(reading, fuzzy=False)
        if found is not None:
            return found
    for reading in (title, *alternatives):
        found = matcher.match_one(reading)
        if found is not None:
            return found
    return None
