"""Match keys: the shared `title_key`, sequel numbers, and short names of subtitled titles."""

from __future__ import annotations

import re

from recllm.data.titles import split_year, title_key

_ROMAN = {"ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6", "vii": "7", "viii": "8", "ix": "9",
          "xi": "11", "xii": "12", "xiii": "13"}


def match_key(text: str) -> str:
    """`title_key` plus Roman sequel numbers as digits ("Rocky II" == "Rocky 2")."""
    key = title_key(text)
    if not key:  # a title of punctuation only ("!!!") still deserves a key
        key = " ".join(split_year(text)[0].lower().split())
    if "i" in key or "v" in key or "x" in key:  # "V" alone is 5 too ("Rocky V"), on both sides
        words = key.split()
        if any(w in _ROMAN for w in words):
            key = " ".join(_ROMAN.get(w, w) for w in words)
    return key


_EPISODE = re.compile(r"^(.*?):\s*(?:Episode|Part|Chapter|Volume|Vol\.?|Book)\s+[\w.]+\s*[-–—:]\s*(.+)$")


def aliases(display: str) -> tuple[str, ...]:
    """Short names for a subtitled title, consulted only after every full key misses:
    "Star Wars: Episode V - The Empire Strikes Back" -> "star wars", "empire strikes back",
    "star wars empire strikes back"; "Dr. Strangelove or: How I ..." -> "dr strangelove"."""
    if ":" not in display:
        return ()
    head = display.split(":", 1)[0].strip()
    if head.endswith(" or"):  # "Dr. Strangelove or: How I ..." (no "\s+or$": quadratic on long spaces)
        head = head[:-3].rstrip()
    names = [head]
    episode = _EPISODE.match(display)
    if episode:
        names += [episode.group(2), f"{episode.group(1)} {episode.group(2)}"]
    keys = [match_key(n) for n in names]
    return tuple(k for i, k in enumerate(keys) if len(k) >= 4 and k not in keys[:i])


def query_year(text: str) -> int | None:
    return split_year(text)[1]


# "Law and Order 1953", "Title - 1953", "Title, 1953", "Title: 1953": a year written without brackets.
_BARE_YEAR = re.compile(r"(?<![\d.])\s*[-–—,:]?\s*(1[89]\d\d|20\d\d)\s*[.!]?$")


def split_bare_year(text: str) -> tuple[str, int] | None:
    """("Law and Order 1953") -> ("Law and Order", 1953), or None. Only a reading: "Blade Runner
    2049" is a title, so the matcher tries the whole text first and takes this reading only
    for items whose known year is near the number."""
    text = text.rstrip()
    match = _BARE_YEAR.search(text, max(0, len(text) - 16))
    if not match or not any(ch.isalpha() for ch in text[: match.start()]):
        return None
    return text[: match.start()].rstrip(" -–—,:"), int(match.group(1))
