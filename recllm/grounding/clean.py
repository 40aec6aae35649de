"""One list item or line -> the title in it.

"**Heat** (1995) - a heist classic", "Heat (dir. Michael Mann, 1995)", "The Road by Cormac
McCarthy", "Title: Fargo", "The Lion King, which is ...": the title is the emphasized or quoted
span when there is one, else the text up to the year or up to the first separator that starts a
reason. Subtitles ("Star Wars: Episode IV - A New Hope") are kept when what follows a separator
reads like a title (short, capitalized). When a cut could be wrong ("Life is Beautiful" read as
"Life" + reason), the uncut text goes along as an alternative reading.
"""

from __future__ import annotations

import re
from functools import lru_cache

MAX_TITLE_CHARS = 300
MAX_TITLE_WORDS = 20
MAX_PROSE_WORDS = 12
MAX_LINE_CHARS = 1_000  # a line longer than this is prose; its title is near the start

_LINK = re.compile(r"\[([^\]\n]{1,300})\]\([^)\n]{0,500}\)")
_LABEL = re.compile(
    r"^(?:\*\*|__)?(?:title|movie|film|book|name|item|pick|recommendation|song|album|show|game|"
    r"product)(?:\s*#?\d{1,3})?(?:\*\*|__)?\s*[:：]\s*(?:\*\*|__)?\s*", re.I)
_PAIRS = (("***", "***"), ("**", "**"), ("__", "__"), ("*", "*"), ("_", "_"), ('"', '"'),
          ("“", "”"), ("”", "”"), ("«", "»"), ("„", "“"), ("‘", "’"), ("「", "」"), ("《", "》"))
_YEAR_GROUP = re.compile(r"[(\[]([^()\[\]\n]{0,60})[)\]]")
_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")
_YEAR_AFTER = re.compile(r"^\s*(?:[(\[][^()\[\]\n]{0,40}?(?<!\d)(1[89]\d\d|20\d\d)(?!\d)[^()\[\]\n]{0,20}[)\]]"
                         r"|[,–—-]\s*(1[89]\d\d|20\d\d)\b)")
_CLAUSE = (r"which|who|whose|where|when|because|since|as|it|its|it's|this|that|starring|directed|"
           r"written|featuring|about|with|for|from|is|was|has|set|based|known|one|another|also|"
           r"a|an|if|and it|the (?:story|film|movie|book|tale|classic|perfect)")
_SEP = re.compile(
    r"\s+[-–—]+\s+|\s*[:：]\s+|\s+\|\s+|\s+[-–—]{2,}\s*|\s*[–—]\s*(?=[a-z])"
    r"|,\s+(?=(?:" + _CLAUSE + r")\b)"
    r"|\s+(?=(?:is|are|was|were|follows|tells|explores|features|stars|offers|has been)\s)"
)
_BY_AUTHOR = re.compile(r"^(.*?\S)\s+by\s+((?:[A-Z][\w.'’-]*\.?\s*){2,4})$")
_LEAD = re.compile(
    r"^(?:(?:and|also|finally|lastly|then|or)\s+)?(?:i(?:'d| would)?\s+(?:also\s+|highly\s+)?"
    r"(?:recommend|suggest)(?:\s+(?:watching|reading|trying))?|you\s+(?:might|may|could|should|"
    r"would|will)\s+(?:also\s+|really\s+)?(?:like|enjoy|love|try|appreciate|want to (?:watch|read|"
    r"try|see))|try|check out|consider|watch|read|how about|maybe|perhaps)\s+", re.I)
# Lines that talk about the answer rather than list it.
CHATTER = re.compile(
    r"^\W*(?:sure|certainly|of course|absolutely|okay|ok|great|alright|here (?:are|is)|here's|"
    r"based on|given|considering|i hope|hope|i think|i believe|i'd|i would|i have|i've|i can|"
    r"i'm|i am|enjoy|let me|feel free|happy|these|this list|note|please|as an ai|below|"
    r"the following|if you|you (?:might|may|should|could|would|will)|thanks|thank you|"
    r"in summary|overall|recommendations?\b|my (?:top|picks|recommendations))\b",
    re.I,
)
_SMALL = frozenset("a an the of and in on at to for with from by or vs vs. de la le el du des "
                   "del der die das und of' o' n' is".split())
