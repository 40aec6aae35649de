"""Free-text answer -> ordered list of titles.

LLMs answer in many shapes: numbered or bulleted lists, markdown, JSON (bare or fenced, often
cut off by the token limit), one-line comma lists, "Title (1995) - why you'd like it", prose
starting with a title, reasoning blocks. `parse_titles` reads all of them without knowing the
catalog; the matcher decides later which strings are real items. Every step is linear in the
text and capped, so a million-character or binary answer costs milliseconds, not minutes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from recllm.data.titles import title_key
from recllm.grounding.clean import CHATTER, clean_item, split_inline

MAX_CHARS = 100_000  # an answer of k titles never needs more; the rest is counted as truncated
MAX_LINES = 5_000
MAX_TITLES = 500
MAX_JSON_TRIES = 16

_REASONING_TAGS = ("think", "thinking", "reasoning", "reflection")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")
# "1. ", "1) ", "(1) ", "#1 ", "1: ", "- ", "* ", "• " after optional markdown heading/bold.
_LIST_ITEM = re.compile(
    r"^(?P<indent>\s*)(?:#{1,6}\s+)?(?:\*\*|__)?(?:(?:assistant|answer)\s*:\s*)?"
    r"(?:(?:(?:recommendation|pick|choice|option|movie|film|book|title|item|no\.?|number)\s*)?"
    r"\(?#?\d{1,3}\s*[.):\]]|(?:recommendation|pick|choice|option)\s*#?\d{1,3}\s*[-–—]"
    r"|#\d{1,3}\b|(?P<bullet>[-*•+·▪►‣◦]))(?:\*\*|__)?\s+(?P<body>\S.*)$",
    re.I,
)
# "1. Heat 2. Fargo 3. Jumanji" on one line: markers preceded by a space, numbered 1, 2, 3 ...
_INLINE_NUMBER = re.compile(r"(?:^|(?<=\s))(\d{1,2})[.)]\s+(?=\S)")
# "1. 3. Heat": a second marker inside a numbered item (the model echoing a candidate's number).
_INNER_NUMBER = re.compile(r"^\(?\d{1,3}[.)]\s+(?=\S)")
_FENCE = re.compile(r"```[ \t]*([\w-]*)[ \t]*\n(.*?)(?:```|\Z)", re.S)
_TABLE_SEP = re.compile(r"^\s*\|?[\s:|-]+\|?\s*$")
_TITLE_FIELDS = ("title", "name", "movie", "film", "book", "item", "product", "song", "album",
                 "game", "show", "movie_title", "item_title")
_LIST_FIELDS = ("recommendations", "recommended", "movies", "films", "books", "items", "titles",
                "results", "list", "ranking", "ranked", "answer", "output", "products", "songs")
_JSON_FIELD_STR = re.compile(
    r'"(?:' + "|".join(_TITLE_FIELDS) + r')"\s*:\s*"((?:[^"\\\n]|\\.){1,300})"', re.I
)
_JSON_STR = re.compile(r'"((?:[^"\\\n]|\\.){1,300})"\s*(?=[,\]\n]|$)')
_JSON_YEAR = ("year", "release_year", "released")
_JSON_LINE_GAP = re.compile(r"[\s,]*")


@dataclass(frozen=True)
class ParsedAnswer:
    """Titles read from one answer, in answer order, each at most once.

    `alternatives[i]` holds other readings of `titles[i]` (the uncut line when a reason or an
    author was cut off), tried by the matcher when `titles[i]` finds nothing. `n_duplicates`
    counts titles the answer repeated. `failure` says why no title came out ("empty",
    "reasoning only", "unfinished reasoning", "unreadable", "no titles found").
    """

    titles: tuple[str, ...]
    alternatives: tuple[tuple[str, ...], ...] = ()
    n_duplicates: int = 0
    format: str = "none"  # json | list | table | inline | lines
    failure: str | None = None
    truncated: bool = False


def parse_titles(text: str, *, max_titles: int = MAX_TITLES, max_chars: int = MAX_CHARS) -> ParsedAnswer:
    """Read the titles an LLM wrote, in order; never raises on bad input."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if not text.strip():
        return ParsedAnswer((), failure="empty")
    text, unfinished = strip_reasoning(text)
    if not text.strip():
        return ParsedAnswer((), failure="unfinished reasoning" if unfinished else "reasoning only")
    truncated = len(text) > max_chars
    text = text[:max_chars]
    n_bad = len(_CONTROL.findall(text))
    if n_bad > 0.2 * len(text):
        return ParsedAnswer((), failure="unreadable", truncated=truncated)
    if n_bad:
        text = _CONTROL.sub(" ", text)
    for fmt, reader in (("json", _json_items), ("table", _table_items), ("list", _list_items),
                        ("inline", _inline_items), ("lines", _line_items)):
        items = reader(text)
        if items:
            return _finish(items, fmt, truncated, max_titles)
    return ParsedAnswer((), failure="no titles found", truncated=truncated)


