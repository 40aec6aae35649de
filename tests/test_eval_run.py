"""End-to-end runs on the tiny fixture with the scripted backend: files, metrics, resume,
determinism, recompute, failures and bad input."""

from __future__ import annotations

import json

import pytest

from recllm.errors import RecllmError
from recllm.evaluate import EvalConfig, recompute, run_eval
from recllm.evaluate.config import load_config
from recllm.evaluate.rundir import read_records

from echo_engine import PromptEcho

ANSWERS = {
    "u1": "1. Star Wars (1977)\n2. Heat (1995)\n3. Made Up Movie\n4. Star Wars",
    "u2": "Sure! Here are my picks: Heat, Fargo, The Godfather",
    "u3": "",
    "u4": "1. Fargo (1996)\n2. Toy Story",
}


def config(tmp_path, **kw) -> EvalConfig:
    base = dict(dataset="tiny", model="scripted-test", backend="scripted",
                backend_options={"answers": ANSWERS}, users=None, max_history=None,
                output=str(tmp_path / "run"), progress=False, ks=[1, 5, 10], batch_size=2,
                ci_resamples=200)
    base.update(kw)
    return EvalConfig(**base)


def systems(run_dir):
    return json.loads((run_dir / "results.json").read_text())["systems"]


def test_full_protocol_run_by_hand(tmp_path, tiny_dataset):
    [run] = run_eval(config(tmp_path), dataset=tiny_dataset, log=lambda m: None)
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "results.json", "samples.jsonl"}
    samples = {s["user"]: s for s in read_records(run / "samples.jsonl")}
    u1 = samples["u1"]["systems"]["scripted-test"]
    # u1 history 1,2,3,4 -> target 7: Star Wars first; Heat (1995) is in the history (dropped),
    # "Made Up Movie" is out of catalog, the second "Star Wars" a duplicate.
    assert samples["u1"]["target"] == "7" and u1["ranked"] == ["7"]
    assert u1["validity"] == {"asked": 10, "parsed": 4, "matched": 3, "out_of_catalog": 1,
                              "out_of_candidates": 0, "duplicates": 1, "history_repeats": 1,
                              "shortfall": 9, "parse_failure": 0, "error": 0}
    assert u1["metrics"]["ndcg@10"] == 1.0 and u1["metrics"]["rank"] == 1
    assert samples["u3"]["systems"]["scripted-test"]["validity"]["parse_failure"] == 1
    res = json.loads((run / "results.json").read_text())
    llm = res["systems"]["scripted-test"]
    assert list(res["systems"]) == ["scripted-test", "random", "popularity", "itemknn"]
    ndcg = [s["systems"]["scripted-test"]["metrics"]["ndcg@10"] for s in samples.values()]
    assert llm["metrics"]["ndcg@10"]["mean"] == pytest.approx(sum(ndcg) / 4)
    assert llm["validity"]["parse_failure_rate"]["mean"] == 0.25
    assert llm["validity"]["out_of_catalog_rate"]["mean"] == pytest.approx(
        sum(s["systems"]["scripted-test"]["validity"]["out_of_catalog"] for s in samples.values())
        / sum(s["systems"]["scripted-test"]["validity"]["parsed"] for s in samples.values()))
    assert res["protocol"]["name"] == "full" and res["config_hash"] and res["model"]["template_hash"]
    assert res["environment"]["versions"]["numpy"]
    # baselines never recommend history items and are cut at the same length as the LLM's list
    for s in samples.values():
        for name in ("random", "popularity", "itemknn"):
            ranked = s["systems"][name]["ranked"]
            assert len(ranked) <= 10 and not set(ranked) & set(s["history"])


def test_candidates_protocol_records_positions(tmp_path, tiny_dataset):
    [run] = run_eval(config(tmp_path, protocol="candidates", negatives=3), dataset=tiny_dataset,
                     log=lambda m: None)
    for s in read_records(run / "samples.jsonl"):
        cands = s["candidates"]
        assert len(cands) == 4 and cands[s["target_position"]] == s["target"]
        assert not set(cands) - {s["target"]} & set(s["history"])   # negatives are unseen
        for rec in s["systems"].values():
            assert set(rec["ranked"]) <= set(cands)
    res = json.loads((run / "results.json").read_text())
    assert res["position_bias"]["metric"] == "ndcg@4"
    assert res["protocol"]["negatives"] == 3


