"""recllm.recommend: history grounding, the never-recommend-the-history rule, score mode,
explanations, catalog-only tables, search, and the `recllm recommend` command."""

from __future__ import annotations

import json

import pytest

from recllm.cli import main
from recllm.errors import RecllmError
from recllm.recommend import (BackendFailed, Query, Recommender, RecommendSettings, constrains, first_line,
                              load_catalog)

ANSWER = "1. Heat (1995)\n2. Fargo (1996)\n3. Star Wars (1977)\n4. Not A Real Movie (2001)\n5. Braveheart (1995)"


def scripted(dataset, **settings):
    options = {"answers": {}, **(settings.pop("backend_options", None) or {"default": ANSWER})}
    return Recommender(dataset, RecommendSettings(backend="scripted", backend_options=options, **settings))


def test_generate_grounds_history_and_never_recommends_it(tiny_dataset):
    out = scripted(tiny_dataset).recommend(Query(history=("toy story", "Heat (1995)", "No Such Film"), k=3))
    ids = [i["item_id"] for i in out["items"]]
    assert ids == ["8", "7", "11"]  # Heat (history) and the hallucinated title are dropped
    assert [h["item_id"] for h in out["history"]["matched"]] == ["1", "4"]
    assert out["history"]["unmatched"] == ["No Such Film"]
    assert out["validity"]["history_repeats"] == 1 and out["validity"]["out_of_catalog"] == 1
    assert out["items"][0]["grounding"] == {"method": "exact", "written": "Fargo (1996)", "similarity": 100.0}
    assert out["items"][0]["label"] == "Fargo (1996)" and out["items"][0]["rank"] == 1


def test_history_ids_and_titles_merge_without_repeats(tiny_dataset):
    out = scripted(tiny_dataset).recommend(Query(history=("Fargo",), history_ids=("8", "4"), k=5))
    assert [h["item_id"] for h in out["history"]["matched"]] == ["8", "4"]
    assert not {"8", "4"} & {i["item_id"] for i in out["items"]}


def test_all_unmatched_history_is_an_empty_list_without_a_model_call(tiny_dataset):
    rec = scripted(tiny_dataset)
    out = rec.recommend(Query(history=("Nothing Like It", "Zzzz Qqqq"), k=3))
    assert out["items"] == [] and out["history"]["unmatched"] == ["Nothing Like It", "Zzzz Qqqq"]
    assert "no history title matched" in out["note"]
    assert rec.backend.calls == 0


@pytest.mark.parametrize("query, where", [
    (Query(history=("Fargo",), k=0), "k"),
    (Query(history=("Fargo",), k=13), "k"),  # the catalog has 12 items
    (Query(history=(), k=3), "history"),
    (Query(history_ids=("999",), k=3), "history_ids[0]"),
    (Query(history=("Fargo",), candidates=("8",)), "candidates"),  # only history candidates
    (Query(history=("Fargo",), candidates=("1", "nope")), "candidates[1]"),
])
def test_bad_queries_name_the_field(tiny_dataset, query, where):
    with pytest.raises(RecllmError) as err:
        scripted(tiny_dataset).recommend(query)
    assert err.value.where == where


def test_score_mode_ranks_retrieved_candidates_by_likelihood(tiny_dataset):
    rec = scripted(tiny_dataset, mode="score", n_candidates=5, backend_options={"default": None})
    labels = [rec.item(i)["label"] for i in tiny_dataset.catalog]
    rec.backend.scores = {"user": {f"1. {label}\n": float(n) for n, label in enumerate(labels)}}
    out = rec.recommend(Query(history=("Toy Story", "Heat (1995)"), k=3))
    scores = [i["score"] for i in out["items"]]
    assert len(out["items"]) == 3 and scores == sorted(scores, reverse=True)
    assert out["candidates"] == {"source": "retriever itemknn", "count": 5}
    assert not {"1", "4"} & {i["item_id"] for i in out["items"]}
    assert out["items"][0]["grounding"]["method"] == "scored" and out["template"] == "score-next"
    given = rec.recommend(Query(history=("Toy Story",), k=5, candidates=("1", "2", "3")))
    assert [i["item_id"] for i in given["items"]] == ["3", "2"]  # Toy Story is history: dropped