def strip_reasoning(text: str) -> tuple[str, bool]:
    """Drop `<think>...</think>` (and thinking/reasoning/reflection) blocks.

    An opening tag that never closes means the model ran out of tokens while reasoning: the
    rest is dropped and the second value is True. A closing tag with no opening one (chat
    templates that put `<think>` in the prompt) keeps only the text after it.
    """
    low = text.lower()
    if "<" not in low:
        return text, False
    for tag in _REASONING_TAGS:
        close = f"</{tag}>"
        first_close, first_open = low.find(close), low.find(f"<{tag}>")
        if first_close != -1 and (first_open == -1 or first_close < first_open):
            cut = first_close + len(close)
            text, low = text[cut:], low[cut:]
    out: list[str] = []
    pos, unfinished = 0, False
    while True:
        starts = [(low.find(f"<{t}>", pos), t) for t in _REASONING_TAGS]
        starts = [(i, t) for i, t in starts if i != -1]
        if not starts:
            out.append(text[pos:])
            break
        start, tag = min(starts)
        out.append(text[pos:start])
        end = low.find(f"</{tag}>", start)
        if end == -1:
            unfinished = True
            break
        pos = end + len(tag) + 3
    return "".join(out), unfinished


Item = tuple[str, tuple[str, ...]]  # (title, alternative readings)


def _finish(items: list[Item], fmt: str, truncated: bool, max_titles: int) -> ParsedAnswer:
    titles: list[str] = []
    alts: list[tuple[str, ...]] = []
    seen: set[str] = set()
    dups = 0
    for title, alt in items:
        # Same title, same year, same other readings: "Life" cut from "Life is Beautiful - ..."
        # is not a repeat of a later plain "Life".
        key = "|".join([title_key(title), title[-5:-1] if title.endswith(")") else "", *alt])
        if key in seen:
            dups += 1
            continue
        if len(titles) >= max_titles:
            truncated = True
            break
        seen.add(key)
        titles.append(title)
        alts.append(alt)
    return ParsedAnswer(tuple(titles), tuple(alts), dups, fmt, None, truncated)


# ---------------------------------------------------------------------------------- JSON


def _json_items(text: str) -> list[Item] | None:
    """Titles from a JSON array/object, fenced or bare; salvaged from JSON cut off mid-way."""
    stripped = text.lstrip()
    blocks = [m.group(2) for m in _FENCE.finditer(text) if m.group(1).lower() in ("", "json", "jsonl")]
    looks_json = stripped[:1] in "[{" or any(b.lstrip()[:1] in "[{" for b in blocks)
    if not looks_json:
        return None
    decoder = json.JSONDecoder()
    for source in [*blocks, text]:
        pos, tries = 0, 0
        while tries < MAX_JSON_TRIES:
            starts = [i for i in (source.find("[", pos), source.find("{", pos)) if i != -1]
            if not starts:
                break
            start, tries = min(starts), tries + 1
            try:
                value, end = decoder.raw_decode(source, start)
            except (ValueError, RecursionError):
                if source[:start].strip() == "" or tries == 1:
                    break  # the JSON itself is broken: salvage below, don't read inner parts
                pos = start + 1
                continue
            titles = _from_json(value, depth=0)
            if titles:
                if isinstance(value, dict) and len(titles) == 1:
                    titles += _json_lines_rest(decoder, source, end)
                return [(t, ()) for t in titles]
            pos = end
    # Unbalanced JSON (the model hit its token limit): take the quoted titles that are there.
    body = next((b for b in blocks if b.lstrip()[:1] in "[{"), stripped)
    found = [_unescape(m.group(1)) for m in _JSON_FIELD_STR.finditer(body)]
    if not found:
        found = [_unescape(m.group(1)) for m in _JSON_STR.finditer(body)]
    return [(t.strip(), ()) for t in found if t.strip()] or None


def _json_lines_rest(decoder: json.JSONDecoder, source: str, pos: int) -> list[str]:
    """Titles of the objects that follow a one-title object: JSON lines ({"title": ..} per line),
    as small models write when asked for an array without structured output."""
    titles: list[str] = []
    while len(titles) < MAX_TITLES:
        match = _JSON_LINE_GAP.match(source, pos)
        if not match or match.end() >= len(source) or source[match.end()] != "{":
            break
        try:
            value, pos = decoder.raw_decode(source, match.end())
        except (ValueError, RecursionError):
            break
        more = _from_json(value, depth=0) if isinstance(value, dict) else []
        if len(more) != 1:
            break
        titles += more
    return titles


