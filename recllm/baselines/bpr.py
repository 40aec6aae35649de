"""BPR-MF (Rendle et al. 2009) through the `implicit` library: matrix factorization trained on
sampled (user, seen item, unseen item) triples to rank the seen item higher.

    max  sum_(u,i,j) ln sigma(x_ui - x_uj) - reg * ||theta||^2,   x_ui = p_u . q_i + b_i

Trained on the training interactions only (`TrainData`: held-out targets never count). A user's
score is their learned factor dot every item's, so it reflects the user's whole training
history (everything before the target), not only the window a prompt shows; a user absent
from training gets popularity. CPU by default (`device: auto` takes implicit's CUDA path where
it was built with CUDA). One thread is bit-reproducible; more threads train in parallel
(Hogwild updates), faster but not byte-identical from run to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from recllm.baselines.base import Baseline, TrainData, require_data
from recllm.baselines.fitcache import cached_fit
from recllm.data.schema import UserCase
from recllm.errors import RecllmError
from recllm.options import StrictOptions

VERSION = "bpr-1"  # bump when the fitted parameters change for the same options


class BPROptions(StrictOptions):
    factors: int = Field(64, ge=1, le=4096, description="latent dimensions")
    learning_rate: float = Field(0.01, gt=0, description="SGD step size")
    regularization: float = Field(0.01, ge=0, description="L2 penalty on factors")
    iterations: int = Field(200, ge=1, description="passes over the training pairs")
    threads: int = Field(1, ge=0, description="training threads (0 = all cores; > 1 is not "
                         "bit-reproducible)")
    device: Literal["auto", "cpu", "cuda"] = Field("cpu", description="auto = CUDA when implicit has it")


def _use_gpu(device: str) -> bool:
    try:
        import implicit.gpu
    except ImportError:
        return False
    if device == "cuda" and not implicit.gpu.HAS_CUDA:
        raise RecllmError("implicit was built without CUDA", where="baseline_options.bpr.device",
                          hint="use device: cpu (or auto), or install implicit with CUDA support")
    return device != "cpu" and implicit.gpu.HAS_CUDA


class BPRBaseline(Baseline):
    """BPR matrix factorization (see module docstring)."""

    name = "bpr"
    Options = BPROptions
    trains = True

    def __init__(self, train: TrainData, seed: int = 0, options: BPROptions | None = None):
        super().__init__(train, seed, options)
        require_data(train, self.name, items=2, pairs=2)
        state = cached_fit(self, VERSION, self._fit)
        self.user_factors, self.item_factors = state["user_factors"], state["item_factors"]

    def _fit(self):
        try:
            import implicit  # noqa: F401
        except ImportError as exc:
            raise RecllmError("the bpr baseline needs the `implicit` package",
                              hint="pip install 'recllm[baselines]'") from exc
        from implicit.bpr import BayesianPersonalizedRanking
        from threadpoolctl import threadpool_limits

        o = self.options
        gpu = _use_gpu(o.device)
        model = BayesianPersonalizedRanking(
            factors=o.factors, learning_rate=o.learning_rate, regularization=o.regularization,
            iterations=o.iterations, use_gpu=gpu, num_threads=o.threads, random_state=self.seed)
        from implicit.recommender_base import ModelFitError

        try:
            with threadpool_limits(1, "blas"):  # implicit warns (and slows) under threaded BLAS
                model.fit(self.train.matrix, show_progress=False)
        except ModelFitError:                    # implicit's own NaN check
            users = items = np.array([np.nan])
        else:
            model = model.to_cpu() if gpu else model
            users, items = np.asarray(model.user_factors), np.asarray(model.item_factors)
        if not (np.isfinite(users).all() and np.isfinite(items).all()):
            raise RecllmError("BPR training diverged (non-finite factors); nothing was cached",
                              where="baseline_options.bpr",
                              hint="lower learning_rate or raise regularization")
        return {"user_factors": users, "item_factors": items}, {"device": "cuda" if gpu else "cpu"}

    def scores(self, cases: Sequence[UserCase]) -> np.ndarray:
        out = np.zeros((len(cases), self.train.n_items))
        pop = self.train.counts / (self.train.counts.max() + 1.0)
        for r, case in enumerate(cases):
            row = self.train.users.get(case.user_id)
            out[r] = self.item_factors @ self.user_factors[row] if row is not None else pop
        return out
