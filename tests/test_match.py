"""TitleMatcher: MovieLens titles written the ways people and models write them."""

from __future__ import annotations

import random

import pytest

from recllm.errors import RecllmError
from recllm.grounding import Match, TitleMatcher, match_key

# A slice of ML-1M's movies.dat, raw titles as MovieLens writes them.
ML = {
    "1": "Toy Story (1995)", "3114": "Toy Story 2 (1999)", "6": "Heat (1995)",
    "29": "City of Lost Children, The (1995)", "47": "Seven (Se7en) (1995)",
    "50": "Usual Suspects, The (1995)", "260": "Star Wars: Episode IV - A New Hope (1977)",
    "1196": "Star Wars: Episode V - The Empire Strikes Back (1980)",
    "2628": "Star Wars: Episode I - The Phantom Menace (1999)",
    "858": "Godfather, The (1972)", "1221": "Godfather: Part II, The (1974)",
    "2023": "Godfather: Part III, The (1990)", "318": "Shawshank Redemption, The (1994)",
    "527": "Schindler's List (1993)", "2324": "Life Is Beautiful (La Vita è bella) (1997)",
    "750": "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb (1963)",
    "356": "Forrest Gump (1994)", "2571": "Matrix, The (1999)", "1617": "L.A. Confidential (1997)",
    "1199": "Brazil (1985)", "2959": "Fight Club (1999)", "1089": "Reservoir Dogs (1992)",
    "3578": "Gladiator (2000)", "1387": "Jaws (1975)", "3000": "Cup, The (Phörpa) (1999)", "1389": "Jaws 3-D (1983)",
    "2947": "Goldfinger (1964)", "1200": "Aliens (1986)", "1214": "Alien (1979)",
    "1320": "Alien³ (1992)", "1690": "Alien: Resurrection (1997)", "2161": "NeverEnding Story, The (1984)",
    "1234": "Sting, The (1973)", "1284": "Big Sleep, The (1946)", "1206": "Clockwork Orange, A (1971)",
    "2858": "American Beauty (1999)", "1136": "Monty Python and the Holy Grail (1974)",
    "1035": "Sound of Music, The (1965)", "2300": "Producers, The (1968)", "2058": "Negotiator, The (1998)",
    "1225": "Amadeus (1984)", "2020": "Dangerous Liaisons (1988)", "1580": "Men in Black (1997)",
    "1729": "Jackie Brown (1997)", "1704": "Good Will Hunting (1997)", "2692": "Run Lola Run (Lola rennt) (1998)",
    "1120": "People vs. Larry Flynt, The (1996)", "3052": "Dogma (1999)", "1923": "There's Something About Mary (1998)",
}


def exact_only(titles, **kw):
    return TitleMatcher(titles, cutoff=100, **kw)


def fuzzy(titles, **kw):
    return TitleMatcher(titles, **kw)


MATCHERS = [pytest.param(exact_only, id="exact"), pytest.param(fuzzy, id="exact+fuzzy")]


@pytest.fixture(scope="module")
def ml():
    return TitleMatcher(ML)


@pytest.mark.parametrize("build", MATCHERS)
@pytest.mark.parametrize("query,item", [
    ("The Usual Suspects", "50"), ("Usual Suspects (1995)", "50"), ("usual suspects, the", "50"),
    ("USUAL SUSPECTS, THE (1995)", "50"), ("“The Usual Suspects”", "50"),
    ("City of Lost Children", "29"), ("The City of Lost Children (1995)", "29"),
    ("Se7en", "47"), ("Seven", "47"), ("Se7en (1995)", "47"),
    ("Life is Beautiful", "2324"), ("La vita e bella", "2324"), ("La Vita è Bella", "2324"),
    ("The Godfather Part II", "1221"), ("Godfather: Part 2", "1221"), ("The Godfather: Part III", "2023"),
    ("Schindlers List", "527"), ("Schindler’s List", "527"), ("The Matrix", "2571"), ("Matrix", "2571"),
    ("L.A. Confidential", "1617"), ("LA Confidential", "1617"), ("Run Lola Run", "2692"), ("Lola Rennt", "2692"),
    ("The People vs Larry Flynt", "1120"), ("A Clockwork Orange", "1206"), ("Clockwork Orange", "1206"),
    ("Monty Python & the Holy Grail", "1136"), ("Toy Story 2", "3114"), ("Toy Story II", "3114"),
    ("Alien", "1214"), ("Aliens", "1200"), ("Alien 3", None), ("Alien³", "1320"),
    ("There's Something About Mary", "1923"), ("Theres Something About Mary!", "1923"),
])
def test_movielens_titles_as_people_write_them(build, query, item):
    found = build(ML).match([query])[0]
    assert (found.item_id if found else None) == item


