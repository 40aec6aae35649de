"""Backends by name, imported only when asked for (lm-evaluation-harness `models/__init__.py` style).

    backend = get_backend("transformers", model="smollm2-135m-instruct", batch_size=16)
    results = backend.generate([GenerationRequest(messages=(...,), params=SamplingParams())])

Each engine lives in its own module and imports torch / vllm / httpx inside its methods, so
`import recllm.backends` costs nothing and works where none of them is installed.
"""

from __future__ import annotations

from typing import Any

from recllm.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    Message,
    SamplingParams,
    ScoreRequest,
    ScoreResult,
    cut_at_stop,
)
from recllm.registry import Registry

# name -> "module:Class"; aliases point at the same class; plugins add entries through the
# `recllm.backends` entry-point group (see recllm.registry).
BACKENDS = Registry("backend", "recllm.backends", {
    "transformers": "recllm.backends.hf:TransformersBackend",
    "vllm": "recllm.backends.vllm_llm:VLLMBackend",
    "openai": "recllm.backends.openai_http:OpenAIBackend",
    "llamacpp": "recllm.backends.llamacpp:LlamaCppBackend",
    "scripted": "recllm.backends.scripted:ScriptedBackend",
}, aliases={"hf": "transformers", "huggingface": "transformers", "http": "openai"})


def backend_class(name: str) -> type[Backend]:
    """The class registered under `name` (or one of its aliases); unknown names get a did-you-mean."""
    return BACKENDS.get(name)


def get_backend(name: str, **options: Any) -> Backend:
    """Build backend `name` from keyword options, validated against its `Options` model
    (unknown option keys are an error that suggests the closest known one)."""
    cls = backend_class(name)
    opts = cls.Options.parse(options, where=f"backend {BACKENDS.canonical(name)!r} options")
    return cls(opts)


__all__ = [
    "BACKENDS", "Backend", "GenerationRequest", "GenerationResult", "Message", "SamplingParams",
    "ScoreRequest", "ScoreResult",
    "backend_class", "cut_at_stop", "get_backend",
]