def test_same_config_same_samples_and_recompute(tmp_path, tiny_dataset):
    a = run_eval(config(tmp_path, output=str(tmp_path / "a"), protocol="candidates", negatives=4),
                 dataset=tiny_dataset, log=lambda m: None)[0]
    b = run_eval(config(tmp_path, output=str(tmp_path / "b"), protocol="candidates", negatives=4,
                        batch_size=3, workers=2), dataset=tiny_dataset, log=lambda m: None)[0]
    assert (a / "samples.jsonl").read_bytes() == (b / "samples.jsonl").read_bytes()
    assert recompute(a)["systems"] == systems(a)


def test_limit_then_resume_equals_uninterrupted(tmp_path, tiny_dataset):
    full = run_eval(config(tmp_path, output=str(tmp_path / "full")), dataset=tiny_dataset,
                    log=lambda m: None)[0]
    part = config(tmp_path, output=str(tmp_path / "part"), limit=2)
    run_eval(part, dataset=tiny_dataset, log=lambda m: None)
    assert len(read_records(tmp_path / "part" / "samples.jsonl")) == 2
    assert not (tmp_path / "part" / "results.json").exists()
    # a crash mid-write leaves half a line: resume cuts it and goes on
    with open(tmp_path / "part" / "samples.jsonl", "a") as fh:
        fh.write('{"i": 2, "user": "u3", "sys')
    run_eval(part.model_copy(update={"limit": None}), resume=True, dataset=tiny_dataset,
             log=lambda m: None)
    assert systems(tmp_path / "part") == systems(full)


def test_resume_refuses_changed_config_and_fresh_run_refuses_old_dir(tmp_path, tiny_dataset):
    cfg = config(tmp_path, limit=1)
    run_eval(cfg, dataset=tiny_dataset, log=lambda m: None)
    with pytest.raises(RecllmError, match="config changed"):
        run_eval(cfg.model_copy(update={"seed": 1}), resume=True, dataset=tiny_dataset,
                 log=lambda m: None)
    with pytest.raises(RecllmError, match="--resume"):
        run_eval(cfg, dataset=tiny_dataset, log=lambda m: None)


def test_backend_failure_is_recorded_and_run_goes_on(tmp_path, tiny_dataset):
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"key": k, "output": v}) + "\n"
                               for k, v in ANSWERS.items() if k != "u2"))
    cfg = config(tmp_path, backend_options={"path": str(answers)})
    [run] = run_eval(cfg, dataset=tiny_dataset, log=lambda m: None)
    llm = systems(run)["scripted-test"]
    assert [f["user"] for f in llm["failures"]] == ["u2"]
    assert llm["validity"]["error_rate"]["mean"] == 0.25
    assert llm["metrics"]["ndcg@10"]["n"] == 4    # a failed user scores 0, it is not dropped
    # the engine recovers (same config): retry_failed on resume redoes only the failed user
    answers.write_text("".join(json.dumps({"key": k, "output": v}) + "\n"
                               for k, v in ANSWERS.items()))
    run_eval(cfg.model_copy(update={"retry_failed": True}), resume=True, dataset=tiny_dataset,
             log=lambda m: None)
    assert systems(run)["scripted-test"]["failures"] == []
    assert [s["user"] for s in read_records(run / "samples.jsonl")][-1] == "u2"


def test_too_few_items_for_negatives(tmp_path, tiny_dataset):
    with pytest.raises(RecllmError, match="1 positive \\+ 20 negatives"):
        run_eval(config(tmp_path, protocol="candidates", negatives=20), dataset=tiny_dataset,
                 log=lambda m: None)


def test_users_without_enough_history_are_counted(tmp_path, tiny_dataset):
    [run] = run_eval(config(tmp_path, min_history=4), dataset=tiny_dataset, log=lambda m: None)
    res = json.loads((run / "results.json").read_text())
    assert res["users"]["evaluated"] == 2 and sum(res["users"]["skipped"].values()) == 2