def test_explain_adds_one_line_reasons(tiny_dataset):
    rec = scripted(tiny_dataset, backend_options={"default": ANSWER, "answers": {
        "user:why:8": "1. \"A dark crime comedy, like Heat.\"\nmore text"}})
    out = rec.recommend(Query(history=("Heat (1995)",), k=2, explain=True))
    assert out["items"][0]["reason"] == "A dark crime comedy, like Heat."
    assert first_line("\n\n") is None and len(first_line("x" * 999)) == 200


class Broken:
    name = "broken"

    def generate(self, requests):
        raise RuntimeError("CUDA out of memory")

    def close(self):
        pass


def test_a_failing_engine_is_backend_failed(tiny_dataset):
    rec = scripted(tiny_dataset)
    rec.backend = Broken()
    for llm in rec._llms.values():
        llm.backend = rec.backend
    with pytest.raises(BackendFailed, match="CUDA out of memory"):
        rec.recommend(Query(history=("Heat (1995)",), k=2))


def test_search_finds_prefixes_then_near_spellings(tiny_dataset):
    rec = scripted(tiny_dataset)
    assert [i["item_id"] for i in rec.search("star")] == ["7"]
    assert {i["item_id"] for i in rec.search("heat")} == {"4", "9"}
    assert [i["item_id"] for i in rec.search("fargp")] == ["8"]  # a typo
    assert rec.search("   ") == []


def test_a_table_of_items_alone_is_a_catalog(tmp_path):
    path = tmp_path / "books.csv"
    path.write_text("id,title,year\nb1,Dune,1965\nb2,Emma,1815\nb3,Ulysses,1922\n", encoding="utf-8")
    dataset = load_catalog(str(path), domain="book")
    assert len(dataset.catalog) == 3 and dataset.interactions.empty and dataset.domain == "book"
    rec = scripted(dataset, backend_options={"default": "1. Emma (1815)\n2. Dune (1965)"})
    out = rec.recommend(Query(history=("dune",), k=2))
    assert [i["item_id"] for i in out["items"]] == ["b2"]
    with pytest.raises(RecllmError, match="no interactions"):
        scripted(dataset, mode="score", backend_options={"default": None}).recommend(Query(history=("dune",), k=1))


def test_cli_recommend_json(tmp_path, capsys):
    path = tmp_path / "films.csv"
    path.write_text("id,title\n1,Heat (1995)\n2,Fargo (1996)\n3,Alien (1979)\n", encoding="utf-8")
    code = main(["recommend", "--catalog", str(path), "--backend", "scripted", "--option", "answers={}",
                 "--option", "default=1. Alien (1979)", "--history", "Heat", "-k", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["items"][0]["item_id"] == "3" and out["model"] is None


def test_cli_recommend_errors_are_one_line(capsys):
    assert main(["recommend", "--catalog", "ml-100k", "--backend", "scripted"]) == 2
    assert "history is empty" in capsys.readouterr().err


def test_constrained_decoding_is_on_by_default_where_the_engine_enforces_it(tiny_dataset):
    assert constrains(RecommendSettings(backend="transformers")) and constrains(RecommendSettings(backend="hf"))
    assert not constrains(RecommendSettings(backend="scripted")) and not constrains(RecommendSettings(backend="openai"))
    assert not constrains(RecommendSettings(backend="llamacpp", constrain=False))
    rec = scripted(tiny_dataset, constrain=True)
    assert rec.identity["constrain"] is True
    rec.recommend(Query(history=("Heat (1995)",), k=2))
    assert rec._llms[("full", 2)].cfg.constrain == "catalog"
