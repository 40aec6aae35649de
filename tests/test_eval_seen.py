"""Seen items (everything before the target) vs shown history (the prompt's window): nothing a
user already had is recommended, counted as new, or offered as a 'retrieved' candidate, even
when `max_history` cuts it out of the prompt."""

from __future__ import annotations

import json

from recllm.data import leave_one_out
from recllm.evaluate import EvalConfig, run_eval
from recllm.evaluate.rundir import read_records

from conftest import make_dataset

# u1 had the most popular item "7" long ago; a window of 2 no longer shows it.
HISTORIES = {
    "u1": [("7", 1, 5), ("1", 2, 4), ("2", 3, 3), ("3", 4, 4), ("4", 5, 4)],
    "u2": [("7", 1, 4), ("8", 2, 5), ("10", 3, 3)],
    "u3": [("7", 1, 4), ("9", 2, 5), ("11", 3, 3)],
    "u4": [("7", 1, 5), ("6", 2, 4), ("5", 3, 4)],
}


def test_case_keeps_every_seen_item_beyond_the_window():
    split = leave_one_out(make_dataset(HISTORIES), max_history=2)
    u1 = next(c for c in split.test if c.user_id == "u1")
    assert u1.history == ("2", "3") and u1.truncated == 2
    assert u1.seen == {"7", "1", "2", "3"} and "4" not in u1.seen


def _run(tmp_path, protocol, answers):
    cfg = EvalConfig(dataset="tiny", model="scripted-test", backend="scripted",
                     backend_options={"answers": answers}, users=None, max_history=2,
                     output=str(tmp_path / protocol), progress=False, ks=[1, 5],
                     ci_resamples=50, protocol=protocol, negatives=3,
                     template=None if protocol == "full" else "rank-sequential",
                     baselines=["popularity"])
    [run] = run_eval(cfg, dataset=make_dataset(HISTORIES), log=lambda m: None)
    return {s["user"]: s for s in read_records(run / "samples.jsonl")}


def test_full_protocol_excludes_items_cut_from_the_prompt(tmp_path):
    samples = _run(tmp_path, "full", {"u1": "1. Star Wars (1977)\n2. Heat (1995)"})
    u1 = samples["u1"]
    assert "7" not in u1["history"]                        # not shown ...
    assert "7" not in u1["systems"]["popularity"]["ranked"]  # ... but never recommended
    llm = u1["systems"]["scripted-test"]
    assert llm["ranked"] == ["4"]                          # Star Wars dropped, counted as a repeat
    assert llm["validity"]["history_repeats"] == 1


def test_retrieved_candidates_are_unseen(tmp_path):
    samples = _run(tmp_path, "retrieved", {})
    for s in samples.values():
        seen = {i for i, _, _ in HISTORIES[s["user"]][:-1]}
        assert not seen & set(s["candidates"]), s["user"]


def test_one_relevant_set_everywhere(tmp_path):
    """samples, results.json and report agree for a user with several targets."""
    from recllm.evaluate.metrics import relevant_items
    from recllm.report import load_runs

    sample = {"target": "a", "targets": ["a", "b"]}
    assert relevant_items(sample) == {"a", "b"}
    assert relevant_items({"target": "a"}) == {"a"}
    run = tmp_path / "multi"
    run.mkdir()
    cfg = EvalConfig(dataset="tiny", model=None, output=str(run), ks=[1, 5], ci_resamples=20)
    (run / "config.yaml").write_text(cfg.to_yaml())
    rec = {"i": 0, "user": "u", "target": "a", "targets": ["a", "b"], "history": [],
           "systems": {"popularity": {"kind": "baseline", "ranked": ["b", "x"],
                                      "metrics": {"hit@1": 1.0}}}}
    (run / "samples.jsonl").write_text(json.dumps(rec) + "\n")
    from recllm.evaluate import recompute
    assert recompute(run)["systems"]["popularity"]["metrics"]["hit@1"]["mean"] == 1.0
    [r] = load_runs([run])
    assert r.results["systems"]["popularity"]["metrics"]["hit@1"]["mean"] == 1.0