@pytest.mark.parametrize("query,item", [
    ("Usual Suspcts", "50"), ("The Usaul Suspects", "50"), ("Shawshank Redemtion", "318"),
    ("Forest Gump", "356"), ("Schindlers Lits (1993)", "527"), ("Reservior Dogs", "1089"),
    ("Goldfinder", "2947"), ("Amadeous", "1225"), ("Teh Matrix", "2571"), ("Good Wil Hunting", "1704"),
    ("Dangerous Liasons", "2020"), ("Jackie Browne", "1729"), ("American Beuaty (1999)", "2858"),
])
def test_typos_are_fixed_by_fuzzy_matching(ml, query, item):
    found = ml.match([query])[0]
    assert found is not None and found.item_id == item and found.method == "fuzzy", found
    assert exact_only(ML).match([query]) == [None]


@pytest.mark.parametrize("query", [
    "Inception", "The Dark Knight", "Toy Story 3", "Toy Story 4 (2019)", "Godfather: Part IV",
    "Heat 2", "Alien: Covenant", "Jaws 2", "Gladiator II", "Fight Club 2", "Amelie",
    "The Big Lebowski", "Goodfellas", "Dogma 2", "Men in White", "Brazil: The Sequel",
    "The Sting II", "The Negotiators", "The Producer (2005)", "Sound of Silence", "Up", "Jaw",
])
def test_titles_not_in_the_catalog_are_rejected_not_snapped(ml, query):
    assert ml.match([query]) == [None]


def test_remakes_resolved_by_year_and_tie_break():
    titles = {"a": "Heat (1995)", "b": "Heat (1986)", "c": "Psycho (1960)", "d": "Psycho (1998)"}
    m = TitleMatcher(titles)
    got = [x.item_id for x in m.match(["Heat (1986)", "Heat (1995)", "Heat (1987)", "Psycho (1998)"])]
    assert got == ["b", "a", "b", "d"]
    assert m.match(["Heat"])[0].item_id == "a"  # no year, no popularity: catalog order
    assert TitleMatcher(titles, tie_break="latest").match(["Heat"])[0].item_id == "a"
    assert TitleMatcher(titles, tie_break="earliest").match(["Heat"])[0].item_id == "b"
    popular = TitleMatcher(titles, popularity={"a": 3, "b": 40})
    assert popular.match(["Heat"])[0].item_id == "b"
    assert popular.match(["Heat (1995)"])[0].item_id == "a"  # the year beats popularity


def test_a_year_far_from_every_item_rules_the_title_out():
    m = TitleMatcher({"c": "Psycho (1960)", "h": "Heat (1995)"})
    assert m.match(["Psycho (1998)", "Psycho (1961)", "Heat (2019)"])[0] is None
    assert m.match(["Psycho (1961)"])[0].item_id == "c"  # off by one: a model's slip
    assert TitleMatcher({"c": "Psycho (1960)"}, year_window=None).match(["Psycho (1998)"])[0].item_id == "c"


def test_duplicate_catalog_titles_are_all_reachable():
    titles = {"x1": "Hamlet (1996)", "x2": "Hamlet (1996)", "x3": "Hamlet (1948)"}
    m = TitleMatcher(titles)
    assert m.match(["Hamlet (1996)"])[0].item_id == "x1"
    assert m.match(["Hamlet (1948)"])[0].item_id == "x3"
    assert m.stats()["ambiguous_keys"] == 1
    assert m.restrict(["x2", "x3"]).match(["Hamlet (1996)"])[0].item_id == "x2"


def test_subtitle_aliases():
    m = TitleMatcher(ML)
    # A head three titles share names a franchise: only popularity or a year picks one.
    assert m.match(["Star Wars"]) == [None]
    popular = TitleMatcher(ML, popularity={"260": 50, "1196": 40, "2628": 30})
    assert popular.match(["Star Wars"])[0].item_id == "260"
    assert m.match(["Star Wars (1999)"])[0].item_id == "2628"
    assert m.match(["The Empire Strikes Back"])[0].item_id == "1196"
    assert m.match(["Star Wars: The Phantom Menace"])[0].item_id == "2628"
    assert m.match(["Dr. Strangelove"])[0].item_id == "750"
    assert popular.match(["Star Wars"])[0].method == "alias"
    assert TitleMatcher(ML, subtitle_aliases=False, popularity={"260": 1}).match(["Star Wars"]) == [None]


