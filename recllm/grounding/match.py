"""Titles -> catalog item ids: exact lookup on the shared title key, fuzzy only for misses.

    matcher = TitleMatcher({"3": "Usual Suspects, The (1995)", "4": "Heat (1995)", "9": "Heat (1986)"})
    matcher.match(["usual suspects", "Heat (1986)", "Heet (1995)", "Not A Movie"])
    -> [Match("3", ..., 100.0, "exact"), Match("9", ...), Match("4", ..., 75.0, "fuzzy"), None]

Order of evidence: the normalized key (`recllm.data.titles.title_key`, shared with the data
layer) of the display title and of every alternate title; then the part before a subtitle
colon ("Star Wars" -> "Star Wars: Episode IV - A New Hope"); then rapidfuzz's normalized Indel
similarity (`fuzz.ratio`) over the hundred-odd keys the q-gram and word indexes propose
(index.py), each accepted only if it differs from the title by typos (verify.py): a title
that is not in the catalog must come back None, not as a look-alike. Several items under one key (remakes, duplicate rows) are told apart by the year
the answer gave; without one, `tie_break` decides.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from rapidfuzz import fuzz, process

from recllm.data.titles import leading_article, split_title
from recllm.errors import RecllmError
from recllm.grounding.index import GramIndex, WordIndex, unique
from recllm.grounding.keys import aliases, match_key, query_year, split_bare_year
from recllm.grounding.verify import strip_article_typo, typo_edits

TieBreak = Literal["popular", "first", "latest", "earliest"]
MAX_QUERY_CHARS = 1_000  # a longer query is prose, unless the catalog itself has titles that long
MAX_FUZZY_CHARS = 300  # longer titles are matched by their keys only (the parser's own cap)


@dataclass(frozen=True)
class Match:
    """A title grounded to a catalog item. `score` is 100 for key matches, else fuzz.ratio."""

    item_id: str
    title: str
    score: float
    method: str = "exact"  # exact | alias | fuzzy | embedding


class TitleMatcher:
    """Grounds free-text titles to the item ids of a catalog.

    titles: item_id -> title, raw ("Usual Suspects, The (1995)") or display; a year and
        alternate titles in parentheses are read from it unless `years` gives the year.
    years / alternates / popularity: optional per-item year, extra names, and a popularity
        (e.g. training interaction counts) used by `tie_break="popular"`.
    cutoff: minimum fuzz.ratio (0-100) of a fuzzy candidate; 100 turns fuzzy matching off.
        A candidate above it must still differ from the title by typos only (see `verify`).
    year_window: a year in the answer further than this from every item under a key rules the
        key out (remakes, and look-alikes from another time); None ignores years for that.
    tie_break: which of several items sharing a title wins when the answer gave no year (or
        two are equally close to it): "popular" (falls back to "first" without popularity),
        "first" (catalog order), "latest" or "earliest" (by year).
    subtitle_aliases: also answer to the part before a subtitle colon ("Star Wars").
    min_fuzzy_length: titles whose key is shorter are matched exactly or not at all.
    """

    def __init__(
        self,
        titles: Mapping[str, str],
        *,
        years: Mapping[str, int | None] | None = None,
        alternates: Mapping[str, Sequence[str]] | None = None,
        popularity: Mapping[str, float] | None = None,
        cutoff: float = 75.0,
        tie_break: TieBreak = "popular",
        year_window: int | None = 3,
        subtitle_aliases: bool = True,
        max_candidates: int = 128,
        gram_size: int = 3,
        min_fuzzy_length: int = 4,
        posting_budget: int = 20_000,
        cache_size: int = 100_000,
    ):
        if not titles:
            raise RecllmError("cannot match titles against an empty catalog",
                              hint="load a dataset whose catalog has items with titles")
        if tie_break not in ("popular", "first", "latest", "earliest"):
            raise RecllmError(f"unknown tie_break {tie_break!r}",
                              hint="use one of: popular, first, latest, earliest")
        if not 0 <= cutoff <= 100:
            raise RecllmError(f"cutoff must be within 0..100, got {cutoff}")
        self.cutoff, self.tie_break, self.min_fuzzy_length = float(cutoff), tie_break, min_fuzzy_length
        self.year_window = 10**6 if year_window is None else year_window
        self.max_candidates, self.posting_budget, self.cache_size = max_candidates, posting_budget, cache_size
        self._add_items(titles, years, alternates, popularity, subtitle_aliases)
        self.has_popularity = popularity is not None
        longest = max((len(t) for t in self.titles), default=0)
        self.max_query_chars = max(MAX_QUERY_CHARS, longest + 100)
        # Keys too long for any fuzzy query stay out of the fuzzy indexes (exact lookup only).
        fuzzy_keys = [k if len(k) <= MAX_FUZZY_CHARS else "" for k in self.keys]
        # How many titles use each word: tells a typo from another real word (see verify.py).
        self.vocab: dict[str, int] = Counter(w for k in fuzzy_keys for w in set(k.split()))
        self.index = GramIndex(fuzzy_keys, q=gram_size) if self.cutoff < 100 else None
        self.words = WordIndex(fuzzy_keys) if self.cutoff < 100 else None
        self._cache: dict[str, Match | None] = {}
        self._key_array: np.ndarray | None = None  # keys as an object array, for fancy indexing

    def _add_items(self, titles: Mapping[str, str], years, alternates, popularity,
                   subtitle_aliases: bool) -> None:
        """Per item: id, title, year, popularity, article, its match keys (display title and
        alternates) and subtitle aliases; keys are shared by the items that have them."""
        self.ids: list[str] = []
        self.titles: list[str] = []
        self.years: list[int | None] = []
        self.popularity: list[float] = []
        self.articles: list[str] = []  # leading article of each display title ("the", "" ...)
        self.item_keys: list[tuple[int, ...]] = []
        self.keys: list[str] = []  # unique match keys; index = key id
        self.key_items: list[list[int]] = []  # key id -> item indices, catalog order
        self._key_id: dict[str, int] = {}
        self._alias: dict[str, list[int]] = {}
        self.item_alias: list[tuple[str, ...]] = []
        for idx, (item_id, title) in enumerate(titles.items()):
            title = "" if title is None else str(title)
            parts = split_title(title)
            year = years.get(item_id) if years is not None else parts.year
            names = [parts.display, *parts.alternates, *((alternates or {}).get(item_id) or ())]
            self.ids.append(str(item_id))
            self.titles.append(title)
            self.years.append(None if year is None or year != year else int(year))
            self.popularity.append(float((popularity or {}).get(item_id, 0.0)))
            self.articles.append(leading_article(parts.display))
            self.item_keys.append(self._own_keys(idx, names))
            own_aliases = aliases(parts.display) if subtitle_aliases else ()
            for alias in own_aliases:
                self._alias.setdefault(alias, []).append(idx)
            self.item_alias.append(own_aliases)

    def _own_keys(self, idx: int, names: Sequence[str]) -> tuple[int, ...]:
        """Key ids of an item's names, registering new keys and the item under each."""
        own: list[int] = []
        for name in names:
            key = match_key(name)
            if not key:
                continue
            kid = self._key_id.get(key)
            if kid is None:
                kid = self._key_id[key] = len(self.keys)
                self.keys.append(key)
                self.key_items.append([])
            if kid not in own:
                own.append(kid)
                self.key_items[kid].append(idx)
        return tuple(own)

    @classmethod
    def from_catalog(cls, catalog, **options) -> TitleMatcher:
        """A matcher over a `recllm.data.schema.Catalog`: raw titles for alternates, the year column."""
        table = catalog.table
        source = table["raw_title"] if "raw_title" in table.columns else table["title"]
        titles = {str(i): (r if isinstance(r, str) and r else t)
                  for i, r, t in zip(table.index, source, table["title"])}
        if "year" in table.columns and "years" not in options:
            options["years"] = {str(i): (None if y is None or y != y else int(y))
                                for i, y in zip(table.index, table["year"].astype("float64"))}
        if "alternates" in table.columns and "alternates" not in options:
            options["alternates"] = {  # lists, or numpy arrays when read back from Arrow
                str(i): [a for a in list(alts) if isinstance(a, str)]
                for i, alts in zip(table.index, table["alternates"])
                if isinstance(alts, (list, tuple)) or hasattr(alts, "tolist")}
        matcher = cls(titles, **options)
        matcher.titles = [str(t) for t in table["title"]]  # Match.title: the display title
        return matcher

    def __len__(self) -> int:
        return len(self.ids)

    # ------------------------------------------------------------------ matching

    def match(self, titles: Iterable[str], *, within: Iterable[str] | None = None) -> list[Match | None]:
        """The catalog item of each title, or None; `within` restricts to those item ids."""
        if within is not None:
            return self.restrict(within).match(titles)
        return [self.match_one(t) for t in titles]

    def match_one(self, title: str, *, fuzzy: bool = True) -> Match | None:
        """One title; `fuzzy=False` tries the keys only. Results are cached (`cache_size`, 0: off)."""
        use_cache = fuzzy and self.cache_size > 0
        if use_cache and title in self._cache:
            return self._cache[title]
        result = self._lookup(title, fuzzy)
        if use_cache:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[title] = result
        return result

    def _lookup(self, title: str, fuzzy: bool) -> Match | None:
        if len(title) > self.max_query_chars:
            return None  # prose, not a title: no catalog title is this long
        key = match_key(title)
        kid = self._key_id.get(key)
        if kid is not None and len(self.key_items[kid]) == 1:  # most answers: one item, no ties to break
            found = self._keyed(self.key_items[kid], query_year(title), "exact")
            if found is not None:
                return found
        readings, article = self._readings(title)
        if not readings:
            return None
        # Keys of the query's other names: "Clean Slate (Coup de Torchon)" names the 1981 film.
        hint = {self._key_id[k] for k, _, _ in readings if k in self._key_id} if len(readings) > 1 else None
        for key, year, strict in readings:  # every reading's keys before any fuzzy guess
            kid = self._key_id.get(key)
            if kid is not None:
                found = self._keyed(self.key_items[kid], year, "exact", article, kid, strict, hint)
                if found is not None:
                    return found
            alias = self._alias.get(key)
            if alias and (len(alias) == 1 or year is not None or self.has_popularity):
                # A head several titles share is a franchise ("Mobile Suit Gundam: ..."), whose
                # first work may be missing: only a year or popularity picks one of them.
                found = self._keyed(alias, year, "alias", article, None, strict)
                if found is not None:
                    return found
        if fuzzy and self.cutoff < 100 and len(title) <= MAX_FUZZY_CHARS:
            for key, year, strict in readings[:3]:  # whole text, bare-year reading, display part
                found = self._fuzzy(key, year, article, strict)
                if found is not None:
                    return found
        return None

    def _readings(self, title: str) -> tuple[list[tuple[str, int | None, bool]], str]:
        """(key, year, year required) readings of a query, most literal first, and its leading
        article: the whole text; without a bare trailing year ("Law and Order 1953": only items
        of a known, near year); split like a catalog title ("Seven (Se7en) (1995)": the display
        part, then each alternate)."""
        key, year = match_key(title), query_year(title)
        if not key:
            return [], ""
        out = [(key, year, False)]
        if year is None:
            bare = split_bare_year(title)
            if bare is not None:
                out.append((match_key(bare[0]), bare[1], True))
        display = title
        if "(" in title:
            parts = split_title(title)
            display = parts.display
            alts = [k for k in map(match_key, parts.alternates) if len(k) >= 4]  # not "(tm)", "(r)"
            out += [(k, year, False) for k in (match_key(parts.display), *alts)]
        seen: set[str] = set()
        return [r for r in out if r[0] and not (r[0] in seen or seen.add(r[0]))], leading_article(display)

    def _fuzzy(self, key: str, year: int | None, article: str = "", strict: bool = False) -> Match | None:
        """Blocked candidates -> fuzz.ratio >= cutoff -> typo check -> fewest edits wins.

        Candidates come from the rarest q-grams first, then (for titles of several words, when
        those gave nothing) from keys sharing a rare intact word. Two different keys equally
        close make the title ambiguous: None.
        """
        if len(key) < self.min_fuzzy_length:
            return None  # "Heap" vs "Heat", "Up" vs "Cup": a typo or another word? Can't tell.
        variants = [key]
        trimmed = strip_article_typo(key, self.vocab)
        if trimmed:
            variants.append(trimmed)
        if self.index is None:  # a restricted matcher: few keys, scan them all
            return self._pick(variants, np.arange(len(self.keys)), key, year, article, strict)
        cand = [self.index.candidates(v, max_edits=2 if v.count(" ") < 3 else 4,  # what typo_edits
                                      budget=self.posting_budget, limit=self.max_candidates)
                for v in variants]
        cand = cand[0] if len(cand) == 1 else unique(np.concatenate(cand))
        found = self._pick(variants, cand, key, year, article, strict)
        if found is not None or self.words is None:
            return found
        more = np.concatenate([self.words.candidates(v, limit=self.max_candidates) for v in variants])
        tried = set(cand.tolist())
        more = np.asarray([k for k in unique(more).tolist() if k not in tried], dtype=np.int64)
        return self._pick(variants, more, key, year, article, strict)

    def _pick(self, variants: list[str], cand: np.ndarray, key: str, year: int | None,
              article: str = "", strict: bool = False) -> Match | None:
        if len(cand) == 0:
            return None
        if self._key_array is None:
            self._key_array = np.array(self.keys, dtype=object)
        choices = self._key_array[cand].tolist()
        hits = [h for v in variants for h in process.extract(
            v, choices, scorer=fuzz.ratio, processor=None, score_cutoff=self.cutoff, limit=10)]
        hits.sort(key=lambda h: -h[1])
        seen: set[int] = set()
        ranked = []
        for _, score, pos in hits:
            kid = int(cand[pos])
            if kid in seen:
                continue
            seen.add(kid)
            items = self._in_time(self.key_items[kid], year, strict)
            if not items:
                continue  # a look-alike from another time is another work
            # The answer's year, exactly an item's, vouches for a slip as much as more words do.
            same_year = year is not None and any(self.years[i] == year for i in items)
            edits = typo_edits(key, self.keys[kid], self.vocab, vouched=same_year)
            if edits is None:
                continue
            ranked.append((edits, not same_year, -score, kid))
        if not ranked:
            return None
        ranked.sort()
        if len(ranked) > 1 and ranked[1][:3] == ranked[0][:3]:
            return None
        edits, _, neg_score, kid = ranked[0]
        items = self._in_time(self.key_items[kid], year, strict)
        return self._make(self._resolve(items, year, article, kid), round(-neg_score, 2), "fuzzy")

    def _in_time(self, items: list[int], year: int | None, strict: bool) -> list[int]:
        """The items a year leaves in play: all when there is no year; none when every item's
        year is far from it ("Psycho (1998)" when the catalog has only the 1960 film); `strict`
        (a bare number read as a year): only items whose known year is near it."""
        if year is None:
            return items
        near = [i for i in items if self.years[i] is not None and abs(self.years[i] - year) <= self.year_window]
        if near or strict:
            return near
        return [] if any(self.years[i] is not None for i in items) else items

    def _keyed(self, items: list[int], year: int | None, method: str, article: str = "",
               kid: int | None = None, strict: bool = False, hint: set[int] | None = None) -> Match | None:
        """A key match, unless the answer's year rules out every item under the key."""
        items = self._in_time(items, year, strict)
        if not items:
            return None
        return self._make(self._resolve(items, year, article, kid, hint), 100.0, method)

    def _resolve(self, items: list[int], year: int | None, article: str = "", kid: int | None = None,
                 hint: set[int] | None = None) -> int:
        """One item of several sharing a key: closest year; then the one answering to most of
        the query's names (`hint`); then one whose own display title has the key (not an
        alternate title); then one whose display starts with the answer's article ("The Island"
        -> "Island, The (1983)", "Island" -> "Island (1989)"); then `tie_break`."""
        if len(items) == 1:
            return items[0]
        pool = items
        if year is not None:
            dist = [abs(self.years[i] - year) if self.years[i] is not None else 10**6 for i in items]
            closest = min(dist)
            if closest < 10**6:
                pool = [i for i, d in zip(items, dist) if d == closest]
                if len(pool) == 1:
                    return pool[0]
        if hint and len(hint) > 1:
            shared = [len(hint.intersection(self.item_keys[i])) for i in pool]
            pool = [i for i, n in zip(pool, shared) if n == max(shared)]
        if kid is not None:
            pool = [i for i in pool if self.item_keys[i][:1] == (kid,)] or pool
        pool = [i for i in pool if self.articles[i] == article] or pool
        if len(pool) == 1:
            return pool[0]
        mode = self.tie_break
        if mode == "popular" and self.has_popularity:
            return max(pool, key=lambda i: (self.popularity[i], -i))
        if mode in ("latest", "earliest"):
            known = [i for i in pool if self.years[i] is not None]
            if known:
                return max(known, key=lambda i: self.years[i] if mode == "latest" else -self.years[i])
        return pool[0]

    def _make(self, idx: int, score: float, method: str) -> Match:
        return Match(self.ids[idx], self.titles[idx], score, method)

    # ------------------------------------------------------------------ restricted mode

    def restrict(self, item_ids: Iterable[str]) -> TitleMatcher:
        """A matcher over just these items (a ranking prompt's candidates), same options.

        Built from this matcher's keys in microseconds; fuzzy matching scans all its keys.
        """
        pos = self._positions()
        idxs: list[int] = []
        for item_id in item_ids:
            i = pos.get(str(item_id))
            if i is None:
                raise RecllmError(f"candidate item {item_id!r} is not in the catalog",
                                  hint="candidates must be item ids of the catalog the matcher was built on")
            if i not in idxs:
                idxs.append(i)
        if not idxs:
            raise RecllmError("restricted matching needs at least one candidate item")
        sub = object.__new__(TitleMatcher)
        sub.__dict__.update(self.__dict__)
        sub.ids = [self.ids[i] for i in idxs]
        sub.titles = [self.titles[i] for i in idxs]
        sub.years = [self.years[i] for i in idxs]
        sub.popularity = [self.popularity[i] for i in idxs]
        sub.articles = [self.articles[i] for i in idxs]
        sub.item_alias = [self.item_alias[i] for i in idxs]
        sub.keys, sub.key_items, sub._key_id, sub.item_keys, sub._alias = [], [], {}, [], {}
        for new, old in enumerate(idxs):
            own = []
            for kid in self.item_keys[old]:
                key = self.keys[kid]
                nk = sub._key_id.get(key)
                if nk is None:
                    nk = sub._key_id[key] = len(sub.keys)
                    sub.keys.append(key)
                    sub.key_items.append([])
                sub.key_items[nk].append(new)
                own.append(nk)
            sub.item_keys.append(tuple(own))
            for alias in sub.item_alias[new]:
                sub._alias.setdefault(alias, []).append(new)
        sub.index, sub.words, sub._cache, sub.cache_size, sub._key_array = None, None, {}, 1_000, None
        sub.__dict__.pop("_pos", None)
        return sub

    def _positions(self) -> dict[str, int]:
        if not hasattr(self, "_pos"):
            self._pos = {item_id: i for i, item_id in enumerate(self.ids)}
        return self._pos

    def stats(self) -> dict:
        """Index size and ambiguity: how many keys name more than one item."""
        return {
            "items": len(self.ids), "keys": len(self.keys),
            "ambiguous_keys": sum(len(v) > 1 for v in self.key_items),
            "aliases": len(self._alias),
            "index_mb": round((self.index.nbytes + self.words.nbytes) / 2**20, 1) if self.index is not None else 0.0,
        }
