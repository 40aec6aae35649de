"""A ranking metric: precision@k = hits in the top k / k, with its report column."""

import numpy as np

from recllm.evaluate.metrics import Metric


def precision(pos_index: np.ndarray, pos_len: np.ndarray) -> np.ndarray:
    return np.cumsum(pos_index, axis=1) / np.arange(1, pos_index.shape[1] + 1)


METRIC = Metric("demo_precision", "ranking", True, precision, column="demo_prec")
