"""Score mode: the LLM ranks the shown candidates by likelihood instead of writing a list.

Each candidate c gets log P(answer starts with c | prompt): the continuation is the first line
of the answer the template asks for ("1. <label>\\n" for a numbered list, "<label>\\n"
otherwise), with the candidate's label exactly as the prompt shows it. Normalizations
(`score_norm`, recllm.backends.scoring.normalized):

- sum:  log P(c | prompt)
- mean: log P(c | prompt) / |c| tokens
- pmi:  log P(c | prompt) - log P(c | same prompt with an empty history)

Nothing is parsed, so parse failures and shortfall are 0 by construction (the record says
`mode: score`); each candidate's score is kept in samples.jsonl.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from recllm.data.schema import UserCase


def continuations(rendered) -> list[str]:
    """The first answer line for each shown candidate, in the shown order."""
    numbered = rendered.output == "numbered_list"
    return [f"1. {item.label}\n" if numbered else f"{item.label}\n"
            for item in rendered.variables["candidates"]]


def without_history(case: UserCase) -> UserCase:
    """The same user with nothing in the history: the prompt for pmi's prior."""
    return replace(case, history=(), ratings=(), timestamps=(), truncated=0)


def score_request(rendered, key: str):
    from recllm.backends import ScoreRequest

    return ScoreRequest(messages=rendered.messages, prompt=rendered.prompt,
                        continuations=tuple(continuations(rendered)), key=key)


def ranking(showing: Sequence[str], scores: Sequence[float]) -> list[str]:
    """Candidates by score, highest first; ties keep the shown order (as the baselines do)."""
    from recllm.backends.scoring import ranking as order

    return [showing[i] for i in order(scores)]


def ask_scores(result, prior, norm: str) -> tuple[list[float] | None, str | None]:
    """(normalized scores, error) of one ask."""
    from recllm.backends.scoring import finite, normalized

    for r in (result, prior):
        if r is not None and r.error:
            return None, r.error
    scores = normalized(result, norm, prior)
    if not finite(scores):
        return None, "the engine returned a non-finite log-probability"
    return scores, None


def validity(n: int, error: bool) -> dict[str, int]:
    """Score mode's counters: every candidate is scored, nothing can fail to parse."""
    return {"asked": n, "parsed": 0 if error else n, "matched": 0 if error else n,
            "out_of_catalog": 0, "out_of_candidates": 0, "duplicates": 0, "history_repeats": 0,
            "shortfall": n if error else 0, "parse_failure": 0, "error": int(error)}


def record(showings: list[list[str]], results: list, priors: list, norm: str
           ) -> dict[str, Any]:
    """The per-user LLM record of score mode: rankings per ask and each candidate's score."""
    rec: dict[str, Any] = {"mode": "score", "score_norm": norm, "raw": [], "parsed": [],
                           "matched": [], "error": None, "prompt_tokens": 0,
                           "completion_tokens": 0}
    rankings, first_scores = [], None
    for a, (showing, result, prior) in enumerate(zip(showings, results, priors)):
        rec["prompt_tokens"] += result.prompt_tokens or 0
        scores, error = ask_scores(result, prior, norm)
        if error:
            rec["error"] = error
            rankings.append([])
            continue
        rankings.append(ranking(showing, scores))
        if a == 0:
            first_scores = {item: round(float(s), 6) for item, s in zip(showing, scores)}
    rec["scores"] = first_scores
    rec["validity"] = validity(len(showings[0]), error=rec["error"] is not None)
    return {**rec, "_rankings": rankings}
