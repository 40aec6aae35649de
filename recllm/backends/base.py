"""The one contract every engine implements: a batch of requests in, results out, same order."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from recllm.errors import RecllmError
from recllm.options import StrictOptions
# The request types live in recllm.requests (prompting builds them without importing backends).
from recllm.requests import PENALTY_DEFAULTS, GenerationRequest, Message, SamplingParams  # noqa: F401


@dataclass
class GenerationResult:
    """What came back for one request. A failure for one request is recorded in `error`
    (the texts are then empty) so that a run goes on with the other users."""

    texts: list[str]
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float = 0.0
    cached: bool = False
    error: str | None = None
    finish_reason: str | None = None

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""


@dataclass(frozen=True)
class ScoreRequest:
    """A prompt exactly as in a GenerationRequest (chat `messages`, rendered by the backend with
    the model's chat template and its generation prompt, or a raw `prompt`) and the strings to
    score as the answer's beginning, each appended right after the prompt text (e.g. one
    candidate's title as the list's first item: "1. Heat (1995)"). For PMI, score the same
    continuations under a second prompt (e.g. an empty history): that is just another request."""

    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    continuations: tuple[str, ...] = ()
    key: str | None = None

    def __post_init__(self):
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a ScoreRequest needs exactly one of messages or prompt")
        if isinstance(self.continuations, str) or not all(isinstance(c, str) for c in self.continuations):
            raise ValueError("ScoreRequest.continuations must be a tuple of strings")
        object.__setattr__(self, "continuations", tuple(self.continuations))

    def with_continuations(self, continuations: Sequence[str]) -> ScoreRequest:
        return replace(self, continuations=tuple(continuations))


@dataclass
class ScoreResult:
    """Per continuation, in the request's order: `logprobs[j]` = sum over its tokens of
    log P(token | prompt, earlier tokens) (natural log), `tokens[j]` = how many tokens that is
    (so the mean is logprobs[j] / tokens[j]). A failure is the request's `error` (lists empty)."""

    logprobs: list[float]
    tokens: list[int]
    prompt_tokens: int | None = None
    seconds: float = 0.0
    cached: bool = False
    error: str | None = None

    @property
    def means(self) -> list[float]:
        return [lp / n if n else float("-inf") for lp, n in zip(self.logprobs, self.tokens)]


class Backend(ABC):
    """An engine. Subclasses import their heavy dependencies lazily, inside methods, and
    declare their settings as `Options` (a StrictOptions model) so unknown keys are refused."""

    name: str = "base"
    Options: type[StrictOptions] = StrictOptions

    @abstractmethod
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Answer every request; same length and order as `requests`."""

    def identity(self) -> dict[str, Any]:
        """Everything about the engine that changes its output (for cache keys and results)."""
        return {"engine": self.name}

    def count_tokens(self, request: GenerationRequest) -> int | None:
        """Prompt length in the model's own tokens after its chat template; None if unknown."""
        return None

    # Whether `score` is implemented (for openai it still depends on the server: see there).
    can_score: bool = False

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Log-probability of each request's continuations after its prompt; same length and
        order as `requests`. Engines that expose log-probabilities override this; the others
        refuse (never a silent fallback to generation)."""
        raise RecllmError(f"backend {self.name!r} cannot score continuations (it exposes no log-probabilities)",
                          hint="use the transformers or vllm backend, or openai against a server whose "
                               "/v1/completions supports echo + logprobs (vLLM); or mode: generate")

    def close(self) -> None:
        """Free the engine's resources (GPU memory, HTTP clients)."""


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """`text` up to the earliest stop string (which is dropped) and whether one was found.
    Engines differ on whether they keep the stop string; we never keep it."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def messages_of(request: GenerationRequest) -> list[dict[str, str]]:
    """The request's chat messages as plain dicts (what chat-template APIs expect)."""
    return [dict(m) for m in request.messages or ()]
