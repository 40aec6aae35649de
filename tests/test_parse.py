"""parse_titles on answers written the way real instruction models write them."""

from __future__ import annotations

import os
import random

import pytest

from recllm.grounding.parse import ParsedAnswer, parse_titles, strip_reasoning

# (answer, expected titles) — shapes seen from SmolLM2, Llama-3, Qwen, GPT-4o style models.
ANSWERS = {
    "numbered_bold_reasons": (
        ("Sure! Based on your viewing history, here are 5 movies you might enjoy:\n\n"
        "1. **Heat** (1995) - A gripping crime thriller with Al Pacino and Robert De Niro.\n"
        "2. **The Usual Suspects** (1995): A twisty neo-noir with an unforgettable ending.\n"
        "3. **Se7en** (1995) – Dark, moody and brilliantly acted.\n"
        "4. **Fargo** (1996)\n"
        "5. **Star Wars: Episode IV - A New Hope** (1977): The original space opera.\n\n"
        "I hope you enjoy these recommendations! Let me know if you'd like more."),
        ["Heat (1995)", "The Usual Suspects (1995)", "Se7en (1995)", "Fargo (1996)",
         "Star Wars: Episode IV - A New Hope (1977)"],
    ),
    "json_lines_from_a_small_model": (
        ('{"title": "Heat", "year": 1995}\n{"title": "Fargo", "year": 1996},\n'
         '{"title": "The Godfather"}\n'),
        ["Heat (1995)", "Fargo (1996)", "The Godfather"],
    ),
    "double_numbered_candidates": (
        "1. 1. Heat (1995)\n2. 3. Fargo (1996)\n3. 2. 2001: A Space Odyssey (1968)\n4. 9 to 5 (1980)",
        ["Heat (1995)", "Fargo (1996)", "2001: A Space Odyssey (1968)", "9 to 5 (1980)"],
    ),
    "numbered_paren_plain": (
        "1) Heat\n2) Fargo\n3) The Godfather\n4) Braveheart",
        ["Heat", "Fargo", "The Godfather", "Braveheart"],
    ),
    "bullets_dash_star_dot": (
        "Here are some picks:\n- Toy Story\n* Jumanji\n• Heat (1995)\n- The City of Lost Children",
        ["Toy Story", "Jumanji", "Heat (1995)", "The City of Lost Children"],
    ),
    "nested_reason_bullets": (
        ("1. Heat (1995)\n   - Why: a heist classic\n   - Similar to: Ronin\n"
        "2. Fargo (1996)\n   - Why: dark comedy\n"),
        ["Heat (1995)", "Fargo (1996)"],
    ),
    "smollm_title_dash_reason": (
        ("Based on your history, I recommend the following movies:\n\n"
        "1. The Shawshank Redemption - This movie is a classic drama about hope.\n"
        "2. The Lion King, which is a beloved animated film.\n"
        "3. Forrest Gump: a heartwarming story of a simple man.\n"
        "4. Pulp Fiction is a must-watch for crime fans.\n"),
        ["The Shawshank Redemption", "The Lion King", "Forrest Gump", "Pulp Fiction"],
    ),
    "quoted_titles": (
        '1. "Heat" (1995) - heist\n2. “Fargo” - snow\n3. \'Braveheart\' is epic\n4. *Jumanji*, a romp',
        ["Heat (1995)", "Fargo", "Braveheart", "Jumanji"],
    ),
    "json_array_fenced": (
        'Here is the list in JSON:\n```json\n["Heat (1995)", "Fargo (1996)", "Braveheart"]\n```',
        ["Heat (1995)", "Fargo (1996)", "Braveheart"],
    ),
    "json_objects_with_year": (
        ('{"recommendations": [{"title": "Heat", "year": 1995, "reason": "heist"},'
        ' {"title": "Fargo", "year": 1996}, {"name": "Toy Story"}]}'),
        ["Heat (1995)", "Fargo (1996)", "Toy Story"],
    ),
    "json_rank_object": (
        '{"1": "Heat", "2": "Fargo", "3": "Jumanji"}',
        ["Heat", "Fargo", "Jumanji"],
    ),
    "json_cut_off": (
        '```json\n{"movies": [{"title": "Heat", "year": 1995}, {"title": "Fargo", "year": 19',
        ["Heat", "Fargo"],
    ),
    "json_array_cut_off": (
        '["Heat (1995)", "Fargo (1996)", "Brave',
        ["Heat (1995)", "Fargo (1996)"],
    ),
    "inline_oxford": (
        "You might also enjoy Heat, Fargo, and The Usual Suspects.",
        ["Heat", "Fargo", "The Usual Suspects"],
    ),
    "inline_semicolons": (
        "Recommendations: Heat (1995); Fargo (1996); Toy Story (1995)",
        ["Heat (1995)", "Fargo (1996)", "Toy Story (1995)"],
    ),
    "inline_lead_colon": (
        "Here are three movies you might like: Heat, Braveheart, Jumanji.",
        ["Heat", "Braveheart", "Jumanji"],
    ),
    "one_per_line_with_chatter": (
        ("Of course! Here are my picks:\n\nHeat (1995)\nFargo (1996)\nThe Godfather (1972)\n\n"
        "Enjoy your movie night!"),
        ["Heat (1995)", "Fargo (1996)", "The Godfather (1972)"],
    ),
    "think_block_then_list": (
        ("<think>\nThe user likes crime films. 1. Maybe Casino? 2. Goodfellas?\n</think>\n\n"
        "1. Heat\n2. Fargo"),
        ["Heat", "Fargo"],
    ),
    "close_tag_only": (
        "The user likes crime, so Heat fits.\n</think>\n1. Heat\n2. The Usual Suspects",
        ["Heat", "The Usual Suspects"],
    ),
    "by_author": (
        "1. The Road by Cormac McCarthy\n2. *Beloved* by Toni Morrison\n3. Stand by Me (1986)",
        ["The Road", "Beloved", "Stand by Me (1986)"],
    ),
    "label_fields": (
        "1. Title: Heat\n2. **Movie:** Fargo\n3. Film: Toy Story",
        ["Heat", "Fargo", "Toy Story"],
    ),
    "markdown_table": (
        "| Rank | Title | Year |\n|------|-------|------|\n| 1 | Heat | 1995 |\n| 2 | Fargo | 1996 |",
        ["Heat", "Fargo"],
    ),
    "headings_and_bold_numbers": (
        "### 1. Heat (1995)\nA heist film.\n\n### 2. Fargo (1996)\nA crime comedy.\n\n**3. Jumanji**\n",
        ["Heat (1995)", "Fargo (1996)", "Jumanji"],
    ),
    "subtitles_kept": (
        ("1. Mission: Impossible - Ghost Protocol (2011) - Ethan Hunt's team goes rogue.\n"
        "2. Crouching Tiger, Hidden Dragon\n3. The Good, the Bad and the Ugly (1966)\n"
        "4. Heat (dir. Michael Mann, 1995)\n5. Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb"),
        ["Mission: Impossible - Ghost Protocol (2011)", "Crouching Tiger, Hidden Dragon",
         "The Good, the Bad and the Ugly (1966)", "Heat (1995)",
         "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb"],
    ),
    "smollm_one_line_numbers": (
        "Here are some movies: 1. The Matrix (1999) 2. Inception (2010) 3) Heat (1995)",
        ["The Matrix (1999)", "Inception (2010)", "Heat (1995)"],
    ),
    "labelled_numbers": (
        "Recommendation #1 - Heat\nRecommendation #2 - Fargo\nMovie 3: Jumanji",
        ["Heat", "Fargo", "Jumanji"],
    ),
    "role_prefix_and_numeric_titles": (
        "Assistant: 1. 2001: A Space Odyssey\n2. 12 Angry Men\n3. 8 1/2",
        ["2001: A Space Odyssey", "12 Angry Men", "8 1/2"],
    ),
    "markdown_links": (
        "1. [Heat](https://www.imdb.com/title/tt0113277/) (1995)\n2. [Fargo](https://x.y/fargo)",
        ["Heat (1995)", "Fargo"],
    ),
}


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_answer_shapes(name):
    text, expected = ANSWERS[name]
    parsed = parse_titles(text)
    assert list(parsed.titles) == expected, parsed
    assert parsed.failure is None