_SENTENCE_WORDS = frozenset("you your you'll you'd this that these it it's its is are was "
                            "were we our very really".split())


def clean_item(body: str, prose: bool = False) -> tuple[str, tuple[str, ...]] | None:
    """(title, alternative readings) of one list item or line; None when there is no title.

    `prose=True` for lines that were not list items: lead-ins such as "I'd recommend" are
    dropped and a long sentence that never yields a short title is rejected.
    Short items are memoized: answers repeat the same lines ("3. Fargo (1996)") across users,
    above all in candidate ranking, where models copy the candidates as shown.
    """
    if len(body) <= CACHED_CHARS:
        return _clean_cached(body, prose)
    return _clean(body, prose)


def _clean(body: str, prose: bool) -> tuple[str, tuple[str, ...]] | None:
    text = _LINK.sub(r"\1", body[:MAX_LINE_CHARS].replace("`", "")).strip()
    text = _LABEL.sub("", text, count=1)
    if prose:
        text = _LEAD.sub("", text, count=1)
    quoted = _emphasized(text)
    if quoted is not None:
        title, rest = quoted
        year = _YEAR_AFTER.match(rest)
        if year and not _YEAR_AT_END.search(title):
            title = f"{title} ({year.group(1) or year.group(2)})"
        return _valid(title, (), prose)
    text = text.replace("**", "").replace("__", "").strip(" *_\t")
    title, readings = _cut(text)
    # A list item's uncut text may be a long title ("The Man in the Ice: The Discovery of a
    # 5,000-Year-Old Body Reveals ..."); a prose line's is a sentence.
    alts = [_tidy(r) for r in readings if len(r.split()) <= MAX_PROSE_WORDS
            or not prose and len(r) <= MAX_TITLE_CHARS]
    m = _BY_AUTHOR.match(title)
    if m:
        alts.insert(0, _tidy(title))
        title = m.group(1)
    title = _tidy(title)
    return _valid(title, tuple(a for a in dict.fromkeys(alts) if a and a != title), prose)


CACHED_CHARS = 200  # items up to this long are memoized (at most CACHE_SIZE of them)
CACHE_SIZE = 1 << 15
_clean_cached = lru_cache(maxsize=CACHE_SIZE)(_clean)
_YEAR_AT_END = re.compile(r"[(\[]\s*\d{4}\s*[)\]]\s*$")
_OPENERS = frozenset(open_[0] for open_, _ in _PAIRS)
# Junk: a character that is not alnum, not space (\w is isalnum plus "_") and not punctuation
# titles are written with ("If....", "M*A*S*H"): ASCII's, Latin-1's, and the general
# punctuation block (dashes, quotes, ellipsis).
_JUNK = re.compile(r"[^\w\s!-/:-@\[-`{-~\u00a1-\u00bf\u2010-\u205e]")


def _emphasized(text: str) -> tuple[str, str] | None:
    """("Heat", " (1995) - ...") when the item starts with a **bold**/*italic*/"quoted" span."""
    if text[:1] not in _OPENERS:  # most items: no pair can open here
        return None
    for _ in range(3):  # **"Heat"** nests
        for open_, close in _PAIRS:
            if not text.startswith(open_):
                continue
            end = text.find(close, len(open_) + 1)
            while end != -1 and close in "*_" and end + len(close) < len(text) \
                    and text[end + len(close)].isalnum():  # an apostrophe-like _ inside a word
                end = text.find(close, end + 1)
            if end == -1:
                continue
            inner, rest = text[len(open_):end].strip(), text[end + len(close):]
            if not inner:
                continue
            inner_q = _emphasized(inner)
            if inner_q and not inner_q[1].strip():
                inner = inner_q[0]
            return inner.strip(" .,;:"), rest
        break
    return None


