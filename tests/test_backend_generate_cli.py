"""`recllm generate` end to end on the tiny fixture dataset: scripted answers, a tiny real
model, the cache on re-run, and bad input."""

from __future__ import annotations

import json

import pytest
from conftest import make_dataset

from recllm.cli import main


@pytest.fixture(autouse=True)
def tiny_data(monkeypatch):
    monkeypatch.setattr("recllm.data.load_dataset", lambda name, **kw: make_dataset())


def run_json(capsys, *argv) -> tuple[int, dict]:
    code = main(["generate", "--dataset", "tiny", "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_scripted_answers_and_a_recorded_failure(capsys):
    code, out = run_json(capsys, "--backend", "scripted", "--users", "4",
                         "--option", 'answers={"u1": "1. Heat (1995)", "u2": "1. Fargo"}')
    assert code == 0
    samples = {s["user_id"]: s for s in out["samples"]}
    assert samples["u1"]["answer"] == "1. Heat (1995)" and samples["u1"]["error"] is None
    assert "no scripted answer" in samples["u3"]["error"]
    assert samples["u1"]["prompt"]["messages"][-1]["role"] == "user"
    assert samples["u1"]["target"] == "Star Wars"
    assert out["summary"]["failed"] == 2


def test_tiny_model_then_cached_rerun(capsys, tmp_path):
    from tiny_llm import build_tiny_model

    pytest.importorskip("transformers")
    folder = build_tiny_model(tmp_path / "tiny")
    args = ("--model", str(folder), "--users", "2", "--max-tokens", "4", "--batch-size", "2")
    code, first = run_json(capsys, *args)
    assert code == 0 and all(s["error"] is None for s in first["samples"])
    assert all(s["completion_tokens"] <= 4 and s["prompt_tokens"] > 10 for s in first["samples"])
    assert first["summary"]["cached"] == 0
    code, second = run_json(capsys, *args)
    assert second["summary"]["cached"] == 2
    assert [s["answer"] for s in second["samples"]] == [s["answer"] for s in first["samples"]]
    _, third = run_json(capsys, *args, "--no-cache")
    assert third["summary"]["cached"] == 0


def test_penalty_flags_change_the_answer_and_its_cache_key(capsys, tmp_path):
    from tiny_llm import build_tiny_model

    pytest.importorskip("transformers")
    folder = build_tiny_model(tmp_path / "tiny")
    args = ("--model", str(folder), "--users", "2", "--max-tokens", "8", "--batch-size", "2")
    _, plain = run_json(capsys, *args)
    _, penalized = run_json(capsys, *args, "--frequency-penalty", "2", "--repetition-penalty", "3")
    assert penalized["summary"]["cached"] == 0  # a different request, not the cached plain answer
    assert [s["answer"] for s in penalized["samples"]] != [s["answer"] for s in plain["samples"]]
    for s in penalized["samples"]:
        words = s["answer"].split()
        assert len(set(words)) == len(words)  # no token twice under a frequency penalty of 2


def test_human_output_shows_prompt_answer_tokens_and_seconds(capsys):
    code = main(["generate", "--dataset", "tiny", "--backend", "scripted", "--users", "1", "--user", "u2",
                 "--option", 'answers={"u2": "1. Heat"}'])
    out = capsys.readouterr()
    assert code == 0
    assert "user u2" in out.out and "[user]" in out.out and "1. Heat" in out.out
    assert "tokens" in out.out and "1 users" in out.err


@pytest.mark.parametrize("argv, message", [
    (["--backend", "scripted", "--option", "answers"], "not KEY=VALUE"),
    (["--backend", "scripted", "--option", "answer={}"], "did you mean 'answers'"),
    (["--backend", "nope"], "unknown backend"),
    (["--template", "rank-sequential", "--backend", "scripted", "--option", "default=x"], "rank"),
    (["--backend", "scripted", "--option", "default=x", "--repetition-penalty", "0"], "repetition_penalty must be > 0"),
])
def test_bad_input_is_a_clear_error(capsys, argv, message):
    assert main(["generate", "--dataset", "tiny", *argv]) == 2
    assert message in capsys.readouterr().err


def test_credentials_never_reach_the_output(capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here: every request fails
    url = f"http://bob:pw-hidden-1@127.0.0.1:{port}/v1?api-key=qk-hidden-2"
    code = main(["generate", "--dataset", "tiny", "--json", "--backend", "openai", "--model", "m",
                 "--base-url", url, "--users", "1", "--option", "api_key=sk-hidden-3",
                 "--option", "max_retries=0", "--option", 'extra_body={"auth_token": "tk-hidden-4"}'])
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert code == 1 and "cannot connect" in out["samples"][0]["error"]
    assert f"127.0.0.1:{port}/v1" in out["summary"]["identity"]["base_url"]
    assert not any(f"hidden-{i}" in captured.out + captured.err for i in range(1, 5))
