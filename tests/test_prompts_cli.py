"""`recllm prompts list | show | render | check` on the shipped templates and a tiny dataset."""

from __future__ import annotations

import json

import pytest

from recllm.cli import main
from conftest import make_dataset


@pytest.fixture
def tiny_loader(monkeypatch):
    """`load_dataset` answering with the conftest dataset (no files, no network)."""
    import recllm.data

    monkeypatch.setattr(recllm.data, "load_dataset", lambda name, **kw: make_dataset())


def run_json(capsys, *argv) -> object:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_list_json(capsys):
    out = run_json(capsys, "prompts", "list", "--json")
    names = [t["name"] for t in out["templates"]]
    assert "generate" in names and "rank-icl" in names
    assert all(len(t["sha256"]) == 64 for t in out["templates"])


def test_list_table(capsys):
    assert main(["prompts", "list"]) == 0
    assert "rank-sequential" in capsys.readouterr().out


def test_show(capsys):
    out = run_json(capsys, "prompts", "show", "generate", "--json")
    assert out["mode"] == "generate" and out["roles"] == ["system", "user"]
    assert "history" in out["variables"] and out["source"].startswith("{#")


def test_show_unknown_suggests(capsys):
    assert main(["prompts", "show", "generat"]) == 2
    assert "did you mean 'generate'" in capsys.readouterr().err


def test_render_generate(capsys, tiny_loader):
    out = run_json(capsys, "prompts", "render", "generate", "--dataset", "tiny", "--user", "u1",
                   "--k", "5", "--json")
    assert out["user"] == "u1" and out["k"] == 5 and out["candidates"] == []
    assert "Heat (1995)" in out["messages"][1]["content"] and out["target"] == "7"
    assert "Star Wars" not in out["messages"][1]["content"]


def test_render_rank_draws_candidates_with_the_target(capsys, tiny_loader):
    out = run_json(capsys, "prompts", "render", "rank-recency", "--dataset", "tiny", "--user", "u2",
                   "--candidates", "5", "--json")
    assert len(out["candidates"]) == 5 and "4" in out["candidates"]  # u2's held-out item
    assert not {"8", "10", "11"} & set(out["candidates"])  # never an item the user has seen
    again = run_json(capsys, "prompts", "render", "rank-recency", "--dataset", "tiny", "--user",
                     "u2", "--candidates", "5", "--json")
    assert again["candidates"] == out["candidates"]  # seeded


def test_render_text_and_unknown_user(capsys, tiny_loader):
    assert main(["prompts", "render", "completion", "--dataset", "tiny", "--user", "u4"]) == 0
    captured = capsys.readouterr()
    assert "Jumanji (1995)" in captured.out and "history 2 used" in captured.err
    assert main(["prompts", "render", "generate", "--dataset", "tiny", "--user", "nobody"]) == 2
    assert "no test case" in capsys.readouterr().err


def test_check_all_and_bad_file(capsys, tmp_path):
    assert main(["prompts", "check"]) == 0
    assert "templates ok" in capsys.readouterr().out
    bad = tmp_path / "bad.jinja"
    bad.write_text("{#\nname: bad\ndescription: d\nmode: generate\nchat: false\n#}\n{{ secret }}\n")
    assert main(["prompts", "check", str(tmp_path), "--json"]) == 1
    [result] = json.loads(capsys.readouterr().out)
    assert not result["ok"] and "secret" in result["problems"][0]
