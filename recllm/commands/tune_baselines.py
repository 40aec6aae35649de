"""`recllm tune-baselines --config C --grid '{bpr: {factors: [32, 64]}}'`: pick each baseline's
hyper-parameters on the validation target (never the test target).

The config is forced to `split: valid` (training data then hold out both the validation and the
test target); every point of each baseline's grid is fitted (cached: a rerun only fits new
points) and scored on the config's protocol; the best point by `--metric` is printed as a
`baseline_options` block to paste into the test config, so the choice is on record.
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune-baselines", help="pick baseline options on the validation split",
                       description=__doc__)
    p.add_argument("--config", required=True, help="an eval config (its split is set to valid)")
    p.add_argument("--grid", required=True,
                   help="YAML/JSON {baseline: {option: [values...]}}, or a file holding it")
    p.add_argument("--metric", default="ndcg@10", help="what to maximize (default ndcg@10)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def grid_points(grid: dict[str, Any]) -> list[dict[str, Any]]:
    keys = list(grid)
    values = [v if isinstance(v, list) else [v] for v in grid.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def tune(cfg, grid: dict[str, dict[str, Any]], metric: str = "ndcg@10", log=print,
         dataset=None) -> dict[str, Any]:
    """{baseline: {"best": options, "score": x, "points": [{options, score, fit_info}]}}."""
    import time

    import numpy as np

    from recllm.baselines import get_baseline
    from recllm.errors import RecllmError
    from recllm.evaluate.metrics import ranking_metrics, relevant_items
    from recllm.evaluate.setup import build_plan

    cfg = cfg.model_copy(update={"split": "valid", "baselines": [], "model": None}).resolved()
    name, _, k = metric.partition("@")
    if not k.isdigit():
        raise RecllmError(f"metric {metric!r} has no cutoff", where="--metric", hint="e.g. ndcg@10")
    plan = build_plan(cfg, log=log, dataset=dataset)
    cands = ([list(plan.candidates[c.user_id].items) for c in plan.cases]
             if plan.candidates else None)
    relevant = [relevant_items(c) for c in plan.cases]
    length = cfg.protocol_spec.list_length(cfg)
    out: dict[str, Any] = {}
    for base, options in grid.items():
        if not isinstance(options, dict):
            raise RecllmError(f"grid for {base!r} must map options to lists of values",
                              where=f"--grid.{base}")
        points = []
        for point in grid_points(options):
            t0 = time.perf_counter()
            model = get_baseline(base, plan.train, seed=cfg.seed, options=point)
            ranked = model.rank(plan.cases, length, candidates=cands,
                                exclude_history=cfg.exclude_history)
            score = float(np.mean(ranking_metrics(ranked, relevant, [int(k)])[metric]))
            points.append({"options": point, "score": round(score, 5), "fit_info": model.fit_info,
                           "seconds": round(time.perf_counter() - t0, 2)})
            log(f"{base} {point}: valid {metric} {score:.4f} ({points[-1]['seconds']}s)")
        best = max(points, key=lambda p: p["score"])
        out[base] = {"best": best["options"], "score": best["score"], "points": points}
    return {"split": "valid", "metric": metric, "users": len(plan.cases),
            "protocol": str(cfg.protocol), "baselines": out}


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import yaml

    from recllm.commands._output import print_json
    from recllm.errors import RecllmError
    from recllm.evaluate import load_config

    text = Path(args.grid).read_text() if Path(args.grid).is_file() else args.grid
    try:
        grid = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecllmError(f"not valid YAML: {exc}", where="--grid") from None
    if not isinstance(grid, dict):
        raise RecllmError("the grid must be a mapping {baseline: {option: [values]}}", where="--grid")
    cfg = load_config(args.config)
    if isinstance(cfg.protocol, list):
        raise RecllmError("tune on one protocol", where="protocol", hint="--config with one protocol")
    result = tune(cfg, grid, args.metric, log=(lambda m: None) if args.json else print)
    if args.json:
        print_json(result)
    else:
        best = {b: r["best"] for b, r in result["baselines"].items()}
        print("# chosen on split: valid (" + args.metric + ")")
        print(yaml.safe_dump({"baseline_options": best}, sort_keys=False).rstrip())
    return 0
