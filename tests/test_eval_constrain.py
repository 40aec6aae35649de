"""`constrain: catalog | candidates` in an eval: a (tiny, random) model can only write catalog
titles or the shown candidates, never the user's seen items; bad combinations are refused."""

from __future__ import annotations

import pytest

from recllm.errors import RecllmError
from recllm.evaluate import EvalConfig, run_eval
from recllm.evaluate.rundir import read_records


@pytest.mark.parametrize("protocol,constrain", [("full", "catalog"), ("candidates", "candidates")])
def test_constrained_answers_ground_completely(tmp_path, tiny_dataset, protocol, constrain):
    pytest.importorskip("torch")
    from tiny_llm import build_bpe_model

    labels = [f"{i}. {tiny_dataset.catalog[x]} ({tiny_dataset.catalog.item(x)['year']})\n"
              for i, x in enumerate(tiny_dataset.catalog, 1)]
    folder = build_bpe_model(tmp_path / "tiny", labels * 3 + ["recommend movies user assistant"])
    cfg = EvalConfig(dataset="tiny", model=str(folder), backend="transformers", users=None,
                     max_history=2, max_tokens=40, k=3, progress=False, protocol=protocol,
                     negatives=3, constrain=constrain, ks=[1, 3], ci_resamples=20,
                     output=str(tmp_path / constrain))
    [run] = run_eval(cfg, dataset=tiny_dataset, log=lambda m: None)
    for s in read_records(run / "samples.jsonl"):
        rec = s["systems"][str(folder)]
        assert rec["error"] is None and rec["parsed"], rec["raw"]
        v = rec["validity"]
        assert v["out_of_catalog"] == 0 and v["parse_failure"] == 0 and v["out_of_candidates"] == 0
        if protocol == "full":
            assert v["history_repeats"] == 0   # seen items are excluded from what it may write


def test_bad_constraint_combinations_are_refused():
    with pytest.raises(RecllmError, match="constrain 'candidates' needs shown candidates"):
        EvalConfig(protocol="full", constrain="candidates").resolved()
    with pytest.raises(RecllmError, match="score mode generates none"):
        EvalConfig(protocol="candidates", mode="score", constrain="candidates").resolved()