def test_restricted_mode_matches_only_candidates(ml):
    within = ["6", "50", "1", "3114"]
    assert [m and m.item_id for m in ml.match(["Heat", "Se7en", "Usual Suspcts"], within=within)] == ["6", None, "50"]
    sub = ml.restrict(within)
    assert len(sub) == 4 and sub.match(["toy story 2"])[0].item_id == "3114"
    assert ml.match(["Se7en"])[0].item_id == "47"  # the full matcher is untouched
    with pytest.raises(RecllmError, match="not in the catalog"):
        ml.restrict(["nope"])
    with pytest.raises(RecllmError, match="at least one"):
        ml.restrict([])


def test_empty_catalog_is_a_clear_error():
    with pytest.raises(RecllmError, match="empty catalog"):
        TitleMatcher({})


def test_bad_options_are_clear_errors():
    with pytest.raises(RecllmError, match="tie_break"):
        TitleMatcher(ML, tie_break="newest")
    with pytest.raises(RecllmError, match="cutoff"):
        TitleMatcher(ML, cutoff=120)


def test_odd_titles_and_queries_do_not_crash():
    m = TitleMatcher({"1": "!!! (2005)", "2": "", "3": "   ", "4": "M (1931)", "5": "9 (2009)", "6": "Ça (1999)"})
    assert m.match(["!!!"])[0].item_id == "1"
    assert m.match(["M"])[0].item_id == "4"
    assert m.match(["9"])[0].item_id == "5"
    assert m.match(["ca"])[0].item_id == "6"
    assert m.match(["", "   ", "\x00\x01", "(1995)", "a" * 5000]) == [None] * 5


def test_from_catalog_uses_raw_titles_years_and_display_titles(tiny_dataset):
    m = TitleMatcher.from_catalog(tiny_dataset.catalog)
    found = m.match(["Usual Suspects", "Shanghai Triad", "Yao a yao yao dao waipo qiao", "Heat (1986)",
                     "{{ config }} {% raw %}"])
    assert [f.item_id for f in found] == ["3", "6", "6", "9", "12"]
    assert found[0].title == "The Usual Suspects"  # Match.title is the catalog's display title
    assert isinstance(found[0], Match) and found[0].score == 100.0


def test_match_key_is_the_shared_title_key_plus_sequel_numbers():
    assert match_key("Usual Suspects, The (1995)") == match_key("the usual suspects") == "usual suspects"
    assert match_key("Rocky II") == match_key("Rocky 2") == "rocky 2"
    assert match_key("I, Robot") != match_key("Robot")


def test_results_cache_is_bounded():
    m = TitleMatcher(ML, cache_size=10)
    for i in range(100):
        m.match_one(f"Unknown Title {i}")
    assert len(m._cache) <= 10
    assert m.match_one("Heat").item_id == "6"


def test_blocking_finds_typos_in_a_large_catalog():
    rng = random.Random(0)
    words = ["".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(3)) for _ in range(3000)]
    titles = {str(i): f"{rng.choice(words)} {rng.choice(words)} {rng.choice(words)}" for i in range(30_000)}
    titles["target"] = "Kalimero Sunset Boulevard"
    m = TitleMatcher(titles)
    assert m.match(["Kalimero Sunset Boulevrad"])[0].item_id == "target"
    assert m.match(["Kalimero Sunrise Boulevard"]) == [None]


def test_from_catalog_reads_an_alternates_column(tiny_dataset):
    import numpy as np

    table = tiny_dataset.catalog.table.copy()
    table["alternates"] = [np.array(["Die Üblichen Verdächtigen", "Suspects"]) if i == "3" else None
                           for i in table.index]
    from recllm.data.schema import Catalog

    m = TitleMatcher.from_catalog(Catalog(table))
    assert m.match(["Die üblichen Verdächtigen"])[0].item_id == "3"


# ---------------------------------------------------------------------------- issue 8, items 4/5/19


