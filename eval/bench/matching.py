"""Benchmark the title matcher: ML-1M throughput, and a synthetic 1M-item catalog.

    .venv/bin/python eval/bench/matching.py                  # both parts
    .venv/bin/python eval/bench/matching.py --items 200000   # a smaller synthetic catalog

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
    args = ap.parse_args(argv)
    results = {}
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
