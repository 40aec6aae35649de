"""Transfer experiments: demonstrations from a source dataset, cold-start regimes for the
baselines, and `recllm report --transfer`."""

from __future__ import annotations

import json

import pytest

import recllm.data
from recllm.cli import main
from recllm.data import leave_one_out
from recllm.data.schema import RecDataset
from recllm.errors import RecllmError
from recllm.evaluate import EvalConfig, run_eval
from recllm.evaluate.demos import DemoPool, draw_demos
from recllm.evaluate.rundir import read_records

from conftest import make_dataset

BOOKS = {"b1": ("Dune (1965)", []), "b2": ("Emma (1815)", []), "b3": ("Ulysses (1922)", []),
         "b4": ("Beloved (1987)", []), "b5": ("Hamlet (1603)", [])}
READERS = {"r1": [("b1", 1, 8), ("b2", 2, 7), ("b3", 3, 9), ("b4", 4, 6)],
           "r2": [("b5", 1, 5), ("b3", 2, 5), ("b1", 3, 5)],
           "r3": [("b2", 1, 9), ("b4", 2, 8), ("b5", 3, 7), ("b1", 4, 6)]}


def books() -> RecDataset:
    ds = make_dataset(READERS, BOOKS)
    ds.name, ds.domain, ds.domain_plural = "tiny-books", "book", "books"
    return ds


@pytest.fixture
def sources(monkeypatch):
    """`demos_from: tiny-books` / `tiny-movies` load these fixtures instead of a real dataset."""
    named = {"tiny-books": books, "tiny-movies": make_dataset}
    real = recllm.data.load_dataset
    monkeypatch.setattr(recllm.data, "load_dataset",
                        lambda name, **kw: named[name]() if name in named else real(name, **kw))


def config(tmp_path, **kw) -> EvalConfig:
    base = dict(dataset="tiny", model="scripted-test", backend="scripted",
                backend_options={"answers": {}}, users=None, max_history=None,
                output=str(tmp_path / "run"), progress=False, ks=[1, 5, 10], batch_size=2,
                ci_resamples=50)
    return EvalConfig(**{**base, **kw})


def test_demos_are_seeded_never_the_user_never_the_target_never_held_out(tiny_dataset):
    split = leave_one_out(tiny_dataset)
    held = {(c.user_id, c.target) for c in split.test + split.valid}
    pool = DemoPool(tiny_dataset, history=3, seed=7)
    first = draw_demos(pool, split.test, tiny_dataset, 2)
    assert first == draw_demos(DemoPool(tiny_dataset, history=3, seed=7), split.test, tiny_dataset, 2)
    assert any(d for d in first.values())
    for case in split.test:
        for demo in first[case.user_id]:
            shown = [it.id for it in demo.history] + [demo.next.id]
            assert demo.user_id != case.user_id and case.target not in shown
            assert not any((demo.user_id, item) in held for item in shown)
            assert 1 <= len(demo.history) <= 3
    # the target is also kept out by title: a source catalog with another id for the same film
    case = split.test[0]
    title = tiny_dataset.catalog[case.target]
    clone = make_dataset({"x1": [("a", 1, 1), ("b", 2, 1), ("c", 3, 1), ("d", 4, 1)],
                          "x2": [("d", 1, 1), ("e", 2, 1), ("f", 3, 1), ("b", 4, 1)]},
                         {"a": (title, []), "b": ("B (2000)", []), "c": ("C (2001)", []),
                          "d": ("D (2002)", []), "e": ("E (2003)", []), "f": ("F (2004)", [])})
    drawn = DemoPool(clone, seed=0).draw(case, 5, title)
    assert [d.user_id for d in drawn] == ["x2"]


def test_demos_from_another_domain_reach_the_prompt(tmp_path, tiny_dataset, sources):
    [run] = run_eval(config(tmp_path, demos_from="tiny-books", demos=2), dataset=tiny_dataset,
                     log=lambda m: None)
    [sample] = read_records(run / "samples.jsonl")[:1]
    prompt = sample["systems"]["scripted-test"]["prompt"]
    text = "\n".join(m["content"] for m in prompt)
    assert "other people read" in text and "Person 1:" in text and "with movies" in text
    assert "both books and movies" in text
    results = json.loads((run / "results.json").read_text())
    assert results["config"]["template"] == "cross-domain"
    assert results["transfer"]["demos_from"] == "tiny-books"
    assert results["transfer"]["demo_domain"] == "book"


def test_score_mode_demos_use_the_score_template(tmp_path, tiny_dataset, sources):
    cfg = config(tmp_path, demos_from="tiny-books", demos=1, mode="score",
                 protocol="candidates", negatives=3).resolved()
    assert cfg.template == "score-cross-domain"


def test_same_domain_cross_domain_warns_not_crashes(tmp_path, tiny_dataset, sources):
    logs: list[str] = []
    run_eval(config(tmp_path, demos_from="tiny-movies", demos=1, template="cross-domain"),
             dataset=tiny_dataset, log=logs.append)
    assert any(m.startswith("warning: demos_from 'tiny-movies' is in the same domain") for m in logs)


def test_demos_with_a_template_that_ignores_them_is_refused(tmp_path, tiny_dataset, sources):
    with pytest.raises(RecllmError, match="does not show demonstrations"):
        run_eval(config(tmp_path, demos_from="tiny-books", demos=1, template="generate"),
                 dataset=tiny_dataset, log=lambda m: None)