@pytest.mark.parametrize("build", MATCHERS)
@pytest.mark.parametrize("query,item", [
    ("Independence Day (ID4) (1996)", "780"), ("Independence Day (ID4)", "780"), ("ID4", "780"),
    ("Seven (Se7en) (1995)", "47"), ("Seven (Se7en)", "47"),
    ("Horseman on the Roof, The (Hussard sur le toit, Le) (1995)", "34"),
    ("Killer, The (Die xue shuang xiong) (1989)", "k89"), ("Killer, The (Die xue shuang xiong)", "k89"),
    ("Clean Slate (Coup de Torchon)", "cs81"), ("Clean Slate (1994)", "cs94"),
])
def test_a_catalog_title_with_an_alternate_in_parentheses_finds_itself(build, query, item):
    """The query is read the way the catalog title was: display part, then each alternate."""
    titles = {**ML, "780": "Independence Day (ID4) (1996)",
              "34": "Horseman on the Roof, The (Hussard sur le toit, Le) (1995)",
              "k89": "Killer, The (Die xue shuang xiong) (1989)", "k94": "Killer (Bulletproof Heart) (1994)",
              "cs81": "Clean Slate (Coup de Torchon) (1981)", "cs94": "Clean Slate (1994)"}
    found = build(titles).match_one(query)
    assert (found.item_id if found else None) == item


@pytest.mark.parametrize("build", MATCHERS)
def test_a_bare_trailing_year_is_read_as_the_year(build):
    titles = {"lo": "Law and Order (1953)", "lo2": "Law and Order (1969)", "br": "Blade Runner (1982)",
              "dr": "Death Race 2000 (1975)", "h": "Heat (1995)"}
    m = build(titles)
    for query, item in [("Law and Order 1953", "lo"), ("Law and Order - 1969", "lo2"),
                        ("Law and Order, 1953", "lo"), ("Law and Order [1969]", "lo2"),
                        ("Law and Order: 1953", "lo"), ("Death Race 2000", "dr"),
                        ("Death Race 2000 1975", "dr"), ("Heat 1995", "h"), ("Heat 1996", "h")]:
        found = m.match_one(query)
        assert found is not None and found.item_id == item, query
    # A number that is no item's year is part of another title, not a year.
    assert m.match(["Blade Runner 2049", "Heat 2019", "Law and Order 2001"]) == [None] * 3
    assert build({"x": "Blade Runner"}).match_one("Blade Runner 2049") is None  # no year known


def test_a_bare_year_with_a_typo_in_the_title():
    m = TitleMatcher({**ML, "lo": "Law and Order (1953)"})
    assert m.match_one("Law and Ordr 1953").item_id == "lo"
    assert m.match_one("Shawshank Redemtion - 1994").item_id == "318"


@pytest.mark.parametrize("build", MATCHERS)
def test_the_article_tells_apart_titles_that_share_a_key(build):
    m = build({"i89": "Island (1989)", "i83": "Island, The (1983)",
               "les": "Boys, Les (1997)", "the": "Boys, The (1997)"})
    got = [f.item_id for f in m.match(["The Island", "Island", "Island, The", "island", "The Boys (1997)",
                                       "Les Boys", "Boys, Les (1997)", "THE ISLAND (1983)"])]
    assert got == ["i83", "i89", "i83", "i89", "the", "les", "les", "i83"]
    popular = build({"i89": "Island (1989)", "i83": "Island, The (1983)"}, popularity={"i89": 50, "i83": 1})
    assert popular.match_one("The Island").item_id == "i83"  # the answer's own words beat popularity
    assert popular.match_one("Island (1983)").item_id == "i83"  # and a year beats both


def test_a_huge_word_stays_out_of_the_spelling_index():
    """A word's deletion neighbourhood is quadratic in its length: 20,000 letters took 480 MB."""
    rng = random.Random(0)
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(20_000))
    m = TitleMatcher({"w": word, "h": "Heat (1995)", "f": f"Fargo {word[:30]}"})
    assert m.words.del_hashes.nbytes < 10_000
    assert m.match_one(word).item_id == "w"  # still found by its key
    assert m.match_one(word + "!").item_id == "w"  # punctuation is not part of the key
    query = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(30_000))
    assert m.match([query, "x " * 50_000, "Heet (1995)"])[:2] == [None, None]
    assert m.match_one("Heet (1995)").item_id == "h"


