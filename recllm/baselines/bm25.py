"""BM25 (Robertson & Zaragoza 2009) as a zero-shot lexical baseline, through `bm25s`.

Documents are the items' text (recllm.baselines.itemtext); a user's query is the text of their
shown history (`case.history`, the window a prompt shows). No interactions are used, so it
works in a new domain; LLMRank uses it as the zero-shot anchor.

    score(q, d) = sum_{t in q} IDF(t) * f(t, d) (k1 + 1) / (f(t, d) + k1 (1 - b + b |d| / avgdl))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from recllm.baselines.base import Baseline, TrainData
from recllm.baselines.itemtext import item_texts
from recllm.data.schema import UserCase
from recllm.errors import RecllmError
from recllm.options import StrictOptions


class BM25Options(StrictOptions):
    k1: float = Field(1.5, ge=0, description="term-frequency saturation")
    b: float = Field(0.75, ge=0, le=1, description="document-length normalization")
    stopwords: str | None = Field("en", description="stopword list for bm25s ('en'), or none")


class BM25Baseline(Baseline):
    """Items scored by BM25 against the user's history text (see module docstring)."""

    name = "bm25"
    Options = BM25Options

    def __init__(self, train: TrainData, seed: int = 0, options: BM25Options | None = None):
        super().__init__(train, seed, options)
        try:
            import bm25s
        except ImportError as exc:
            raise RecllmError("the bm25 baseline needs the `bm25s` package",
                              hint="pip install 'recllm[baselines]'") from exc
        self._bm25s = bm25s
        self.texts = item_texts(train.items, train.catalog)
        tokens = bm25s.tokenize(self.texts, stopwords=self.options.stopwords, show_progress=False)
        self.vocab = tokens.vocab
        self.model = bm25s.BM25(k1=self.options.k1, b=self.options.b)
        self.model.index(tokens, show_progress=False)

    def scores(self, cases: Sequence[UserCase]) -> np.ndarray:
        out = np.zeros((len(cases), self.train.n_items))
        tie = self.train.counts / (self.train.counts.max() + 1.0) * 1e-6  # no overlap: popularity
        for r, case in enumerate(cases):
            idx = self.train.indices(case.history)
            words = self._bm25s.tokenize([" ".join(self.texts[i] for i in idx)],
                                         stopwords=self.options.stopwords, return_ids=False,
                                         show_progress=False)[0]
            known = [w for w in words if w in self.vocab]
            out[r] = (self.model.get_scores(known) if known else 0.0) + tie
        return out