@pytest.mark.parametrize("bad, message", [
    ({"demos": 2}, "needs demos_from"), ({"demos": [0, -1], "demos_from": "x"}, "0 or more"),
    ({"mode": {"fulll": "generate"}}, "did you mean"),
    ({"train_fraction": 0}, "train_fraction must be in"),
    ({"train_fraction": [1.0, 1.5]}, "train_fraction must be in")])
def test_transfer_keys_are_checked(bad, message):
    with pytest.raises(RecllmError, match=message):
        EvalConfig.parse(bad)


def test_cold_start_sweep_same_users_same_candidates_less_training(tmp_path, tiny_dataset):
    out = tmp_path / "sweep"
    runs = run_eval(config(tmp_path, model=None, protocol="candidates", negatives=3,
                           train_fraction=[1.0, 0.5], baselines=["popularity", "itemknn"],
                           output=str(out)), dataset=tiny_dataset, log=lambda m: None)
    assert [r.name for r in runs] == ["train_fraction=1.0", "train_fraction=0.5"]
    full, half = (read_records(r / "samples.jsonl") for r in runs)
    assert [(s["user"], s["candidates"]) for s in full] == [(s["user"], s["candidates"]) for s in half]
    regimes = [json.loads((r / "results.json").read_text())["transfer"]["regime"] for r in runs]
    assert regimes[1]["train_fraction"] == 0.5
    assert regimes[1]["interactions"] < regimes[0]["interactions"]
    # the seeded regime is the same on a second run
    again = run_eval(config(tmp_path, model=None, protocol="candidates", negatives=3,
                            train_fraction=0.5, baselines=["popularity", "itemknn"],
                            output=str(tmp_path / "again")), dataset=tiny_dataset, log=lambda m: None)
    assert read_records(again[0] / "samples.jsonl") == half


def test_sweeping_mode_skips_score_on_the_full_protocol(tmp_path):
    points = config(tmp_path, protocol=["full", "candidates"], mode=["generate", "score"]).sweep()
    assert [name for name, _ in points] == ["protocol=full,mode=generate",
                                            "protocol=candidates,mode=generate",
                                            "protocol=candidates,mode=score"]


def test_report_transfer_table(tmp_path, tiny_dataset, sources, capsys):
    answers = {"u1": "1. Fargo (1996)", "u2": "1. Heat (1995)", "u3": "1. Toy Story (1995)",
               "u4": "1. Star Wars (1977)"}
    zero = run_eval(config(tmp_path, backend_options={"answers": answers}, train_fraction=[1.0, 0.5],
                           output=str(tmp_path / "zero")), dataset=tiny_dataset, log=lambda m: None)
    demo = run_eval(config(tmp_path, backend_options={"answers": answers}, demos_from="tiny-books",
                           demos=1, output=str(tmp_path / "demo")), dataset=tiny_dataset,
                    log=lambda m: None)
    assert main(["report", "--transfer", "--json", *map(str, zero + demo)]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["columns"] == ["zero-shot -> tiny-movies, train 100%",
                                "zero-shot -> tiny-movies, train 50%",
                                "tiny-books -> tiny-movies, train 100%"]
    assert set(table["rows"]) >= {"scripted-test", "popularity", "random"}
    assert list(table["rows"])[0] == "scripted-test"  # LLM rows first
    lift = table["lift"]["scripted-test"]["zero-shot -> tiny-movies, train 100%"]
    llm = table["rows"]["scripted-test"]["zero-shot -> tiny-movies, train 100%"]["mean"]
    pop = table["rows"]["popularity"]["zero-shot -> tiny-movies, train 100%"]["mean"]
    assert lift["delta"] == pytest.approx(llm - pop)
    assert main(["report", "--transfer", *map(str, zero + demo)]) == 0
    text = capsys.readouterr().out
    assert "scripted-test lift over popularity" in text and "tiny-books -> tiny-movies" in text


def test_mode_per_protocol_and_demos_sweep(tmp_path):
    cfg = config(tmp_path, protocol=["full", "candidates"], mode={"candidates": "score"},
                 demos=[0, 2], demos_from="tiny-books")
    points = {name: (p.mode, p.demos) for name, p in cfg.sweep()}
    assert points == {"protocol=full,demos=0": ("generate", 0),
                      "protocol=full,demos=2": ("generate", 2),
                      "protocol=candidates,demos=0": ("score", 0),
                      "protocol=candidates,demos=2": ("score", 2)}
    assert config(tmp_path, protocol="candidates", mode={"candidates": "score"}).sweep()[0][1].mode == "score"


def test_default_templates_follow_mode_and_demonstrations(tmp_path):
    def template(**kw):
        return config(tmp_path, template=None, **kw).sweep()[0][1].resolved().template
    assert template(protocol="candidates", mode="score") == "score-next"
    assert template(protocol="candidates", mode="score", demos_from="x", demos=0) == "score-cross-domain"
    assert template(protocol="full", demos_from="x", demos=0) == "cross-domain"
    assert template(protocol="full") == "generate"
    # a mode mapping leaves constrain to the generate points
    cfg = config(tmp_path, protocol=["full", "candidates"], mode={"candidates": "score"},
                 constrain="catalog")
    assert {n: p.resolved().constrain for n, p in cfg.sweep()} == {
        "protocol=full": "catalog", "protocol=candidates": "none"}
