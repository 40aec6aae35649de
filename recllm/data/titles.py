"""Titles as people and catalogs write them, and the one normalization every matcher shares.

MovieLens writes "Usual Suspects, The (1995)", "Cité des enfants perdus, La (1995)" and
"Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)". `split_title` turns these into a
display title ("The Usual Suspects"), the year and alternate titles; `title_key` maps every
way of writing a title to one lookup key ("usual suspects") for exact matching.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

# Articles that catalogs move to the end ("Mann, Der"); broad, since ", X" at the very end is a
# strong signal. Apostrophe forms (L') attach to the next word without a space.
TRAILING_ARTICLES = frozenset(
    "the a an le la les l' un une el los las il lo gli i der die das ein eine "
    "o os as um uma de het een den det en ett".split()
)
# Leading articles dropped from the lookup key. Narrower than the above on purpose: "I, Robot",
# "Die Hard", "O Brother" and "De-Lovely" must keep their first word.
KEY_ARTICLES = frozenset("the a an le la les l el los las il lo gli der das une un una uno".split())

# End-anchored patterns run on right-stripped text and start at a bracket, never with "\s*":
# a leading "\s*" rescans a long run of spaces from every position (quadratic time).
_YEAR_AT_END = re.compile(r"[\(\[]\s*(\d{4})(?:\s*[-–]\s*(?:\d{4})?)?\s*[\)\]]$")
_PAREN_AT_END = re.compile(r"\(([^()]*)\)$")
_AKA = re.compile(r"^(?:a\.?k\.?a\.?|aka)\s+", re.IGNORECASE)
_ELIDED_ARTICLE = re.compile(r"^[ld]['’]\s*(?=\w)")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_INITIALS = re.compile(r"(?<=\b\w)\.(?=\w\b)")


@dataclass(frozen=True)
class TitleParts:
    """A raw catalog title taken apart."""

    raw: str
    display: str
    year: int | None = None
    alternates: tuple[str, ...] = field(default_factory=tuple)


def split_year(text: str) -> tuple[str, int | None]:
    """("Heat (1995)") -> ("Heat", 1995); brackets and year ranges ("(2006– )") too."""
    text = text.strip()
    match = _YEAR_AT_END.search(text, max(0, len(text) - 40))  # a year group is short
    if not match:
        return text, None
    return text[: match.start()].strip(), int(match.group(1))


def move_trailing_article(text: str) -> str:
    """"Usual Suspects, The" -> "The Usual Suspects"; "Homme du train, L'" -> "L'Homme du train"."""
    text = text.strip()
    comma = text.rfind(",")
    body, article = text[:comma].rstrip(), text[comma + 1:].strip()
    if comma <= 0 or not body or article.lower() not in TRAILING_ARTICLES:
        return text
    return f"{article}{body}" if article.endswith("'") else f"{article} {body}"


def split_title(raw: str) -> TitleParts:
    """Display title, year and alternate titles of a catalog title such as MovieLens's."""
    text, year = split_year(raw or "")
    alternates: list[str] = []
    # Peel trailing "(alternate title)" groups; stop before eating the whole title.
    while True:
        text = text.rstrip()
        match = _PAREN_AT_END.search(text, max(0, text.rfind("(")))
        if not match or not text[: match.start()].strip():
            break
        alt = _AKA.sub("", match.group(1)).strip()
        if alt:
            alternates.insert(0, move_trailing_article(alt))
        text = text[: match.start()]
    display = move_trailing_article(text) or (raw or "").strip()
    return TitleParts(raw=raw, display=display, year=year, alternates=tuple(alternates))


@lru_cache(maxsize=1 << 18)
def title_key(text: str) -> str:
    """The lookup key shared by the data layer and every matcher.

    Folds case and accents, "&" to "and", drops punctuation, a trailing year, a trailing or
    leading article: "The Usual Suspects", "Usual Suspects, The (1995)" and
    "usual suspects" all give "usual suspects".
    """
    text, _ = split_year(text)
    text = move_trailing_article(text)
    if text.isascii():  # fast path: nothing to fold (most titles; matters at a million items)
        text = text.lower()
    else:
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    # Elided article ("L'Homme") goes; other apostrophes join ("Schindler's" -> "schindlers");
    # dotted initials join ("L.A." -> "la").
    text = _ELIDED_ARTICLE.sub("", text.strip()).replace("&", " and ").replace("'", "").replace("’", "")
    if "." in text:
        text = _INITIALS.sub("", text)
    words = _NON_WORD.sub(" ", text).split()
    if len(words) > 1 and words[0] in KEY_ARTICLES:
        words = words[1:]
    return " ".join(words)


def leading_article(text: str) -> str:
    """The article `title_key` drops from the front, lower-cased, or "": "Island, The (1983)" and
    "The Island" give "the", "Island" gives "". Tells apart titles that share a key."""
    text = move_trailing_article(split_year(text)[0]).lower()
    if text[:2] in ("l'", "l’") and text[2:3].isalnum():
        return "l'"
    words = text.split(maxsplit=2)
    return words[0] if len(words) > 1 and words[0] in KEY_ARTICLES else ""


def title_keys(parts: TitleParts) -> list[str]:
    """Every key an item answers to: its display title and each alternate, deduplicated."""
    keys = [title_key(parts.display), *(title_key(a) for a in parts.alternates)]
    return [k for i, k in enumerate(keys) if k and k not in keys[:i]]
