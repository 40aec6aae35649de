"""Is a near-identical catalog key the title the answer meant, or merely another title like it?

Character similarity alone cannot tell "Return of the Rosetta" (not in the catalog) from
"Return of the Rose", nor "Shadwos" (a typo) from "Shadows". Typos change a few letters of a
word and usually make a non-word; different titles differ by whole words, or by a letter that
makes another real word ("Fall King" / "Full King"). So a fuzzy candidate is accepted only when:

- the words line up one to one, or by one misspelled leading/trailing article ("Teh Matrix"),
  or the spaces sit elsewhere ("Day'sB each") and the texts without spaces are a typo apart;
- every differing word of the answer is not a word in its own right (see `_real_word`) and is
  within a typo of the catalog's word (optimal string alignment, a transposition is one edit):
  one edit, two when both words have 10+ letters and the first letter is right; a word of 1-3
  letters only with a letter dropped or two swapped ("th", "teh");
- at most one word differs, two in titles of three or more words or 12+ letters;
- numbers agree exactly ("Toy Story 3" is not "Toy Story 4"), and no word differs only by a
  plural ending ("Aliens" is not "Alien").
"""

from __future__ import annotations

from collections.abc import Mapping

from rapidfuzz.distance import OSA

STRONG_CONTEXT = 12  # letters of intact words (two or more) that vouch for a slip in another word
# Words whose slip ("te", "thf", "dnd") is a typo wherever the rest of the title is intact.
_FUNCTION_WORDS = frozenset("the and of in on to for with from at by".split())
_REAL_WORDS = frozenset("she thy tie toe tee then they them thee he ha as at in on to be "
                        "am and any ant ten tho ah oh eh hen".split())


def word_allowance(length: int) -> int:
    return 1 if length < 10 else 2


def _short_word_typo(a: str, b: str) -> bool:
    """A word of 1-3 letters mistyped: a letter dropped ("th", "nd", "o") or two swapped
    ("teh", "fo"). Anything else ("Go" for "To", "Or" for "For") is another word."""
    if len(a) == len(b) - 1:
        return any(b[:i] + b[i + 1:] == a for i in range(len(b)))
    return len(a) == len(b) and sorted(a) == sorted(b) and OSA.distance(a, b, score_cutoff=2) == 1


def typo_edits(query: str, candidate: str, vocab: Mapping[str, int], vouched: bool = False) -> int | None:
    """Edits that turn key `query` into key `candidate` if they look like typos, else None.

    `vouched`: other evidence (the answer's year is the item's) stands in for an intact rest
    of the title."""
    q, c = query.split(), candidate.split()
    if len(q) == len(c) + 1:  # a misspelled article the key could not strip
        for trimmed in (q[1:] if _article_typo(q[0], vocab) else None,
                        q[:-1] if _article_typo(q[-1], vocab, trailing=True) else None):
            edits = None if trimmed is None else _words_close(trimmed, c, vocab, vouched)
            if edits is not None:
                return edits + 1
    if len(q) == len(c):
        edits = _words_close(q, c, vocab, vouched)
        if edits is not None:
            return edits
    if abs(len(q) - len(c)) <= 1 and _boundaries(q) != _boundaries(c) \
            and any(vocab.get(w, 0) < 2 and w not in c for w in q):
        # A space typed in the wrong place ("Highi n Sam", which leaves a non-word): compare
        # without spaces.
        if [w for w in q if w.isdigit()] != [w for w in c if w.isdigit()]:
            return None
        a, b = "".join(q), "".join(c)
        allowed = 1 if len(b) < 16 else 2
        d = OSA.distance(a, b, score_cutoff=allowed + 1)
        return d + 1 if d <= allowed else None
    return None


def _boundaries(words: list[str]) -> list[int]:
    out, pos = [], 0
    for w in words[:-1]:
        pos += len(w)
        out.append(pos)
    return out


