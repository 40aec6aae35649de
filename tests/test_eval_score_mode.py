"""Score mode: candidates ranked by the engine's log-probability of each as the answer's first
line, with sum / mean / pmi; nothing parsed; errors are the user's; a real (tiny) engine."""

from __future__ import annotations

import json

import pytest

from recllm.errors import RecllmError
from recllm.evaluate import EvalConfig, run_eval
from recllm.evaluate.rundir import read_records


class LengthScorer:
    """log P(c) = -(characters of c), halved when the prompt shows a history: so `sum` prefers
    short titles, and pmi (history prompt minus empty-history prompt) prefers long ones."""

    name = "length"
    can_score = True

    def __init__(self):
        self.requests = []

    def identity(self):
        return {"engine": "length"}

    def score(self, requests):
        from recllm.backends import ScoreResult

        self.requests += requests
        out = []
        for r in requests:
            text = json.dumps(r.messages)
            factor = 1.0 if "(none yet)" in text else 0.5
            out.append(ScoreResult([-factor * len(c) for c in r.continuations],
                                   [len(c.split()) for c in r.continuations], prompt_tokens=10))
        return out

    def generate(self, requests):
        raise AssertionError("score mode never generates")

    def close(self):
        pass


def _run(tmp_path, dataset, norm, engine, **kw):
    cfg = EvalConfig(dataset="tiny", model="length-test", users=None, max_history=None,
                     output=str(tmp_path / norm), progress=False, ks=[1, 4], ci_resamples=20,
                     protocol="candidates", negatives=3, mode="score", score_norm=norm,
                     **{"template": "rank-sequential", **kw})  # its empty history reads "(none yet)"
    [run] = run_eval(cfg, dataset=dataset, backend=engine, log=lambda m: None)
    return run, {s["user"]: s for s in read_records(run / "samples.jsonl")}


@pytest.mark.parametrize("norm", ["sum", "pmi"])
def test_candidates_are_ranked_by_their_scores(tmp_path, tiny_dataset, norm):
    engine = LengthScorer()
    run, samples = _run(tmp_path, tiny_dataset, norm, engine)
    for s in samples.values():
        rec = s["systems"]["length-test"]
        assert rec["mode"] == "score" and rec["error"] is None
        assert sorted(rec["ranked"]) == sorted(s["candidates"])
        assert rec["validity"]["parse_failure"] == 0 and rec["validity"]["shortfall"] == 0
        scores = [rec["scores"][i] for i in rec["ranked"]]
        assert scores == sorted(scores, reverse=True)
        labels = {i: len(tiny_dataset.catalog.item(i)["title"]) for i in s["candidates"]}
        lengths = [labels[i] for i in rec["ranked"]]
        assert lengths == (sorted(lengths) if norm == "sum" else sorted(lengths, reverse=True))
    asked = [r for r in engine.requests if not r.key.endswith("#prior")]
    assert len(asked) == 4 and all(c.startswith("1. ") and c.endswith("\n")
                                   for r in asked for c in r.continuations)
    assert len(engine.requests) == (8 if norm == "pmi" else 4)
    res = json.loads((run / "results.json").read_text())
    assert res["systems"]["length-test"]["validity"]["parse_failure_rate"]["mean"] == 0.0


def test_score_mode_needs_candidates_and_a_scoring_engine(tmp_path, tiny_dataset):
    with pytest.raises(RecllmError, match="mode 'score' ranks shown candidates"):
        EvalConfig(protocol="full", mode="score").resolved()
    from recllm.backends import Backend

    class GenerateOnly(Backend):
        name = "generate-only"

        def generate(self, requests):
            return []

    with pytest.raises(RecllmError, match="'generate-only' cannot score continuations"):
        _run(tmp_path, tiny_dataset, "sum", GenerateOnly())


def test_real_engine_scores_through_the_cache(tmp_path, tiny_dataset):
    pytest.importorskip("torch")
    from tiny_llm import build_tiny_model

    folder = build_tiny_model(tmp_path / "tiny")
    cfg = EvalConfig(dataset="tiny", model=str(folder), backend="transformers", users=None,
                     max_history=2, progress=False, protocol="candidates", negatives=3,
                     mode="score", score_norm="mean", ks=[1, 4], ci_resamples=20,
                     output=str(tmp_path / "a"))
    [a] = run_eval(cfg, dataset=tiny_dataset, log=lambda m: None)
    [b] = run_eval(cfg.model_copy(update={"output": str(tmp_path / "b")}), dataset=tiny_dataset,
                   log=lambda m: None)
    assert (a / "samples.jsonl").read_bytes() == (b / "samples.jsonl").read_bytes()
    events = [e for e in read_records(b / "events.jsonl") if "requests" in e]
    assert sum(e["cached"] for e in events) == sum(e["requests"] for e in events) == 4
    for s in read_records(a / "samples.jsonl"):
        rec = s["systems"][str(folder)]
        assert rec["error"] is None and len(rec["scores"]) == 4
