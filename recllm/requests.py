"""What a caller asks an engine for: chat messages (or a raw prompt) and sampling parameters.

A core module, below both prompting (which builds requests) and backends (which answer them),
so neither imports the other; recllm.backends.base re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


def ask_key(user_id: str, ask: int) -> str:
    """The request key of one ask: the user id for the first, "user#askN" for re-asks, so a
    re-scored run gives every ask its own saved answer."""
    return user_id if ask == 0 else f"{user_id}#ask{ask}"


def split_ask_key(key: str) -> tuple[str, int]:
    """(user id, ask) of a request key: the inverse of `ask_key`."""
    user, sep, ask = key.rpartition("#ask")
    return (user, int(ask)) if sep and ask.isdigit() else (key, 0)


@dataclass(frozen=True)
class SamplingParams:
    """Decoding settings. temperature 0 means greedy; sampling is reproducible only with `seed`.

    Repetition control, applied to the logits before temperature/top-p, as vLLM does:
    - repetition_penalty (HF/vLLM): for every token already in the prompt OR the answer, a
      positive logit is divided by it and a negative one multiplied; > 1 discourages echoing
      what the prompt lists (e.g. the user's history), 1 is off.
    - frequency_penalty / presence_penalty (OpenAI): logit -= frequency * count + presence *
      [count > 0], counting the answer's own tokens only; 0 is off, > 0 against loops.
    """

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    n: int = 1
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0

    def __post_init__(self):
        if not self.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0 (1 = off), got {self.repetition_penalty}")
        for name in ("frequency_penalty", "presence_penalty"):
            if not -2.0 <= getattr(self, name) <= 2.0:  # OpenAI's and vLLM's accepted range
                raise ValueError(f"{name} must be within [-2, 2] (0 = off), got {getattr(self, name)}")

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    @property
    def penalized(self) -> bool:
        """Whether any repetition control is on."""
        return (self.repetition_penalty != 1.0 or self.frequency_penalty != 0.0
                or self.presence_penalty != 0.0)


# Fields added after caches were first written: cache keys include them only when they differ
# from these neutral values, so answers cached before they existed stay valid.
PENALTY_DEFAULTS = {"repetition_penalty": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0}


@dataclass(frozen=True)
class GenerationRequest:
    """Chat `messages` (the backend applies the model's own chat template) or a raw `prompt`
    for base models; exactly one is set. `key` names the request (the user id) for logs and
    for the scripted backend. `structured` asks for constrained output where the engine has it:
    {"choice": [...]}, {"regex": "..."} or {"json": schema}."""

    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    key: str | None = None
    structured: dict[str, Any] | None = None

    def __post_init__(self):
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a GenerationRequest needs exactly one of messages or prompt")