def test_cut_titles_keep_the_uncut_reading():
    parsed = parse_titles("1. Life is Beautiful - moving\n2. The Road by Cormac McCarthy")
    assert parsed.titles == ("Life", "The Road")
    assert "Life is Beautiful" in parsed.alternatives[0]
    assert "The Road by Cormac McCarthy" in parsed.alternatives[1]


def test_duplicates_counted_and_dropped():
    parsed = parse_titles("1. Heat\n2. Fargo\n3. heat\n4. HEAT!\n5. Heat (1995)")
    assert parsed.titles == ("Heat", "Fargo", "Heat (1995)")
    assert parsed.n_duplicates == 2


@pytest.mark.parametrize("text,failure", [
    ("", "empty"), ("   \n\t ", "empty"), (None, "empty"),
    ("<think>I should think about crime films like Heat and", "unfinished reasoning"),
    ("<think>only thoughts</think>", "reasoning only"),
    ("\x00\x01\x02\x03\xff\xfe" * 5000, "unreadable"),
    ("!!! ??? ... ---", "no titles found"),
])
def test_failures_are_reported_not_raised(text, failure):
    parsed = parse_titles(text)
    assert parsed.titles == ()
    assert parsed.failure == failure


def test_strip_reasoning_variants():
    assert strip_reasoning("a<think>x</think>b<THINKING>y</THINKING>c") == ("abc", False)
    assert strip_reasoning("a<reasoning>never closed") == ("a", True)
    assert strip_reasoning("x</think>answer") == ("answer", False)


