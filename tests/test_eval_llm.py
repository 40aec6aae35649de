"""The real transformers backend inside `recllm eval` (a tiny random Llama built offline), the
response cache making a re-run free, and every shipped eval config being valid."""

from __future__ import annotations

import json

import pytest
from conftest import eval_configs

from recllm.evaluate import EvalConfig, run_eval
from recllm.evaluate.config import load_config
from recllm.evaluate.rundir import read_records

CONFIGS = eval_configs()


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_are_valid(path):
    cfg = load_config(path)
    for name, point in cfg.sweep():
        resolved = point.resolved()
        assert resolved.protocol in ("full", "candidates", "retrieved")
        assert resolved.hash()


def test_transformers_backend_end_to_end_and_cached_rerun(tmp_path, tiny_dataset):
    pytest.importorskip("torch")
    from tiny_llm import build_tiny_model

    folder = build_tiny_model(tmp_path / "tiny")
    cfg = EvalConfig(dataset="tiny", model=str(folder), backend="transformers", users=None,
                     max_history=2, max_tokens=6, batch_size=4, progress=False,
                     protocol=["full", "candidates"], negatives=3, ks=[1, 5],
                     output=str(tmp_path / "a"), ci_resamples=50)
    first = run_eval(cfg, dataset=tiny_dataset, log=lambda m: None)
    for run in first:
        res = json.loads((run / "results.json").read_text())
        llm = res["systems"][str(folder)]
        assert llm["kind"] == "llm" and llm["metrics"]["hit@1"]["n"] == 4
        assert res["model"]["backend"]["engine"] == "transformers"
        assert llm["tokens"]["prompt"] > 0
        for s in read_records(run / "samples.jsonl"):
            rec = s["systems"][str(folder)]
            assert rec["prompt"][-1]["role"] == "user" and rec["error"] is None
            assert rec["completion_tokens"] <= 6
    # a second run of the same config sends nothing to the engine: all answers are cached
    again = run_eval(cfg.model_copy(update={"output": str(tmp_path / "b")}), dataset=tiny_dataset,
                     log=lambda m: None)
    for a, b in zip(first, again):
        events = [e for e in read_records(b / "events.jsonl") if "requests" in e]
        assert sum(e["requests"] for e in events) == sum(e["cached"] for e in events) == 4
        assert (a / "samples.jsonl").read_bytes() == (b / "samples.jsonl").read_bytes()


def test_penalty_keys_reach_the_requests(tiny_dataset):
    from recllm.backends import get_backend
    from recllm.evaluate.llm import LLMRecommender

    cfg = EvalConfig(dataset="tiny", model="scripted", repetition_penalty=1.3, presence_penalty=0.5).resolved()
    params = LLMRecommender(cfg, tiny_dataset, backend=get_backend("scripted", answers={})).params
    assert (params.repetition_penalty, params.frequency_penalty, params.presence_penalty) == (1.3, 0.0, 0.5)