def _from_json(value, depth: int) -> list[str]:
    if depth > 4:
        return []
    if isinstance(value, str):
        title = clean_item(value)
        return [title[0]] if title else []
    if isinstance(value, list):
        return [t for v in value for t in _from_json(v, depth + 1)]
    if not isinstance(value, dict):
        return []
    lower = {str(k).lower(): v for k, v in value.items()}
    for field in _TITLE_FIELDS:
        if isinstance(lower.get(field), str) and lower[field].strip():
            title = lower[field].strip()
            year = next((lower[y] for y in _JSON_YEAR if y in lower), None)
            if year is not None and re.fullmatch(r"\d{4}", str(year)) and not re.search(r"\(\d{4}\)\s*$", title):
                title = f"{title} ({year})"
            return [title]
    for field in _LIST_FIELDS:
        if isinstance(lower.get(field), (list, dict)):
            return _from_json(lower[field], depth + 1)
    lists = [v for v in value.values() if isinstance(v, list)]
    if lists:
        return _from_json(lists[0], depth + 1)
    # {"1": "Heat", "2": "Fargo"}: a ranking written as an object.
    if value and all(isinstance(v, str) for v in value.values()):
        return [t for v in value.values() for t in _from_json(v, depth + 1)]
    return []


def _unescape(s: str) -> str:
    try:
        return json.loads(f'"{s}"')
    except ValueError:
        return s


# ---------------------------------------------------------------------------------- lists


def _list_items(text: str) -> list[Item] | None:
    """Numbered items at the outermost level (sub-bullets are reasons), else outermost bullets."""
    found = []
    for line in text.splitlines()[:MAX_LINES]:
        for part in _split_inline_numbers(line):
            m = _LIST_ITEM.match(part)
            if m:
                numbered = m.group("bullet") is None
                body = _INNER_NUMBER.sub("", m.group("body"), count=1) if numbered else m.group("body")
                found.append((len(m.group("indent").expandtabs(4)), numbered, body))
    if not found:
        return None
    numbered = any(n for _, n, _ in found)
    level = min(indent for indent, n, _ in found if n == numbered)
    items = [clean_item(body) for indent, n, body in found if n == numbered and indent == level]
    return [it for it in items if it] or None


def _split_inline_numbers(line: str) -> list[str]:
    """A line holding a whole numbered list, split into its items (text before "1." dropped)."""
    if len(line) > 2_000 or line.count(". ") + line.count(") ") < 2:
        return [line]
    marks = [m for m in _INLINE_NUMBER.finditer(line)]
    numbers = [int(m.group(1)) for m in marks]
    if len(marks) < 2 or numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return [line]
    return [line[a.start(): b.start()].strip() for a, b in zip(marks, marks[1:])] + [line[marks[-1].start():]]


def _table_items(text: str) -> list[Item] | None:
    """Markdown tables: the "title"-like column, else the first cell that is not a rank."""
    lines = [ln for ln in text.splitlines()[:MAX_LINES] if ln.lstrip().startswith("|")]
    if len(lines) < 2 or not any(_TABLE_SEP.match(ln) for ln in lines):
        return None
    column, items = None, []
    for i, line in enumerate(lines):
        if _TABLE_SEP.match(line):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1]):  # header row
            heads = [c.strip("*_ ").lower() for c in cells]
            column = next((j for j, h in enumerate(heads) if h in _TITLE_FIELDS), None)
            continue
        if column is not None and column < len(cells):
            cell = cells[column]
        else:
            cell = next((c for c in cells if c and not re.fullmatch(r"[#\d.\s*]+", c)), "")
        item = clean_item(cell)
        if item:
            items.append(item)
    return items or None


def _inline_items(text: str) -> list[Item] | None:
    """A one-line list: "I'd suggest Heat, Fargo, and Braveheart." (the longest such line)."""
    best: list[Item] | None = None
    for line in text.splitlines()[:MAX_LINES]:
        if line.count(",") + line.count(";") < 2:
            continue
        items = split_inline(line)
        if items and (best is None or len(items) > len(best)):
            best = items
    return best


def _line_items(text: str) -> list[Item] | None:
    """One title a line, or prose lines that start with a title; chatter lines skipped."""
    items = []
    for line in text.splitlines()[:MAX_LINES]:
        line = line.strip()
        if not line or line.endswith(":") or CHATTER.match(line) or line.startswith("```"):
            continue
        item = clean_item(line, prose=True)
        if item:
            items.append(item)
    return items or None
