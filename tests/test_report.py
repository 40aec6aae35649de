"""`recllm eval` / `recllm report` from the command line on files written by the test."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import HISTORIES, MOVIES
from recllm.cli import main
from recllm.report import compare, load_runs, markdown_table

ANSWERS = {"u1": "1. Star Wars\n2. Fargo", "u2": "1. Heat (1995)\n2. Toy Story",
           "u3": "1. Godfather\n2. Fargo", "u4": "1. Fargo (1996)\n2. Heat"}


@pytest.fixture
def files(tmp_path):
    inter = tmp_path / "inter.csv"
    inter.write_text("user_id,item_id,timestamp,rating\n" + "".join(
        f"{u},{i},{t},{r}\n" for u, events in HISTORIES.items() for i, t, r in events))
    items = tmp_path / "items.csv"
    with open(items, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "title", "genres"])
        for i, (title, genres) in MOVIES.items():
            w.writerow([i, title, "|".join(genres)])
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"key": k, "output": v}) + "\n" for k, v in ANSWERS.items()))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"""
dataset: {inter}
dataset_options: {{items: {items}, cache: false}}
model: scripted-answers
backend: scripted
backend_options: {{path: {answers}}}
users: all
max_history: null
ks: [1, 5, 10]
negatives: 3
ci_resamples: 100
progress: false
""")
    return tmp_path, cfg


def test_cli_eval_sweep_report_compare_plots(files, capsys):
    tmp, cfg = files
    out = tmp / "runs"
    assert main(["eval", "--config", str(cfg), "--protocol", "full,candidates",
                 "--max-history", "1,none", "--output", str(out), "--seed", "3"]) == 0
    table = capsys.readouterr().out
    assert "| run | protocol | system |" in table and "scripted-answers" in table
    assert "popularity" in table and "itemknn" in table
    runs = load_runs([out])
    assert [r.label for r in runs] == [
        "protocol=candidates,max_history=1", "protocol=candidates,max_history=none",
        "protocol=full,max_history=1", "protocol=full,max_history=none"]
    assert all(r.results["config"]["seed"] == 3 for r in runs)

    assert main(["report", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["protocol"]["name"] for d in data} == {"full", "candidates"}

    plots = tmp / "plots"
    assert main(["report", str(out), "--plots", str(plots)]) == 0
    capsys.readouterr()
    assert (plots / "metric_by_run.png").stat().st_size > 1000
    assert (plots / "position_bias.png").exists() and (plots / "validity.png").exists()
    assert (plots / "metric_by_history.png").exists()
    assert not (plots / "metric_by_template.png").exists()   # one template per protocol

    full = out / "protocol=full,max_history=none"
    assert main(["report", "--recompute", str(full)]) == 0
    assert "matches" in capsys.readouterr().out

    assert main(["report", "--compare", f"{full}:popularity", str(full), "--json"]) == 0
    test = json.loads(capsys.readouterr().out)
    assert test["n"] == 4 and test["b"].endswith(":scripted-answers")
    assert -1 <= test["delta"] <= 1 and 0 < test["p_value"] <= 1


def test_compare_refuses_different_users(files, capsys):
    tmp, cfg = files
    a, b = tmp / "a", tmp / "b"
    assert main(["eval", "--config", str(cfg), "-o", str(a), "--json"]) == 0
    assert main(["eval", "--config", str(cfg), "-o", str(b), "--users", "2"]) == 0
    capsys.readouterr()
    from recllm.errors import RecllmError
    with pytest.raises(RecllmError, match="different users"):
        compare(str(a), str(b))


def test_cli_errors_are_clear(files, capsys):
    tmp, cfg = files
    assert main(["eval", "--config", str(cfg), "--set", "negativs=3", "-o", str(tmp / "x")]) == 2
    assert "did you mean 'negatives'" in capsys.readouterr().err
    assert main(["eval", "--config", str(cfg), "--protocol", "candidate", "-o", str(tmp / "y")]) == 2
    assert "did you mean 'candidates'" in capsys.readouterr().err


def test_markdown_table_shows_partial_runs(files, capsys):
    tmp, cfg = files
    run = tmp / "part"
    assert main(["eval", "--config", str(cfg), "-o", str(run), "--limit", "2"]) == 0
    capsys.readouterr()
    [r] = load_runs([run])
    assert r.partial and "(partial)" in markdown_table([r])


def test_users_from_a_file(files, capsys):
    tmp, cfg = files
    ids = tmp / "users.txt"
    ids.write_text("u3\nu1\n")
    assert main(["eval", "--config", str(cfg), "-o", str(tmp / "f"), "--users", str(ids)]) == 0
    capsys.readouterr()
    [r] = load_runs([tmp / "f"])
    assert r.results["users"]["evaluated"] == 2


def test_a_sweep_in_progress_reports_what_has_started(files, capsys):
    tmp, cfg = files
    sweep = tmp / "sweep"
    assert main(["eval", "--config", str(cfg), "-o", str(sweep / "a"), "--limit", "2"]) == 0
    (sweep / "b").mkdir()
    (sweep / "b" / "config.yaml").write_text((sweep / "a" / "config.yaml").read_text())
    capsys.readouterr()
    assert [r.path.name for r in load_runs([sweep])] == ["a"]  # b: not started, left out
    with pytest.raises(Exception, match="no results.json and no samples.jsonl"):
        load_runs([sweep / "b"])  # named on its own: an error
