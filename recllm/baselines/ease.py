"""EASE^R (Steck 2019): a linear item-item model with a closed-form solution.

    G = X^T X + lambda I,   P = G^-1,   B_ij = -P_ij / P_jj  (B_jj = 0),   score_u = x_u B

X is the binary users x items training matrix (held-out targets never count). A user's row
x_u is every item they saw before the target (`case.seen`: the whole history, not only the
window a prompt shows). The dense inverse needs about three items x items float64 matrices,
so the item count is bounded: by `max_items` when set, else by what the machine's available
memory holds (checked before anything is allocated, with the limit named).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import Field

from recllm.baselines.base import Baseline, TrainData, require_data
from recllm.baselines.fitcache import cached_fit
from recllm.data.schema import UserCase
from recllm.errors import RecllmError
from recllm.options import StrictOptions

VERSION = "ease-1"
DENSE_COPIES = 3        # G, its inverse and B live at once (float64)
MEMORY_SHARE = 0.5      # of the available memory, leaving the rest to the run


class EASEOptions(StrictOptions):
    l2: float = Field(500.0, gt=0, description="lambda: L2 penalty on the item-item weights")
    max_items: int | None = Field(None, ge=1, description="refuse above this many items "
                                  "(default: what half the available memory holds)")


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else physical pages free per sysconf."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def item_limit() -> int:
    """The largest item count whose dense solve fits in MEMORY_SHARE of available memory."""
    return int(math.sqrt(MEMORY_SHARE * available_bytes() / (DENSE_COPIES * 8)))


class EASEBaseline(Baseline):
    """EASE^R (see module docstring)."""

    name = "ease"
    Options = EASEOptions
    trains = True

    def __init__(self, train: TrainData, seed: int = 0, options: EASEOptions | None = None):
        super().__init__(train, seed, options)
        require_data(train, self.name, items=2, pairs=2)
        limit = self.options.max_items or item_limit()
        n = train.n_items
        if n > limit:
            need = DENSE_COPIES * 8 * n * n / 2**30
            raise RecllmError(
                f"EASE needs a dense {n:,} x {n:,} inverse (about {need:.1f} GiB); the limit "
                f"here is {limit:,} items", where="baseline_options.ease",
                hint="use bpr or itemknn for this catalog, filter rare items out of the "
                     "dataset, or raise max_items on a machine with more memory")
        self.weights = cached_fit(self, VERSION, self._fit)["weights"]

    def _fit(self):
        x = self.train.matrix
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.options.l2
        p = np.linalg.inv(gram)
        del gram
        b = p / (-np.diag(p))
        b[np.diag_indices_from(b)] = 0.0
        if not np.isfinite(b).all():
            raise RecllmError("EASE solve gave non-finite weights; nothing was cached",
                              where="baseline_options.ease.l2", hint="raise l2")
        return {"weights": b.astype(np.float32)}, {"device": "cpu"}

    def scores(self, cases: Sequence[UserCase]) -> np.ndarray:
        rows = np.zeros((len(cases), self.train.n_items), dtype=np.float32)
        for r, case in enumerate(cases):
            rows[r, self.train.indices(case.seen)] = 1.0
        tie = self.train.counts / (self.train.counts.max() + 1.0) * 1e-6  # empty rows: popularity
        return (rows @ self.weights).astype(np.float64) + tie