@pytest.mark.timeout(20)  # a hang guard: these took ~80 s each before (quadratic regexes)
def test_long_runs_of_spaces_in_titles_and_queries_stay_linear():
    spaced = "x" + " " * 100_000 + "y"
    m = TitleMatcher({"s": spaced, "o": "Dr. Strangelove" + " " * 100_000 + "or: How I Learned", "h": "Heat"})
    assert m.match_one(spaced).item_id == "s"
    assert m.match_one(" " * 99_000 + "Heat (1995)").item_id == "h"
    assert m.match_one("Heat" + " " * 300_000) is None  # past the query cap: prose, not a title


def test_a_slip_is_a_typo_where_the_rest_of_the_title_vouches_for_it():
    """Large catalogs make nearly every short word "real" somewhere; an intact rest of the title
    (two words, 12+ letters) still tells a slip from another title."""
    titles = {"k": "Kickboxer 2: The Road Back (1991)", "r1": "Rack Attack", "r2": "The Rack (1956)",
              "n": "Night at the Museum (2006)", "p": "The Pirates! Band of Misfits (2012)",
              "t": "Te Ata (2016)", "t2": "Te Amo (2001)", "rk": "Return of the King (2003)",
              "to": "To Live (1994)", "to2": "To Be or Not to Be (1942)", "ng": "Negotiator, The (1998)",
              "rv": "Rocky V (1990)"}
    m = TitleMatcher(titles)
    for query, item in [("Kickboxer 2: The Road Rack (1991)", "k"), ("Night at te Museum (2006)", "n"),
                        ("Night at thf Museum", "n"), ("The Pirates! Band of Misfit", "p"), ("Rocky 5", "rv")]:
        found = m.match_one(query)
        assert found is not None and found.item_id == item, query
    # Another real word where the rest is short, another function word, a plural of a short title.
    assert m.match(["The Rack Back", "Return to the King", "The Negotiators", "Rocky 6"]) == [None] * 4


def test_year_and_first_letter_in_fuzzy_matching():
    m = TitleMatcher({"c": "Cars (2006)", "f": "Facets (1990)", "fa": "Facts of Life (1960)", "x": "Facts and Figures",
                      "y": "Facts (2001)", "g": "Gamer (2009)"})
    assert m.match(["Scars", "Amer"]) == [None, None]  # one word, another first letter: another word
    assert m.match_one("Facts (1990)").item_id == "f"  # "facts" is a real word, but the year is Facets'
    assert m.match_one("Amer (2009)") is None  # a film of its own, whatever the year


def test_a_franchise_head_needs_a_year_or_popularity():
    titles = {"1": "Mobile Suit Gundam: The Origin (2015)", "2": "Mobile Suit Gundam: Char's Counterattack (1988)",
              "3": "Borat: Cultural Learnings of America for Make Benefit Glorious Nation of Kazakhstan (2006)"}
    m = TitleMatcher(titles)
    assert m.match_one("Mobile Suit Gundam") is None
    assert m.match_one("Mobile Suit Gundam (1988)").item_id == "2"
    assert m.match_one("Borat").item_id == "3"  # a head only one title has


def test_a_slip_in_a_short_word_beside_a_long_intact_one():
    m = TitleMatcher({"g": "Grizzly Man (2005)", "r": "Revelations (2008)", "mn": "Man on Fire (2004)",
                      "mo": "Man of Steel (2013)", "u": "Unleashed (2005)"})
    assert m.match_one("Grizzly Mrn").item_id == "g"  # "mrn" is no word of the catalog
    assert m.match_one("Grizzly On") is None  # "on" is one: another title
    assert m.match_one("Yevelations (2008)").item_id == "r"  # first letter, but the year vouches
    assert m.match(["Yevelations", "Nnleashed (2011)"]) == [None, None]


def test_a_trademark_sign_is_no_alternate_title_of_the_query():
    m = TitleMatcher({"f": "RISK(tm): Factions (2011)", "r": "Risk (2013)", "s": "Splinter Cell Double Agent(r) (2006)",
                      "d": "Dream Chronicles(r): The Chosen Child(tm) (2009)"})
    assert m.match_one("RISK(tm)").item_id == "f"  # the head of "RISK(tm): Factions", not "Risk"
    assert m.match_one("Dream Chronicles(r) (2006)").item_id == "d"  # not the 2006 "...Agent(r)"
    assert m.match_one("Dream Chronicles(r)").item_id == "d"
