"""Batch files: export -> answer with an engine -> import equals a direct run; bad files refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from echo_engine import PromptEcho
from recllm.evaluate import batchfiles
from recllm.evaluate.config import EvalConfig
from recllm.evaluate.runner import run_one
from recllm.errors import RecllmError


def cfg_for(tmp_path: Path, **kw) -> EvalConfig:
    base = dict(dataset="tiny", model="echo-test", users=None, ci_resamples=10, progress=False,
                batch_size=2, baselines=["popularity"])
    return EvalConfig(**(base | kw)).resolved()


def echo(ds):
    return PromptEcho(ds.catalog.table["raw_title"])


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]



@pytest.mark.parametrize("protocol", ["full", "candidates"])
def test_export_answer_import_equals_a_direct_run(tmp_path, tiny_dataset, protocol):
    kw = dict(protocol=protocol, negatives=3, reasks=1 if protocol == "candidates" else 0)
    direct = tmp_path / "direct"
    run_one(cfg_for(tmp_path, **kw), direct, backend=echo(tiny_dataset), dataset=tiny_dataset)

    requests, answers, via = tmp_path / "req.jsonl", tmp_path / "ans.jsonl", tmp_path / "via"
    assert run_one(cfg_for(tmp_path, export_requests=str(requests), **kw), via,
                   dataset=tiny_dataset) is None
    rows = read(requests)
    asks = 2 if protocol == "candidates" else 1
    assert len(rows) == 4 * asks and not (via / "samples.jsonl").exists()
    assert {r["method"] for r in rows} == {"POST"} and {r["url"] for r in rows} == {"/v1/chat/completions"}
    assert rows[0]["custom_id"].startswith(cfg_for(tmp_path, **kw).hash() + ":")
    assert rows[0]["body"]["model"] == "echo-test"
    batchfiles.answer_file(requests, answers, echo(tiny_dataset))

    run_one(cfg_for(tmp_path, import_answers=str(answers), **kw), via, dataset=tiny_dataset)
    assert (via / "samples.jsonl").read_bytes() == (direct / "samples.jsonl").read_bytes()
    a, b = (json.loads((d / "results.json").read_text()) for d in (direct, via))
    assert a["systems"] == b["systems"]


def test_missing_and_failed_answers_are_errors_then_a_second_batch_finishes(tmp_path, tiny_dataset):
    requests, answers, run = tmp_path / "req.jsonl", tmp_path / "ans.jsonl", tmp_path / "run"
    run_one(cfg_for(tmp_path, export_requests=str(requests)), run, dataset=tiny_dataset)
    batchfiles.answer_file(requests, answers, echo(tiny_dataset))
    lines = answers.read_text().splitlines()
    failed = json.loads(lines[1]) | {"response": {"status_code": 500, "body": {"error": "oom"}}}
    answers.write_text("\n".join([lines[0], json.dumps(failed), lines[3]]) + "\n")  # u3 missing

    run_one(cfg_for(tmp_path, import_answers=str(answers)), run, dataset=tiny_dataset)
    errors = {s["user"]: s["systems"]["echo-test"]["error"] for s in read(run / "samples.jsonl")}
    assert errors["u1"] is None and errors["u4"] is None
    assert "HTTP 500" in errors["u2"] and "no answer for" in errors["u3"]

    # second batch: export only the failed users' requests, answer them, import
    retry, retry_answers = tmp_path / "retry.jsonl", tmp_path / "retry-answers.jsonl"
    run_one(cfg_for(tmp_path, export_requests=str(retry), retry_failed=True), run, resume=True,
            dataset=tiny_dataset)
    assert [r["custom_id"].split(":")[1] for r in read(retry)] == ["u2#ask0", "u3#ask0"]
    batchfiles.answer_file(retry, retry_answers, echo(tiny_dataset))
    run_one(cfg_for(tmp_path, import_answers=str(retry_answers)), run, resume=True,
            dataset=tiny_dataset)
    samples = read(run / "samples.jsonl")
    assert sorted(s["user"] for s in samples) == ["u1", "u2", "u3", "u4"]
    assert all(s["systems"]["echo-test"]["error"] is None for s in samples)


def test_answers_of_another_run_and_duplicates_are_refused(tmp_path, tiny_dataset):
    requests, answers = tmp_path / "req.jsonl", tmp_path / "ans.jsonl"
    run_one(cfg_for(tmp_path, export_requests=str(requests)), tmp_path / "a", dataset=tiny_dataset)
    batchfiles.answer_file(requests, answers, echo(tiny_dataset))
    with pytest.raises(RecllmError, match="belongs to another run") as exc:
        run_one(cfg_for(tmp_path, import_answers=str(answers), seed=7), tmp_path / "b",
                dataset=tiny_dataset)
    assert "ans.jsonl:1" in str(exc.value)
    first = answers.read_text().splitlines()[0]
    answers.write_text(first + "\n" + first + "\n")
    with pytest.raises(RecllmError, match="appears twice") as exc:
        run_one(cfg_for(tmp_path, import_answers=str(answers)), tmp_path / "c", dataset=tiny_dataset)
    assert "ans.jsonl:2" in str(exc.value)


def test_bad_lines_and_score_mode_are_one_line_errors(tmp_path, tiny_dataset):
    answers = tmp_path / "ans.jsonl"
    answers.write_text('{"id": 1}\n')
    with pytest.raises(RecllmError, match="custom_id"):
        batchfiles.load_answers(answers, "h")
    answers.write_text("not json\n")
    with pytest.raises(RecllmError, match="not valid JSON"):
        batchfiles.load_answers(answers, "h")
    with pytest.raises(RecllmError, match="score mode"):
        run_one(cfg_for(tmp_path, export_requests=str(tmp_path / "r.jsonl"), mode="score",
                        protocol="candidates", negatives=3), tmp_path / "s", dataset=tiny_dataset)


def test_custom_ids_round_trip():
    assert batchfiles.custom_id("abc", "u1") == "abc:u1#ask0"
    assert batchfiles.split_id("abc:u1#ask0") == ("abc", "u1")
    assert batchfiles.split_id(batchfiles.custom_id("abc", "a:b#ask2")) == ("abc", "a:b#ask2")


def test_cli_flags_reach_the_config():
    from recllm.cli import build_parser
    from recllm.commands.evaluate import overrides

    args = build_parser().parse_args(["eval", "--export-requests", "r.jsonl", "--executor", "ray",
                                      "--actors", "2"])
    assert overrides(args) == {"export_requests": "r.jsonl", "executor": "ray",
                               "executor_options": {"actors": 2}}
    args = build_parser().parse_args(["eval", "--import-answers", "a.jsonl"])
    assert overrides(args) == {"import_answers": "a.jsonl"}


def test_a_bare_reply_in_response_is_read_as_the_body(tmp_path):
    answers = tmp_path / "a.jsonl"
    reply = {"choices": [{"message": {"content": "1. Heat (1995)"}, "finish_reason": "stop"}]}
    answers.write_text(json.dumps({"custom_id": "h:u1#ask0", "response": reply}) + "\n")
    assert batchfiles.load_answers(answers, "h") == {"h:u1#ask0": reply}


def test_actors_flag_adds_to_the_file_s_executor_options(tmp_path, monkeypatch):
    import recllm.evaluate.runner as runner
    from recllm.cli import main

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("executor: ray\nexecutor_options: {window: 10}\nmodel: none\n")
    seen = {}
    monkeypatch.setattr(runner, "run_eval", lambda cfg, **kw: seen.setdefault("cfg", cfg) and [])
    assert main(["eval", "--config", str(cfg_file), "--actors", "3"]) == 0
    assert seen["cfg"].executor_options == {"window": 10, "actors": 3}
