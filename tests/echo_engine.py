"""A deterministic test engine whose answers depend only on the prompt (shared test double)."""

from __future__ import annotations

import hashlib
import json


class PromptEcho:
    """Answers with catalog titles in an order fixed by the prompt's SHA-256: deterministic,
    different for every prompt, with a made-up title and a repeat to exercise validity."""

    name = "echo"

    def __init__(self, titles):
        self.titles = list(titles)

    def identity(self):
        return {"engine": "echo"}

    def generate(self, requests):
        from recllm.backends import GenerationResult

        out = []
        for r in requests:
            text = json.dumps(r.messages if r.messages is not None else r.prompt, sort_keys=True)
            h = int(hashlib.sha256(text.encode()).hexdigest(), 16)
            start = h % len(self.titles)
            picked = (self.titles[start:] + self.titles[:start])[:8]
            lines = [f"{i + 1}. {t}" for i, t in enumerate(picked)] + ["9. A Film Nobody Made (2031)",
                                                                       f"10. {picked[0]}"]
            out.append(GenerationResult(["\n".join(lines)], prompt_tokens=len(text) // 4))
        return out

    def score(self, requests):
        """Score mode: each continuation's log-probability from the SHA-256 of prompt + it."""
        from recllm.backends import ScoreResult

        out = []
        for r in requests:
            text = json.dumps(r.messages if r.messages is not None else r.prompt, sort_keys=True)
            values = [-(int(hashlib.sha256((text + c).encode()).hexdigest(), 16) % 1000) / 10.0
                      for c in r.continuations]
            out.append(ScoreResult(values, [len(c.split()) for c in r.continuations]))
        return out

    def close(self):
        pass