def _words_close(q: list[str], c: list[str], vocab: Mapping[str, int], vouched: bool = False) -> int | None:
    if len(q) != len(c) or not q:
        return None
    if len(q) == 1 and q[0][:1] != c[0][:1] and not (vouched and len(c[0]) >= 6):
        return None  # a one-word title with another first letter is another word ("Scars", "Cars")
    same = [a for a, b in zip(q, c) if a == b]
    # Enough of the title is intact that a one-letter slip in its last word cannot make another
    # title of the catalog's: "Kickboxer 2: The Road Rack" is no film, so "Rack" is a typo.
    context = vouched or len(same) >= 2 and sum(map(len, same)) >= STRONG_CONTEXT
    total, differing, real = 0, 0, 0
    for a, b in zip(q, c):
        if a == b:
            continue
        if a.isdigit() or b.isdigit():
            return None  # another number: another title
        differing += 1
        if b in _FUNCTION_WORDS and a not in _FUNCTION_WORDS and len(same) >= 2 \
                and OSA.distance(a, b, score_cutoff=2) == 1:
            total += 1  # "Night at te Museum", "Fate of tde World", "Murder dnd Murder"
            continue
        if a + "s" == b or b + "s" == a or a + "es" == b or b + "es" == a:
            if not context:
                return None  # "Aliens" is not "Alien": a plural is another title, not a typo
            real += 1
        elif _real_word(a, b, vocab):
            if not context:
                return None  # another real word, not a typo of this one
            real += 1
        if len(b) <= 3:
            # Any slip when it makes no word of the catalog's and a long word stands intact
            # beside it ("Grizzly Mrn"); else only a dropped or swapped letter ("th", "teh").
            intact = context or vocab.get(a, 0) == 0 and max(map(len, same), default=0) >= 5
            if not (_short_word_typo(a, b) or intact and vocab.get(a, 0) < 2
                    and OSA.distance(a, b, score_cutoff=2) == 1):
                return None
            total += 1
            continue
        allowed = word_allowance(min(len(a), len(b)))
        if allowed == 2 and a[0] != b[0]:
            allowed = 1  # two edits only behind a right first letter ("Coothpork" is no "Toothpurk")
        d = OSA.distance(a, b, score_cutoff=allowed + 1)
        if d > allowed or real and d > 1:
            return None
        total += d
    if differing > (2 if len(q) >= 3 or sum(map(len, q)) >= 12 else 1) or real and differing > 1:
        return None
    return total


def strip_article_typo(key: str, vocab: Mapping[str, int]) -> str | None:
    """The key without a misspelled leading or trailing article ("teh matrix" -> "matrix")."""
    words = key.split()
    if len(words) < 2:
        return None
    if _article_typo(words[0], vocab):
        return " ".join(words[1:])
    if _article_typo(words[-1], vocab, trailing=True):
        return " ".join(words[:-1])
    return None


def _real_word(a: str, b: str, vocab: Mapping[str, int]) -> bool:
    """Is `a` a word in its own right rather than a typo of `b`? Yes when the catalog uses it in
    two titles or more ("Up" is not "Cup" mistyped), unless it is a long word and `b` is thirty
    times as common (a noisy-channel judgement: "Witych", a rare name, may be "Witch" mistyped;
    "Might" is not "Night")."""
    uses = vocab.get(a, 0)
    if uses < 2:
        return False
    return len(a) < 6 or uses * 30 > vocab.get(b, 0)


def _article_typo(word: str, vocab: Mapping[str, int], trailing: bool = False) -> bool:
    if trailing and word in ("the", "a", "an"):  # "Suspects, The!": punctuation kept it in the key
        return True
    if word in _REAL_WORDS or not 2 <= len(word) <= 4 or not word.isalpha():
        return False
    if OSA.distance(word, "the", score_cutoff=2) <= 1:  # "teh", "th", "tge": only ever "the"
        return True
    return vocab.get(word, 0) < 2 and OSA.distance(word, "an", score_cutoff=2) <= 1
