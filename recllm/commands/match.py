"""`recllm match --catalog NAME_OR_FILE < titles.txt`: check the title matcher on your own data.

Prints one JSON line per input title: {"query", "item_id", "title", "score", "method"}, with
nulls when nothing in the catalog matches. `--answer` reads the whole input as one LLM answer
instead and prints the grounded answer (parsed titles, matches, counts) as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recllm.data.columns import TITLE_COLS  # the readers' own list
from recllm.errors import RecllmError

_ID_COLS = ("item_id", "id", "movie_id", "movieId", "asin", "parent_asin", "book_id", "itemId")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("match", help="match titles to catalog items (one JSON line each)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("titles", nargs="*", help="titles to match (default: one per line on stdin)")
    p.add_argument("--catalog", required=True, metavar="NAME_OR_FILE",
                   help="dataset name (ml-1m), dataset folder, or a CSV/TSV/JSONL file of id,title")
    p.add_argument("--id-col", help="item id column of a catalog file (default: item_id, id, ...)")
    p.add_argument("--title-col", help="title column of a catalog file (default: title, name, ...)")
    p.add_argument("--cutoff", type=float, default=75.0,
                   help="minimum fuzzy similarity 0-100 (default 75; 100 = exact keys only)")
    p.add_argument("--tie-break", choices=["popular", "first", "latest", "earliest"], default="popular",
                   help="which of several same-titled items wins without a year (default: popular, "
                        "by interaction count when the catalog is a dataset, else first)")
    p.add_argument("--within", metavar="ID", nargs="+", help="match only among these item ids")
    p.add_argument("--answer", action="store_true",
                   help="read the input as one LLM answer: parse it, then ground it")
    p.add_argument("-k", type=int, default=10, help="list length for --answer (default 10)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from recllm.grounding import TitleMatcher, ground

    titles, popularity = load_catalog(args.catalog, args.id_col, args.title_col)
    options = {"cutoff": args.cutoff, "tie_break": args.tie_break}
    if hasattr(titles, "table"):
        matcher = TitleMatcher.from_catalog(titles, popularity=popularity, **options)
    else:
        matcher = TitleMatcher(titles, **options)
    if args.answer:
        text = " ".join(args.titles) if args.titles else sys.stdin.read()
        result = ground(text, matcher, k=args.k, candidates=args.within)
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return 0
    scope = matcher.restrict(args.within) if args.within else matcher
    lines = args.titles or (line.rstrip("\n") for line in sys.stdin)
    for query in lines:
        if not query.strip():
            continue
        found = scope.match_one(query.strip())
        row = {"query": query.strip(), "item_id": None, "title": None, "score": None, "method": None}
        if found is not None:
            row.update(item_id=found.item_id, title=found.title, score=found.score, method=found.method)
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0


def load_catalog(source: str, id_col: str | None, title_col: str | None):
    """(titles, popularity): a dataset's Catalog with interaction counts, or a file's id -> title."""
    path = Path(source)
    if path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".txt", ".jsonl", ".json", ".item"):
        return _read_table(path, id_col, title_col), None
    from recllm.data import load_dataset

    dataset = load_dataset(source)
    counts = dataset.interactions["item_id"].value_counts()
    return dataset.catalog, {str(k): float(v) for k, v in counts.items()}


def _read_table(path: Path, id_col: str | None, title_col: str | None) -> dict[str, str]:
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".json"):
            table = pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
        else:
            sep = "\t" if suffix in (".tsv", ".item") or "\t" in path.open(encoding="utf-8").readline() else ","
            table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise RecllmError(f"cannot read the catalog: {exc}", where=str(path),
                          hint="give a CSV/TSV with a header row, or JSON Lines with one object per item") from exc
    table.columns = [str(c).split(":")[0] for c in table.columns]  # RecBole "item_id:token"
    id_col = id_col or next((c for c in _ID_COLS if c in table.columns), None)
    title_col = title_col or next((c for c in TITLE_COLS if c in table.columns), None)
    for flag, col in (("--id-col", id_col), ("--title-col", title_col)):
        if col is None or col not in table.columns:
            raise RecllmError(f"no {flag[2:-4]} column{f' {col!r}' if col else ''} in the catalog",
                              where=str(path), hint=f"pass {flag}; columns are: {', '.join(table.columns)}")
    return {str(i): str(t) for i, t in zip(table[id_col], table[title_col]) if str(t).strip()}