def _cut(text: str) -> tuple[str, list[str]]:
    """(title, other readings): cut at the year or at the separator that starts a reason."""
    for m in _YEAR_GROUP.finditer(text[:MAX_TITLE_CHARS * 2]):
        year = _YEAR.search(m.group(1))
        if year:
            head = text[: m.start()].rstrip()
            with_year = f"{head} ({year.group(1)})" if head else ""
            before, cut = _cut_reason(head, strong_only=True)
            return (before, [with_year]) if cut else (with_year, [])
    head = text[: MAX_TITLE_CHARS * 2]
    title, _ = _cut_reason(head)
    strong, _ = _cut_reason(head, strong_only=True)
    return title, [r for r in (strong, text) if r != title]


def _cut_reason(text: str, strong_only: bool = False) -> tuple[str, bool]:
    """Keep the text up to the first separator whose following part does not read like a title.

    Before a "(1995)" only dashes and colons count: "Life is Beautiful (1997)" stays whole.
    """
    for m in _SEP.finditer(text):
        sep = m.group(0).strip()
        strong = bool(sep) and sep[0] in ":：-–—|"
        if strong_only and not strong:
            continue
        nxt = _SEP.search(text, m.end())
        segment = text[m.end(): nxt.start() if nxt else len(text)]
        if strong and _continues(segment):
            continue
        return text[: m.start()].strip(), True
    return text.strip(), False


def _continues(segment: str) -> bool:
    """Does this part after ':' or ' - ' read like a subtitle ("Episode IV", "A New Hope")?"""
    words = segment.split()
    if not 1 <= len(words) <= 10 or segment.rstrip().endswith((".", "!", "?")) and len(words) > 3:
        return False
    if not (words[0][:1].isupper() or words[0][:1].isdigit()):
        return False
    big = [w for w in words[1:] if w.lower() not in _SMALL]
    if any(w.lower().strip(",.!?") in _SENTENCE_WORDS for w in words[1:]):
        return False
    return all(w[:1].isupper() or w[:1].isdigit() or not w[:1].isalpha() for w in big)


def _tidy(title: str) -> str:
    title = title.strip().strip("*_ \t")
    if not title.endswith("..."):  # an ellipsis is the title's own ("If....")
        title = title.rstrip(".,;:").strip()
    if len(title) >= 2 and title[0] in "\"“'«‘" and title[-1] in "\"”'»’":
        title = title[1:-1].strip()
    return title


def _valid(title: str, alts: tuple[str, ...], prose: bool) -> tuple[str, tuple[str, ...]] | None:
    title = _tidy(title)
    if not title or len(title) > MAX_TITLE_CHARS or not any(ch.isalnum() for ch in title):
        return None
    words = len(title.split())
    if words > (MAX_PROSE_WORDS if prose else MAX_TITLE_WORDS):
        return None
    # Junk (binary decoded as text): most characters neither text nor punctuation.
    if len(title) - len(_JUNK.findall(title)) < 0.6 * len(title):
        return None
    return title, alts


def split_inline(line: str) -> list[tuple[str, tuple[str, ...]]] | None:
    """The titles of a one-line list ("Try Heat, Fargo, and Braveheart."), or None."""
    line = line.strip()
    colon = line.find(": ")
    first_comma = min((i for i in (line.find(","), line.find(";")) if i != -1), default=-1)
    if 0 < colon < first_comma:
        lead = line[:colon]
        if CHATTER.match(lead) or len(lead.split()) >= 3 and sum(w[:1].islower() for w in lead.split()) >= 2:
            line = line[colon + 2:]
    sep = ";" if line.count(";") >= 2 else ","
    parts = [p.strip() for p in line.split(sep)]
    items, rejected = [], 0
    for part in parts:
        part = re.sub(r"^(?:and|or|&|as well as)\s+", "", part, flags=re.I)
        part = _LEAD.sub("", part, count=1)
        if not part or part[0].islower():
            rejected += 1
            continue
        item = clean_item(part.rstrip(".!"), prose=True)
        if item is None or len(item[0].split()) > 8:
            rejected += 1
            continue
        items.append(item)
    if len(items) < 2 or rejected > len(items):
        return None
    return items
