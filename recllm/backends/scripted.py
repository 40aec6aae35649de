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
    cut_at_stop,
)
from recllm.errors import RecllmError
from recllm.options import StrictOptions

KEY_FIELDS = ("key", "user_id", "user")


def ask_key(user_id: str, ask: int) -> str:
    """The request key of one ask: the user id for the first, "user#askN" for re-asks, so a
    re-scored run gives every ask its own saved answer."""
    return user_id if ask == 0 else f"{user_id}#ask{ask}"
TEXT_FIELDS = ("texts", "output", "raw", "raw_output", "text")


class ScriptedOptions(StrictOptions):
    path: str | None = None  # JSONL file of answers
    answers: dict[str, str | list[str]] | None = None  # or answers given directly: key -> text(s)
    default: str | None = None  # answer for keys with none; unset: a recorded error
    apply_stop: bool = False  # cut answers at the request's stop strings, as an engine would


class ScriptedBackend(Backend):
    name = "scripted"
    Options = ScriptedOptions

    def __init__(self, options: ScriptedOptions | None = None):
        self.options = options or ScriptedOptions()
        if (self.options.path is None) == (self.options.answers is None):
            raise RecllmError("the scripted backend needs exactly one of `path` (a JSONL file) or `answers`")
        if self.options.path:
            self.answers = load_answers(Path(self.options.path))
        else:
            self.answers = {str(k): [v] if isinstance(v, str) else list(v)
                            for k, v in self.options.answers.items()}
        blob = json.dumps(self.answers, sort_keys=True).encode()
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


    def _lookup(self, key: str) -> list[str] | None:
        """The answers saved for `key`; a re-ask with none of its own ("u#ask2") gets the
        user's answer (inline answers given per user serve every ask)."""
        if key in self.answers:
            return self.answers[key]
        user, sep, _ = key.rpartition("#ask")
        return self.answers.get(user) if sep else None


def load_answers(path: Path) -> dict[str, list[str]]:
    """key -> answer texts from a JSONL file; a malformed line is an error naming its number."""
    if not path.exists():
        raise RecllmError("no such answers file", where=str(path),
                          hint="pass a JSONL file, e.g. a previous run's samples.jsonl")
    answers: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecllmError(f"not valid JSON ({exc.msg})", where=where) from None
            if not isinstance(row, dict):
                raise RecllmError("each line must be a JSON object", where=where)
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
