"""Classical baselines, always shown next to the LLM on the same protocol and the same users."""

from __future__ import annotations

from recllm.baselines.base import Baseline, TrainData, training_data, user_seed
from recllm.baselines.itemknn import ItemKNNBaseline
from recllm.baselines.simple import PopularityBaseline, RandomBaseline
from recllm.errors import unknown

BASELINES: dict[str, type[Baseline]] = {
    "random": RandomBaseline,
    "popularity": PopularityBaseline,
    "itemknn": ItemKNNBaseline,
}


def get_baseline(name: str, train: TrainData, *, seed: int = 0, neighbors: int = 100) -> Baseline:
    """A fitted baseline by name ("random", "popularity", "itemknn")."""
    if name not in BASELINES:
        raise unknown("baseline", name, BASELINES)
    if name == "itemknn":
        return ItemKNNBaseline(train, seed, neighbors=neighbors)
    return BASELINES[name](train, seed)


__all__ = ["BASELINES", "Baseline", "TrainData", "get_baseline", "training_data", "user_seed",
           "ItemKNNBaseline", "PopularityBaseline", "RandomBaseline"]
