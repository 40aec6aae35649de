"""Every config in eval/configs/ gives byte-identical samples.jsonl from one commit to the next,
unless a change means to alter them: refactors must not move a single byte.

Each config runs on a seeded synthetic movie dataset (60 items, 40 users) with a scripted
engine whose answer depends only on the prompt, so rendering, parsing, grounding, protocols,
baselines and metrics all feed the bytes. The SHA-256 of each run's samples.jsonl is pinned in
tests/data/golden_samples.json; after an intended change, rewrite it with

    .venv/bin/python tests/test_golden_samples.py --update

and say in the commit which figures moved and why.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import eval_configs
from echo_engine import PromptEcho

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden_samples.json"
CONFIGS = eval_configs()


def synthetic_dataset():
    from recllm.data import build
    from recllm.data.schema import RecDataset

    rng = np.random.default_rng(7)
    ids = [str(i) for i in range(1, 61)]
    words = ["Night", "River", "Glass", "Summer", "Iron", "Paper", "Silent", "Golden", "Wild", "Blue"]
    raws = [f"{words[i % 10]} {words[(i * 7 + 3) % 10]} {i} ({1950 + i})" for i in range(60)]
    raws[4] = "Island, The (1983)"
    raws[5] = "Island (1989)"
    catalog, _ = build.make_catalog(ids, raws, where="synthetic", domain="movie",
                                    genres=[["Drama"] if i % 2 else ["Comedy"] for i in range(60)])
    weights = 1.0 / np.arange(1, 61) ** 0.7
    rows = []
    for u in range(40):
        n = int(rng.integers(6, 30))
        items = rng.choice(60, size=n, replace=False, p=weights / weights.sum())
        rows += [(f"u{u}", ids[i], 1000 * u + t, float(rng.integers(1, 6))) for t, i in enumerate(items)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    return RecDataset("synthetic", inter, catalog, domain="movie", domain_plural="movies")


def run_config(path: Path, out: Path) -> dict[str, str]:
    """{sub-run name: sha256 of its samples.jsonl} for one config on the synthetic data."""
    from recllm.evaluate import load_config, run_eval

    data = synthetic_dataset()
    overrides = {"users": None, "output": str(out), "progress": False, "ci_resamples": 20}
    cfg = load_config(path, overrides)
    titles = [data.catalog.table.loc[i, "raw_title"] for i in data.catalog]
    import recllm.data
    real = recllm.data.load_dataset
    # demonstrations (`demos_from`) come from the synthetic data too: no download in tests
    recllm.data.load_dataset = lambda name, **kw: data if name == cfg.demos_from else real(name, **kw)
    try:
        dirs = run_eval(cfg, dataset=data, log=lambda m: None, backend=PromptEcho(titles)
                        if cfg.model is not None else None)
    finally:
        recllm.data.load_dataset = real
    return {str(d.relative_to(out)): pinned_hash(d / "samples.jsonl") for d in dirs}


# Systems trained or encoded by torch in float32 follow the CPU's instruction set (AVX-512 vs
# AVX2): their rankings, and the intra-list diversity read from the embedding baseline's
# vectors, move in the last digits between machines though not between runs on one
# (tests/test_baselines_trained.py pins that). They are left out of the pinned bytes.
CPU_DEPENDENT = {"sasrec", "embedding"}


def pinned_hash(samples: Path) -> str:
    raw = samples.read_bytes()
    lines = [json.loads(line) for line in raw.splitlines()]
    if not any(CPU_DEPENDENT & set(line["systems"]) for line in lines):
        return hashlib.sha256(raw).hexdigest()
    for line in lines:
        line["systems"] = {name: {k: v for k, v in record.items() if k != "diversity"}
                           for name, record in line["systems"].items() if name not in CPU_DEPENDENT}
    return hashlib.sha256("\n".join(json.dumps(line) for line in lines).encode()).hexdigest()


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_samples_are_byte_identical(path, tmp_path):
    golden = json.loads(GOLDEN.read_text())
    assert path.stem in golden, f"no golden hashes for {path.name}: run this file with --update"
    assert run_config(path, tmp_path / path.stem) == golden[path.stem]


if __name__ == "__main__":
    import os
    import tempfile

    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/test_golden_samples.py --update")
    os.environ.setdefault("RECLLM_HOME", tempfile.mkdtemp())
    hashes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for p in CONFIGS:
            hashes[p.stem] = run_config(p, Path(tmp) / p.stem)
            print(p.stem, hashes[p.stem])
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(hashes, indent=2, sort_keys=True) + "\n")
