"""Answers looked up by request key (the user id) from a JSONL file or a mapping.

Two uses: re-scoring saved outputs (point it at a previous run's samples.jsonl: each line with
"user_id" or "key", and "output", "raw", "text" or "texts") without running a model again, and
tests that need exact, known answers. A key with no answer is a recorded failure for that user.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recllm.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    ScoreRequest,
    ScoreResult,
    cut_at_stop,
)
from recllm.backends.scoring import problem
from recllm.errors import RecllmError
from recllm.options import StrictOptions
from recllm.requests import ask_key, split_ask_key

KEY_FIELDS = ("key", "user_id", "user")
TEXT_FIELDS = ("texts", "output", "raw", "raw_output", "text")


class ScriptedOptions(StrictOptions):
    path: str | None = None  # JSONL file of answers
    answers: dict[str, str | list[str]] | None = None  # or answers given directly: key -> text(s)
    default: str | None = None  # answer for keys with none; unset: a recorded error
    apply_stop: bool = False  # cut answers at the request's stop strings, as an engine would
    # For score(): key -> continuation -> its summed log-probability (tokens = its word count).
    scores: dict[str, dict[str, float]] | None = None


class ScriptedBackend(Backend):
    name = "scripted"
    Options = ScriptedOptions

    def __init__(self, options: ScriptedOptions | None = None):
        self.options = options or ScriptedOptions()
        o = self.options
        if (o.path is not None and o.answers is not None) or (o.path is None and o.answers is None
                                                              and o.scores is None):
            raise RecllmError("the scripted backend needs exactly one of `path` (a JSONL file) or `answers`, "
                              "or `scores` (to score continuations)")
        if o.path:
            self.answers = load_answers(Path(o.path))
        else:
            self.answers = {str(k): [v] if isinstance(v, str) else list(v) for k, v in (o.answers or {}).items()}
        self.scores = {str(k): dict(v) for k, v in (o.scores or {}).items()}
        content: Any = self.answers if not self.scores else {"answers": self.answers, "scores": self.scores}
        blob = json.dumps(content, sort_keys=True).encode()
        self._revision = hashlib.sha256(blob).hexdigest()[:16]
        self.calls = 0  # requests answered, for tests that count traffic

    def identity(self) -> dict[str, Any]:
        return {"engine": self.name, "model": self.options.path or "inline", "revision": self._revision}

    def fingerprint(self) -> dict[str, Any]:
        """Identity for resuming: the answers' source, not their content (a second batch of
        answers for the users that failed continues the same run)."""
        return {"engine": self.name, "model": self.options.path or "inline"}

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        results = []
        for request in requests:
            self.calls += 1
            texts = self._lookup(str(request.key)) if request.key is not None else None
            if texts is None and self.options.default is not None:
                texts = [self.options.default]
            if texts is None:
                results.append(GenerationResult([], error=f"no scripted answer for key {request.key!r}"))
                continue
            if self.options.apply_stop:
                texts = [cut_at_stop(t, request.params.stop)[0] for t in texts]
            results.append(GenerationResult(list(texts), finish_reason="stop"))
        return results


    can_score = True

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Scores looked up by request key, then by continuation text; a missing one is that
        request's error (so tests see exactly what a real engine's failure looks like)."""
        results = []
        for request in requests:
            self.calls += 1
            table = self._lookup(str(request.key), self.scores) if request.key is not None else None
            error = problem(request)
            if error is None and table is None:
                error = f"no scripted scores for key {request.key!r}"
            missing = [c for c in request.continuations if table is not None and c not in table]
            if error is None and missing:
                error = f"no scripted score for continuation {missing[0]!r} of key {request.key!r}"
            if error:
                results.append(ScoreResult([], [], error=error))
                continue
            results.append(ScoreResult([float(table[c]) for c in request.continuations],
                                       [max(1, len(c.split())) for c in request.continuations]))
        return results

    def _lookup(self, key: str, table: dict | None = None):
        """What is saved for `key` (answers, or `table`'s entry); a re-ask with none of its own
        ("u#ask2") gets the user's (inline answers given per user serve every ask)."""
        table = self.answers if table is None else table
        if key in table:
            return table[key]
        user, ask = split_ask_key(key)
        return table.get(user) if ask else None


def load_answers(path: Path) -> dict[str, list[str]]:
    """key -> answer texts from a JSONL file; a malformed line is an error naming its number."""
    from recllm.files import json_objects

    answers: dict[str, list[str]] = {}
    for where, row in json_objects(path, hint="pass a JSONL file, e.g. a previous run's samples.jsonl"):
        key = next((row[f] for f in KEY_FIELDS if f in row), None)
        text = next((row[f] for f in TEXT_FIELDS if f in row), None)
        if text is None and isinstance(row.get("systems"), dict):  # a `recllm eval` sample
            raw = next((s.get("raw") for s in row["systems"].values()
                        if isinstance(s, dict) and s.get("kind") == "llm"), None)
            if key is not None and isinstance(raw, list) and len(raw) > 1:
                # one answer per ask (re-asks with shuffled candidates), each its own key
                for ask, answer in enumerate(raw[1:], 1):
                    if not isinstance(answer, str):
                        raise RecllmError("answers must be strings", where=where)
                    answers[ask_key(str(key), ask)] = [answer]
                raw = raw[:1]
            text = raw
        if key is None or text is None:
            raise RecllmError(f"a line needs one of {KEY_FIELDS} and one of {TEXT_FIELDS}", where=where)
        texts = text if isinstance(text, list) else [text]
        if not all(isinstance(t, str) for t in texts):
            raise RecllmError("answers must be strings", where=where)
        answers[str(key)] = texts
    return answers
