"""`recllm eval --config eval/configs/X.yaml [overrides]`: run an evaluation (or a sweep)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from recllm.commands._args import parse_assignment


def _none(text: str) -> str | None:
    return None if text.lower() in ("none", "null", "") else text


def _list_or(cast):
    """A value, or a comma list (a sweep axis): '--template generate,generate-json'."""
    def parse(text: str):
        parts = [p.strip() for p in text.split(",")]
        vals = [None if p.lower() in ("none", "null", "all") else cast(p) for p in parts]
        return vals if len(vals) > 1 else vals[0]
    return parse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate an LLM recommender next to baselines",
                       description=__doc__)
    p.add_argument("--config", help="YAML config (eval/configs/*.yaml); flags override it")
    p.add_argument("--dataset", help="dataset name or path (ml-100k, ml-1m, a file ...)")
    from recllm.evaluate.protocols import PROTOCOLS

    p.add_argument("--protocol", help=f"{' | '.join(PROTOCOLS)} (comma list sweeps)")
    p.add_argument("--model", help="model alias/folder; 'none' = baselines only")
    p.add_argument("--backend", type=_none, help="transformers | vllm | openai | scripted")
    p.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, repeatable (e.g. path=answers.jsonl)")
    p.add_argument("--template", help="prompt template name (comma list sweeps)")
    p.add_argument("--mode", choices=["generate", "score"],
                   help="generate: parse the list the model writes; score: rank the candidates "
                        "by the model's log-probability of each")
    p.add_argument("--constrain", choices=["none", "catalog", "candidates"],
                   help="generate only catalog titles, or only the shown candidates")
    p.add_argument("--score-norm", choices=["sum", "mean", "pmi"],
                   help="score mode: summed, per-token, or minus the empty-history prompt's")
    p.add_argument("--users", help="number of sampled users, 'all', or a file of user ids")
    p.add_argument("--limit", type=int, help="stop after this many users (finish with --resume)")
    p.add_argument("--seed", type=int)
    p.add_argument("--k", type=int, help="items asked for (full protocol)")
    p.add_argument("--ks", help="cutoffs for metrics, e.g. 1,5,10,20")
    p.add_argument("--negatives", help="negatives per positive (comma list sweeps)")
    p.add_argument("--max-history", help="history items shown ('none' = all)")
    p.add_argument("--batch-size", type=int, help="requests per backend call")
    p.add_argument("--workers", type=int, help="processes for render/parse/match/score")
    p.add_argument("--output", "-o", help="run directory (default runs/NAME)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run")
    p.add_argument("--retry-failed", action="store_true", help="with --resume: redo failed users")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--export-requests", metavar="FILE",
                   help="write every request as an OpenAI batch file (JSONL) and stop")
    p.add_argument("--import-answers", metavar="FILE",
                   help="finish the run from a batch output file (vllm run-batch, batch APIs)")
    p.add_argument("--executor", choices=["local", "ray"],
                   help="where generation runs: this process, or Ray Data actors (recllm[ray])")
    p.add_argument("--actors", type=int, help="--executor ray: engines (one per actor)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other config key, YAML value (e.g. --set negative_sampling=popularity)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.set_defaults(func=run)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line flags as config keys (only the ones given)."""
    out: dict[str, Any] = {}
    for key in ("dataset", "backend", "limit", "seed", "k", "batch_size", "workers", "output",
                "mode", "score_norm", "constrain", "export_requests", "import_answers",
                "executor"):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    for key, cast in (("protocol", str), ("model", str), ("template", str), ("negatives", int),
                      ("max_history", int)):
        value = getattr(args, key, None)
        if value is not None:  # 'none' is kept as an explicit None (e.g. baselines only)
            out[key] = _list_or(cast)(value)
    if args.users is not None:
        out["users"] = args.users  # 'all', a count or a file; see EvalConfig._users
    if args.ks:
        out["ks"] = [int(x) for x in args.ks.split(",")]
    if args.no_cache:
        out["cache"] = False
    if args.no_progress:
        out["progress"] = False
    if args.retry_failed:
        out["retry_failed"] = True
    if getattr(args, "actors", None) is not None:
        out["executor_options"] = {"actors": args.actors}
    for item, dest in [(s, "backend_options") for s in args.backend_option] + \
                      [(s, None) for s in args.set]:
        key, parsed = parse_assignment(item, "--backend-option" if dest else "--set")
        if dest:
            out.setdefault(dest, {})[key] = parsed
        else:
            out[key] = parsed
    return out


def run(args: argparse.Namespace) -> int:
    from recllm.commands._output import print_json
    from recllm.evaluate.config import load_config
    from recllm.evaluate.runner import run_eval
    from recllm.report import load_runs, markdown_table

    over = overrides(args)
    merged = ("backend_options", "executor_options")  # flags add to the file's, key by key
    cfg = load_config(args.config, {k: v for k, v in over.items() if k not in merged},
                      keep_none=[k for k, v in over.items() if v is None])
    for key in merged:
        if key in over:
            cfg = cfg.model_copy(update={key: {**getattr(cfg, key), **over[key]}})
    log = (lambda msg: print(msg, file=sys.stderr))
    dirs = run_eval(cfg, resume=args.resume, log=log)
    runs = load_runs(dirs, missing_ok=True)
    if args.json:
        print_json([r.results for r in runs])
    elif runs:
        print(markdown_table(runs, ks=cfg.ks))
    return 0