def test_unknown_key_suggests(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: ml-100k\nnegativs: 19\n")
    with pytest.raises(RecllmError, match="did you mean 'negatives'"):
        load_config(path)
    cfg = load_config(path.with_name("none.yaml") if False else None, {"negatives": 5})
    assert cfg.negatives == 5


def test_sweep_expands_into_subruns(tmp_path, tiny_dataset):
    cfg = config(tmp_path, protocol=["full", "candidates"], negatives=3, max_history=[2, None])
    dirs = run_eval(cfg, dataset=tiny_dataset, log=lambda m: None)
    assert [d.name for d in dirs] == [
        "protocol=full,max_history=2", "protocol=full,max_history=none",
        "protocol=candidates,max_history=2", "protocol=candidates,max_history=none"]
    short = read_records(dirs[0] / "samples.jsonl")
    assert all(len(s["history"]) <= 2 for s in short)


def test_baselines_only(tmp_path, tiny_dataset):
    [run] = run_eval(config(tmp_path, model=None), dataset=tiny_dataset, log=lambda m: None)
    assert list(systems(run)) == ["random", "popularity", "itemknn"]


def test_bootstrap_reasks_with_reshuffled_candidates(tmp_path, tiny_dataset):
    [run] = run_eval(config(tmp_path, protocol="candidates", negatives=3, reasks=2),
                     dataset=tiny_dataset, log=lambda m: None)
    res = json.loads((run / "results.json").read_text())
    assert res["protocol"]["reasks"] == 2 and res["protocol"]["reasks_merge"] == "mrr"
    for s in read_records(run / "samples.jsonl"):
        rec = s["systems"]["scripted-test"]
        if rec["error"]:
            continue
        asks = rec["asks"]
        assert len(asks) == 3 and len(rec["raw"]) == 3
        assert asks[0]["candidates"] == s["candidates"]
        assert all(sorted(a["candidates"]) == sorted(s["candidates"]) for a in asks)
        assert set(rec["ranked"]) == {i for a in asks for i in a["ranked"]}


def test_retrieved_protocol(tmp_path, tiny_dataset):
    [run] = run_eval(config(tmp_path, protocol="retrieved", negatives=2, retriever="popularity"),
                     dataset=tiny_dataset, log=lambda m: None)
    res = json.loads((run / "results.json").read_text())
    assert res["protocol"]["retriever"] == "popularity" and res["protocol"]["candidates"] == 3
    samples = read_records(run / "samples.jsonl")
    for s in samples:
        assert len(s["candidates"]) == 3 and not set(s["candidates"]) & set(s["history"])
        pos = s["target_position"]
        assert (pos is None) == (s["target"] not in s["candidates"])
    assert "missing" in json.dumps(res["position_bias"]) or all(
        s["target_position"] is not None for s in samples)


def test_rescore_a_previous_run_from_its_samples(tmp_path, tiny_dataset):
    """The scripted backend reads a run's own samples.jsonl: re-scoring needs no model."""
    [a] = run_eval(config(tmp_path, output=str(tmp_path / "a")), dataset=tiny_dataset,
                   log=lambda m: None)
    [b] = run_eval(config(tmp_path, output=str(tmp_path / "b"),
                          backend_options={"path": str(a / "samples.jsonl")}),
                   dataset=tiny_dataset, log=lambda m: None)
    first, again = systems(a), systems(b)
    # labelled by what served the answers, not the configured default model
    assert list(again) == ["scripted-test (rescored)", "random", "popularity", "itemknn"]
    assert again.pop("scripted-test (rescored)") == first.pop("scripted-test")
    assert first == again
    assert json.loads((b / "results.json").read_text())["model"]["model"] == \
        "scripted-test (rescored)"


def test_rescoring_a_reask_run_gives_every_ask_its_own_answer(tmp_path, tiny_dataset):
    cfg = dict(protocol="candidates", negatives=3, reasks=2)
    echo = PromptEcho(tiny_dataset.catalog.table["raw_title"])
    [a] = run_eval(config(tmp_path, output=str(tmp_path / "a"), **cfg), backend=echo,
                   dataset=tiny_dataset, log=lambda m: None)
    [b] = run_eval(config(tmp_path, output=str(tmp_path / "b"), **cfg,
                          backend_options={"path": str(a / "samples.jsonl")}),
                   dataset=tiny_dataset, log=lambda m: None)
    first, again = read_records(a / "samples.jsonl"), read_records(b / "samples.jsonl")
    assert any(len({tuple(x["ranked"]) for x in s["systems"]["scripted-test"]["asks"]}) > 1
               for s in first)  # the asks really differ
    for s, t in zip(first, again):
        mine, theirs = s["systems"]["scripted-test"], t["systems"]["scripted-test (rescored)"]
        assert theirs["asks"] == mine["asks"] and theirs["ranked"] == mine["ranked"]


def test_replayed_answers_are_not_labelled_as_the_default_model(tmp_path):
    from recllm.evaluate.llm import system_label

    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"key": "u1", "output": "Heat"}\n')
    cfg = EvalConfig(backend="scripted", backend_options={"path": str(answers)})
    assert system_label(cfg) == "scripted:answers.jsonl"
    assert system_label(cfg.model_copy(update={"model": "gpt-4o"})) == "gpt-4o"
    assert system_label(EvalConfig()) == "smollm2-135m-instruct"


