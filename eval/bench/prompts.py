"""Which prompt wording gets a parseable, grounded list out of a model? One table per run.

    .venv/bin/python eval/bench/prompts.py                                   # defaults below
    .venv/bin/python eval/bench/prompts.py --templates generate,generate-ratings --users 32
    .venv/bin/python eval/bench/prompts.py --model gemma-3-270m --templates completion
    .venv/bin/python eval/bench/prompts.py --templates generate --repetition-penalty 1.0,1.1,1.2,1.3

For each generate-mode template: render the same test users (leave-one-out on the dataset,
history cut to the newest --max-history items), generate greedily through the response cache,
parse with recllm.grounding.parse_titles and ground with TitleMatcher. Per template, summed
over users (top 10 of each answer): titles parsed, with a year, distinct, grounded to a
catalog item, of those the ones already in the user's history (repeats) and the rest (novel:
what a recommendation can be), HR@10 of the held-out item (with few users a rough signal,
not an evaluation: use `recllm eval` for that), the repeated titles the parser dropped
(`dups`) and the answers that looped (3 or more repeats dropped). A comma list of
--repetition-penalty values gives one row per template and value.
A template's wording is compared, not the model: every row uses the same users and model.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from recllm.backends import SamplingParams, get_backend
from recllm.cache import CachedBackend
from recllm.data import leave_one_out, load_dataset, sample_users
from recllm.data.titles import title_key
from recllm.grounding import TitleMatcher, parse_titles
from recllm.prompting import load_template, render_prompt


def score(answer: str, case, matcher: TitleMatcher, k: int) -> dict[str, int]:
    parsed = parse_titles(answer)
    titles = list(parsed.titles[:k])
    matches = matcher.match(titles) if titles else []
    ids = [m.item_id for m in matches if m is not None]
    history = set(case.history)
    return {
        "users": 1, "parsed": int(bool(titles)), "titles": len(titles),
        "with_year": sum(1 for t in titles if t.rstrip().endswith(")")),
        "distinct": len({title_key(t) for t in titles}),
        "grounded": len(set(ids)), "repeats": len(set(ids) & history),
        "novel": len(set(ids) - history),
        "hits": int(case.target in ids),
        "dups": parsed.n_duplicates, "loops": int(parsed.n_duplicates >= 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--backend", default="transformers")
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--templates", default="generate,generate-ratings,generate-json",
                    help="comma-separated generate-mode template names or paths")
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--max-history", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repetition-penalty", default="1.0", help="comma list: one row per value")
    ap.add_argument("--frequency-penalty", type=float, default=0.0)
    ap.add_argument("--presence-penalty", type=float, default=0.0)
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    dataset = load_dataset(args.dataset)
    cases = sample_users(leave_one_out(dataset).test, n=args.users, seed=args.sample_seed)
    years = {i: (None if pd.isna(y) else int(y))
             for i, y in zip(dataset.catalog.table.index, dataset.catalog.table["year"].tolist())}
    matcher = TitleMatcher(dataset.catalog, years=years)
    backend = get_backend(args.backend, model=args.model)
    if not args.no_cache:
        backend = CachedBackend(backend)
    rows = []
    grid = [(name, float(r)) for name in args.templates.split(",") for r in args.repetition_penalty.split(",")]
    for name, penalty in grid:
        params = SamplingParams(max_tokens=args.max_tokens, repetition_penalty=penalty,
                                frequency_penalty=args.frequency_penalty, presence_penalty=args.presence_penalty)
        template = load_template(name)
        prompts = [render_prompt(template, c, dataset, k=args.k, max_history=args.max_history)
                   for c in cases]
        started = time.perf_counter()
        results = backend.generate([p.to_request(params) for p in prompts])
        seconds = time.perf_counter() - started
        total: dict[str, int] = {}
        for case, result in zip(cases, results):
            for key, value in score(result.text, case, matcher, args.k).items():
                total[key] = total.get(key, 0) + value
        rows.append({"template": template.name, "sha256": template.sha256[:12], "rep_pen": penalty, **total,
                     "cached": sum(r.cached for r in results), "seconds": round(seconds, 1)})
    backend.close()
    if args.json:
        print(json.dumps({"model": args.model, "dataset": dataset.name, "users": len(cases),
                          "max_history": args.max_history, "rows": rows}, indent=2))
        return
    print(f"{args.model} on {dataset.name}: {len(cases)} users, top {args.k}, "
          f"history <= {args.max_history}, greedy, max {args.max_tokens} tokens, frequency penalty "
          f"{args.frequency_penalty:g}, presence penalty {args.presence_penalty:g}")
    cols = ["template", "rep_pen", "parsed", "titles", "with_year", "distinct", "grounded", "repeats", "novel",
            "hits", "dups", "loops", "cached", "seconds"]
    print(" | ".join(cols))
    for row in rows:
        print(" | ".join(str(row[c]) for c in cols))


if __name__ == "__main__":
    main()
