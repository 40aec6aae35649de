"""A baseline: items by id, alphabetically (typed options, no training)."""

from collections.abc import Sequence

import numpy as np

from recllm.baselines.base import Baseline
from recllm.options import StrictOptions


class AlphabetBaseline(Baseline):
    name = "alphabet"
    trains = False

    class Options(StrictOptions):
        reverse: bool = False

    def scores(self, cases: Sequence) -> np.ndarray:
        order = np.argsort(np.argsort(self.train.items.astype(str)))  # rank of each id
        row = order.astype(float) if self.options.reverse else -order.astype(float)
        return np.broadcast_to(row, (len(cases), self.train.n_items))