@pytest.mark.parametrize("junk", [
    "1. Heat (1995) - good\n" * 60_000,          # 1.3M chars of list
    "[" * 1_000_000,                             # JSON that nests forever
    "{\"title\": \"" + "a" * 1_000_000,          # one unterminated string
    "a, " * 400_000,                             # one endless comma line
    "(" * 500_000 + ")" * 500_000,               # regex backtracking bait
    "*" * 1_000_000,                             # emphasis bait
    "[x](" * 250_000,                            # link bait
])
@pytest.mark.timeout(60)  # a hang guard (catastrophic backtracking takes hours), not a speed test
def test_huge_and_hostile_answers_do_not_hang(junk):
    parsed = parse_titles(junk)
    assert isinstance(parsed, ParsedAnswer)
    assert len(parsed.titles) <= 500


def test_random_bytes_never_crash():
    rng = random.Random(0)
    for _ in range(50):
        blob = os.urandom(rng.randint(0, 5000)).decode("utf-8", errors="replace")
        assert isinstance(parse_titles(blob), ParsedAnswer)
        text = "".join(rng.choice("1.-*[]{}()\":,;\n <>/thinkTHE ") for _ in range(rng.randint(0, 3000)))
        assert isinstance(parse_titles(text), ParsedAnswer)


def test_huge_answer_is_marked_truncated():
    parsed = parse_titles("1. Heat\n" + "x" * 200_000)
    assert parsed.truncated and parsed.titles[0] == "Heat"


@pytest.mark.parametrize("title", ["If.... (1968)", "M*A*S*H (1970)", "B*A*P*S (1997)", "...And Justice for All (1979)",
                                   "Seven (Se7en) (1995)", "Independence Day (ID4) (1996)"])
@pytest.mark.parametrize("shape", ["1. {t}\n2. Heat (1995)", "1. Heat (1995)\n2. {t}\n3. Fargo",
                                   "- {t}\n- Heat", "{t}\nHeat (1995)", "1. {t} - a classic\n2. Heat"])
def test_titles_full_of_punctuation_are_titles_not_junk(title, shape):
    """Catalog titles copied into a list come back out (the junk filter let "If...." fall)."""
    parsed = parse_titles(shape.format(t=title))
    assert title in parsed.titles or title in [a for alts in parsed.alternatives for a in alts], parsed


def test_a_long_subtitle_survives_as_a_reading():
    """Book titles run long; the uncut item goes along so the matcher can find the whole title."""
    title = "The Man in the Ice: The Discovery of a 5,000-Year-Old Body Reveals the Secrets of the Stone Age"
    parsed = parse_titles(f"1. {title} (1995)\n2. Heat (1995)")
    assert f"{title} (1995)" in (parsed.titles[0], *parsed.alternatives[0])
    # A prose line's uncut text is a sentence, not a title: it does not go along.
    prose = parse_titles("Heat (1995) is a film that I think you will really enjoy because it has a great cast")
    assert all(len(a.split()) <= 12 for alts in prose.alternatives for a in alts)