def test_resume_refuses_changed_data_or_weights(tmp_path, tiny_dataset):
    from conftest import HISTORIES, make_dataset

    cfg = config(tmp_path, limit=2)
    run_eval(cfg, dataset=tiny_dataset, log=lambda m: None)
    changed = {**HISTORIES, "u4": [("2", 1, 5), ("3", 2, 4), ("9", 3, 4)]}
    with pytest.raises(RecllmError, match="the dataset changed since this run started"):
        run_eval(cfg, resume=True, dataset=make_dataset(changed), log=lambda m: None)

    class Retrained(PromptEcho):
        def identity(self):
            return {"engine": "echo", "revision": "fine-tuned-in-place"}

    echo = PromptEcho(tiny_dataset.catalog.table["raw_title"])
    run_eval(cfg.model_copy(update={"output": str(tmp_path / "w")}), backend=echo,
             dataset=tiny_dataset, log=lambda m: None)
    with pytest.raises(RecllmError, match=r"model changed.*backend.revision: None -> 'fine-tuned"):
        run_eval(cfg.model_copy(update={"output": str(tmp_path / "w"), "limit": None}),
                 resume=True, backend=Retrained(echo.titles), dataset=tiny_dataset,
                 log=lambda m: None)
    # same data, same engine: resuming finishes the run
    [done] = run_eval(cfg.model_copy(update={"limit": None}), resume=True,
                      dataset=tiny_dataset, log=lambda m: None)
    assert len(read_records(done / "samples.jsonl")) == 4


def test_torn_events_line_is_repaired_on_resume(tmp_path, tiny_dataset):
    cfg = config(tmp_path, limit=2)
    [run] = run_eval(cfg, dataset=tiny_dataset, log=lambda m: None)
    with open(run / "events.jsonl", "a") as fh:
        fh.write('{"users": 2, "seco')          # killed mid-write
    [run] = run_eval(cfg.model_copy(update={"limit": None}), resume=True, dataset=tiny_dataset,
                     log=lambda m: None)
    events = read_records(run / "events.jsonl")   # every line whole again
    assert (run / "events.jsonl").read_text().endswith("\n") and events
    assert json.loads((run / "results.json").read_text())["users"]["evaluated"] == 4


def test_workers_are_not_forked_from_the_process_holding_the_engine(tmp_path, tiny_dataset):
    """An engine thread exists (as torch's or httpx's would): workers come from a fork server,
    so no lock of it is copied into them; a single-threaded process forks."""
    import os
    import threading

    from recllm.evaluate import pipeline
    from recllm.evaluate.llm import LLMRecommender
    from recllm.evaluate.pipeline import Pipeline, _STATE
    from recllm.evaluate.setup import build_plan

    cfg = config(tmp_path, workers=2).resolved()
    plan = build_plan(cfg, log=lambda m: None, dataset=tiny_dataset)
    llm = LLMRecommender(cfg, plan.dataset)
    stop = threading.Event()
    engine = threading.Thread(target=stop.wait, daemon=True)
    engine.start()
    try:
        assert pipeline.start_method() in ("forkserver", "spawn")
        pipe = Pipeline(cfg, plan, {c.user_id: i for i, c in enumerate(plan.cases)}, llm,
                        plan.cases, workers=2)
        try:
            assert pipe.pool.apply(os.getppid) != os.getpid()
            assert pipe.pool.apply(_worker_has_no_engine)
        finally:
            pipe.close()
    finally:
        stop.set()
        engine.join()
    assert not _STATE
    pipeline._threads, saved = (lambda: 1), pipeline._threads
    try:
        assert pipeline.start_method() == "fork"
    finally:
        pipeline._threads = saved


def _worker_has_no_engine():
    from recllm.evaluate.pipeline import _STATE
    return _STATE["llm"].backend is None and _STATE["plan"] is not None


def test_old_config_keys_are_accepted_with_a_note(capsys):
    cfg = EvalConfig.parse({"bootstrap": 3, "bootstrap_merge": "borda", "knn_neighbors": 7})
    assert (cfg.reasks, cfg.reasks_merge) == (3, "borda")
    assert cfg.baseline_options == {"itemknn": {"neighbors": 7}}
    err = capsys.readouterr().err
    assert "'bootstrap' is now 'reasks'" in err and "knn_neighbors" in err


def test_unknown_protocol_and_baseline_options_are_refused():
    with pytest.raises(RecllmError, match="unknown protocol 'candidate'.*did you mean 'candidates'"):
        EvalConfig.parse({"protocol": "candidate"})
    with pytest.raises(RecllmError, match="unknown baseline 'itemnn'.*did you mean 'itemknn'"):
        EvalConfig.parse({"baseline_options": {"itemnn": {}}})
    with pytest.raises(RecllmError, match="baseline_options.itemknn: unknown option 'neigbors'"):
        from recllm.baselines import get_baseline, training_data
        from conftest import make_dataset
        get_baseline("itemknn", training_data(make_dataset(), []), options={"neigbors": 3})
