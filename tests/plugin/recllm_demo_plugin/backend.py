"""A backend: answers every request with the titles in its options, numbered."""

from collections.abc import Sequence

from recllm.backends.base import Backend, GenerationResult
from recllm.options import StrictOptions


class ListBackend(Backend):
    name = "listing"

    class Options(StrictOptions):
        titles: list[str] = []

    def __init__(self, options=None):
        self.options = options or self.Options()

    def generate(self, requests: Sequence) -> list[GenerationResult]:
        text = "\n".join(f"{i}. {t}" for i, t in enumerate(self.options.titles, 1))
        return [GenerationResult(texts=[text]) for _ in requests]

    def identity(self) -> dict:
        return {"engine": self.name, "model": "listing", "titles": list(self.options.titles)}
