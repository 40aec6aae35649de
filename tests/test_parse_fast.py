"""The parser's shortcuts read exactly what the long way reads."""

from __future__ import annotations

import sys

import pytest

from recllm.grounding import clean
from recllm.grounding.clean import _JUNK, _OPENERS, _PAIRS, clean_item
from recllm.grounding.parse import parse_titles

LINES = [
    "Heat (1995)", "**Heat** (1995) - a heist classic", "Heat (dir. Michael Mann, 1995)",
    "The Road by Cormac McCarthy", "Title: Fargo", "The Lion King, which is great",
    "Star Wars: Episode IV - A New Hope (1977)", "Life is Beautiful - a moving film",
    '"Amélie" (2001)', "«Léon» 1994", "I'd recommend Heat", "\x00\x01\x02 ¿¿", "_Heat_", "",
    "   ", "The Invisible Heat Returns", "「千と千尋の神隠し」 (2001)", "½ ² ٣ ___ ...",
]


def test_junk_is_neither_alnum_space_nor_punctuation_for_every_code_point():
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    punctuation = {chr(c) for c in [*range(0x21, 0x7F), *range(0xA1, 0xC0), *range(0x2010, 0x205F)]}
    found = set(_JUNK.findall(every))
    assert found == {c for c in every if not (c.isalnum() or c.isspace() or c in punctuation)}


def test_every_emphasis_pair_opens_with_a_listed_character():
    assert all(open_[0] in _OPENERS for open_, _ in _PAIRS)


@pytest.mark.parametrize("prose", [False, True])
def test_memoized_items_equal_the_uncached_reading(prose):
    for line in LINES:
        first = clean_item(line, prose=prose)
        assert first == clean._clean(line, prose) == clean_item(line, prose=prose)
    # The flag is part of the key: a lead-in is cut only in prose.
    assert clean_item("I'd recommend Heat", prose=True)[0] == "Heat"
    assert clean_item("I'd recommend Heat", prose=False)[0] == "I'd recommend Heat"


def test_long_items_are_not_memoized():
    clean._clean_cached.cache_clear()
    long = "Heat (1995) - " + "a heist classic, " * 20
    assert len(long) > clean.CACHED_CHARS
    assert clean_item(long) == ("Heat (1995)", ())
    assert clean._clean_cached.cache_info().currsize == 0
    clean_item("Heat (1995)")
    assert clean._clean_cached.cache_info().currsize == 1


def test_answers_parse_the_same_cold_and_warm():
    answer = "Here are my picks:\n1. Heat (1995)\n2. **Fargo** - dark\n3. Heat (1995)\n4. Jumanji"
    clean._clean_cached.cache_clear()
    cold = parse_titles(answer)
    warm = parse_titles(answer)
    assert cold == warm
    assert cold.titles == ("Heat (1995)", "Fargo", "Jumanji") and cold.n_duplicates == 1
