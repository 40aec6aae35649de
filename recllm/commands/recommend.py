"""`recllm recommend --catalog NAME_OR_FILE --history "Toy Story" "Fargo" -k 5`: ranked catalog items
for one person's history, from an LLM (zero-shot: no training data in the catalog's domain).

The history's titles are grounded with the catalog's matcher (the ones that match nothing are
listed); items in the history are never recommended. `--mode score` ranks candidates (the
retriever's top items, or `--candidates`) by the model's likelihood; `--explain` adds a
one-line reason per item. `recllm serve` answers the same over HTTP.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from recllm.errors import RecllmError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("recommend", help="recommend catalog items for a history (zero-shot, with an LLM)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_recommender_flags(p)
    p.add_argument("--history", nargs="+", default=[], metavar="TITLE", help="titles as people write them, oldest first")
    p.add_argument("--history-ids", nargs="+", default=[], metavar="ID", help="catalog item ids, oldest first")
    p.add_argument("-k", "--k", type=int, default=10, help="how many items (default 10)")
    p.add_argument("--candidates", nargs="+", default=None, metavar="ID", help="item ids to rank instead of the catalog")
    p.add_argument("--explain", action="store_true", help="a one-line reason per item (one more short generation each)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def add_recommender_flags(p: argparse.ArgumentParser) -> None:
    """The catalog, model and how to recommend: shared by `recommend` and `serve`."""
    from recllm.commands.data import add_loader_arguments

    p.add_argument("--catalog", required=True, metavar="NAME_OR_PATH",
                   help="a dataset name (ml-100k), a dataset folder or file, or a CSV/JSONL of items (id, title ...)")
    p.add_argument("--model", default=None, help="alias, model folder or hub id (default: smollm2-135m-instruct)")
    p.add_argument("--backend", default="transformers", help="transformers | llamacpp | vllm | openai | scripted")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="any backend option (YAML value), repeatable, e.g. threads=1")
    p.add_argument("--template", default=None, help="prompt template (default: generate; score-next in score mode)")
    p.add_argument("--mode", choices=["generate", "score"], default="generate",
                   help="generate: the model writes a list; score: candidates ranked by likelihood")
    p.add_argument("--constrain", action=argparse.BooleanOptionalAction, default=None,
                   help="decode only catalog titles (the candidates when given); default: on for transformers, "
                        "llamacpp and vllm, which enforce it")
    p.add_argument("--retriever", default="itemknn", help="score mode: the baseline giving candidates (default itemknn)")
    p.add_argument("--n-candidates", type=int, default=20, help="score mode: retrieved candidates (default 20)")
    p.add_argument("--max-history", type=int, default=50, help="most recent history items shown (default 50)")
    p.add_argument("--max-tokens", type=int, default=256, help="answer length cap (tokens)")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages echoing the history; 1 = off")
    p.add_argument("--no-response-cache", action="store_true", help="always ask the model (no response cache)")
    add_loader_arguments(p)


def build_recommender(args: argparse.Namespace):
    """The catalog and the loaded model, from the shared flags."""
    from recllm.commands._args import parse_assignment
    from recllm.commands.data import loader_options
    from recllm.recommend import Recommender, RecommendSettings, load_catalog

    options: dict[str, Any] = {}
    for item in args.option:
        key, value = parse_assignment(item, "--option")
        options[key] = value
    settings = RecommendSettings.parse({
        "model": args.model, "backend": args.backend, "backend_options": options, "template": args.template,
        "mode": args.mode, "constrain": args.constrain, "retriever": args.retriever,
        "n_candidates": args.n_candidates, "max_history": args.max_history, "max_tokens": args.max_tokens,
        "repetition_penalty": args.repetition_penalty, "cache": not args.no_response_cache}, where="command line")
    dataset = load_catalog(args.catalog, **loader_options(args))
    return Recommender(dataset, settings)


def run(args: argparse.Namespace) -> int:
    from recllm.commands._output import print_json
    from recllm.recommend import Query

    if not args.history and not args.history_ids:
        raise RecllmError("the history is empty", where="--history", hint='give titles: --history "Toy Story" "Fargo"')
    recommender = build_recommender(args)
    try:
        out = recommender.recommend(Query(history=tuple(args.history), history_ids=tuple(args.history_ids), k=args.k,
                                          candidates=tuple(args.candidates) if args.candidates else None,
                                          explain=args.explain))
    finally:
        recommender.close()
    if args.json:
        print_json(out)
    else:
        show(out)
    return 0 if out["items"] else 1


def show(out: dict[str, Any]) -> None:
    for item in out["items"]:
        g = item["grounding"]
        how = g["method"] if g["method"] != "scored" else f"score {item['score']:.3f}"
        print(f"{item['rank']:>3}. {item['label']}  [{item['item_id']}; {how}]")
        if item.get("reason"):
            print(f"     {item['reason']}")
    hist = out["history"]
    matched = ", ".join(f"{h['query']!r} -> {h['title']}" + (f" ({h['method']})" if h["method"] != "exact" else "")
                        for h in hist["matched"])
    print(f"history: {matched or '(nothing matched)'}", file=sys.stderr)
    if hist["unmatched"]:
        print(f"not in the catalog: {', '.join(map(repr, hist['unmatched']))}", file=sys.stderr)
    v = out.get("validity") or {}
    if v:
        print(f"{out['model'] or out['backend']} · {out['mode']} · {len(out['items'])}/{out['k']} items · "
              f"{v.get('out_of_catalog', 0)} out of catalog · {v.get('history_repeats', 0)} history repeats · "
              f"{v.get('duplicates', 0)} duplicates · {out['seconds']:.2f} s", file=sys.stderr)
    if out.get("note"):
        print(out["note"], file=sys.stderr)
    if out.get("explain_error"):
        print(f"no reasons: {out['explain_error']}", file=sys.stderr)
