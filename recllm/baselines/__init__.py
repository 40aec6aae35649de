"""Classical baselines, always shown next to the LLM on the same protocol and the same users.

Each lives in its own module as a `Baseline` subclass with typed `Options`; BASELINES maps
names to them (plugins add more through the `recllm.baselines` entry-point group).
"""

from __future__ import annotations

from typing import Any

from recllm.baselines.base import Baseline, TrainData, training_data
from recllm.registry import Registry

BASELINES = Registry("baseline", "recllm.baselines", {
    "random": "recllm.baselines.simple:RandomBaseline",
    "popularity": "recllm.baselines.simple:PopularityBaseline",
    "itemknn": "recllm.baselines.itemknn:ItemKNNBaseline",
    "bpr": "recllm.baselines.bpr:BPRBaseline",
    "ease": "recllm.baselines.ease:EASEBaseline",
    "sasrec": "recllm.baselines.sasrec:SASRecBaseline",
    "embedding": "recllm.baselines.embedding:EmbeddingBaseline",
    "bm25": "recllm.baselines.bm25:BM25Baseline",
})


def baseline_class(name: str) -> type[Baseline]:
    return BASELINES.get(name)


def get_baseline(name: str, train: TrainData, *, seed: int = 0,
                 options: dict[str, Any] | None = None) -> Baseline:
    """A fitted baseline by name; `options` are validated against its `Options` model."""
    cls = baseline_class(name)
    opts = cls.Options.parse(options, where=f"baseline_options.{name}")
    return cls(train, seed, opts)


__all__ = ["BASELINES", "Baseline", "TrainData", "baseline_class", "get_baseline",
           "training_data"]
