"""`recllm report RUN_DIR...`: compare runs (markdown or --json), paired tests, plots, recompute."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="compare evaluation runs", description=__doc__)
    p.add_argument("runs", nargs="*", help="run directories (or sweep folders holding them)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--k", type=int, default=10, help="cutoff shown in the table and plots")
    p.add_argument("--plots", metavar="DIR", help="write PNG plots into DIR")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="paired test of B against A on the same users (RUN_DIR[:SYSTEM])")
    p.add_argument("--transfer", action="store_true",
                   help="one table across transfer runs: systems x (source -> target, regime)")
    p.add_argument("--metric", default="ndcg@10",
                   help="metric for --compare and --transfer (default ndcg@10)")
    p.add_argument("--recompute", metavar="RUN_DIR",
                   help="recompute a run's metrics from samples.jsonl and check results.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from recllm.commands._output import print_json
    from recllm.errors import RecllmError
    from recllm.report import compare, json_summary, load_runs, markdown_table

    if args.recompute:
        from recllm.evaluate.runner import recompute
        fresh = recompute(args.recompute)
        stored_path = Path(args.recompute) / "results.json"
        stored = json.loads(stored_path.read_text()) if stored_path.exists() else None
        same = stored is not None and stored.get("systems") == fresh["systems"]
        if args.json:
            print_json({"recomputed": fresh, "matches_results_json": same})
        else:
            print(f"{args.recompute}: {fresh['users']} users; results.json "
                  + ("matches" if same else "DIFFERS" if stored else "missing"))
        return 0 if same or stored is None else 1
    if args.compare:
        out = compare(*args.compare, metric=args.metric)
        if args.json:
            print_json(out)
        else:
            print(f"{out['metric']}: A {out['a']} = {out['mean_a']:.4f}, B {out['b']} = "
                  f"{out['mean_b']:.4f} over {out['n']} users")
            print(f"delta B-A = {out['delta']:+.4f}  95% CI [{out['ci_low']:+.4f}, "
                  f"{out['ci_high']:+.4f}]  permutation p = {out['p_value']:.4g}  "
                  f"(paired t = {out['t']:.3f}, p = {out['p_t']:.4g})")
        return 0
    if not args.runs:
        raise RecllmError("name at least one run directory", hint="recllm report runs/demo")
    runs = load_runs(args.runs)
    if args.transfer:
        from recllm.transfer_report import transfer_markdown, transfer_table
        table = transfer_table(runs, metric=args.metric)
        print_json(table) if args.json else print(transfer_markdown(table))
        return 0
    if args.json:
        print_json(json_summary(runs))
    else:
        print(markdown_table(runs, ks=[args.k]))
    if args.plots:
        from recllm.evaluate.plots import write_plots
        for path in write_plots(runs, args.plots, k=args.k):
            print(f"wrote {path}")
    return 0
