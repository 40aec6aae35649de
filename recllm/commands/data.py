"""`recllm data list | fetch NAME | stats NAME_OR_PATH`: named datasets, fetching, statistics."""

from __future__ import annotations

import argparse
import json
from typing import Any

_PREFIX = "load_"


def add_loader_arguments(parser: argparse.ArgumentParser) -> None:
    """The loader options as flags (`--user-col` ...), generated from LoadOptions' fields and
    their descriptions; `--format` offers every registered format (plugins too)."""
    from recllm.commands._flags import add_model_flags
    from recllm.data.formats import format_names
    from recllm.data.options import LoadOptions

    add_model_flags(parser.add_argument_group("loading"), LoadOptions, prefix=_PREFIX,
                    choices={"format": format_names()})


def loader_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `load_dataset` keyword arguments given on the command line."""
    from recllm.commands._flags import model_values
    from recllm.data.options import LoadOptions

    return model_values(args, LoadOptions, prefix=_PREFIX)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="list, fetch and inspect datasets",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="named datasets and whether they are fetched")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_list)

    p = sub.add_parser("fetch", help="fetch a named dataset into RECLLM_HOME")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="fetch again even if a copy exists")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_fetch)

    p = sub.add_parser("stats", help="load a dataset (name or path) and print its statistics")
    p.add_argument("dataset", metavar="NAME_OR_PATH")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--order", choices=("auto", "time", "random"), default="auto",
                   help="order of each user's items for the leave-one-out figures: time, or a seeded "
                   "synthetic shuffle (random); auto: time when the dataset has timestamps")
    p.add_argument("--order-seed", type=int, default=0, metavar="N", help="seed of the random order")
    add_loader_arguments(p)
    p.set_defaults(func=run_stats)


def run_list(args: argparse.Namespace) -> int:
    from recllm.commands._output import print_json, print_table
    from recllm.data.download import dataset_dir
    from recllm.data.registry import DATASETS

    rows = []
    for spec in DATASETS.values():
        manifest = dataset_dir(spec.name) / "source.json"
        served_by = None
        if manifest.exists():
            try:
                served_by = json.loads(manifest.read_text()).get("source_id")
            except (OSError, ValueError):
                pass
        rows.append({"name": spec.name, "fetched": served_by is not None, "served_by": served_by,
                     "domain": spec.domain, "domain_verb": spec.domain_verb or None,
                     "sources": [s.describe() for s in spec.sources],
                     "description": spec.description})
    if args.json:
        print_json(rows)
    else:
        print_table([{**r, "fetched": r["served_by"] or "no", "sources": len(r["sources"])} for r in rows],
                    ["name", "fetched", "domain", "sources", "description"])
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from recllm.commands._output import print_json
    from recllm.data.download import fetch

    got = fetch(args.name, force=args.force)
    if args.json:
        print_json({"name": got.name, "path": str(got.path), "format": got.format,
                    "source": got.source, "cached": got.cached})
    else:
        state = "already fetched" if got.cached else "fetched"
        print(f"{got.name}: {state} from {got.source}\n  {got.path}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    import time

    from recllm.commands._output import print_json, print_table
    from recllm.data import leave_one_out, load_dataset
    from recllm.data.splits import has_timestamps

    started = time.perf_counter()
    dataset = load_dataset(args.dataset, **loader_options(args))
    stats = dataset.stats()
    stats["load_seconds"] = round(time.perf_counter() - started, 3)
    inter = dataset.interactions
    per_user = inter.groupby("user_id", sort=False).size()
    stats["history_length"] = {"min": int(per_user.min()), "median": float(per_user.median()),
                               "max": int(per_user.max())}
    timed = has_timestamps(dataset)  # without, the column holds row numbers: no time range
    stats["time_range"] = [int(inter["timestamp"].min()), int(inter["timestamp"].max())] if timed else None
    if stats["rated"]:
        stats["rating_counts"] = {str(k): int(v) for k, v in inter["rating"].value_counts().sort_index().items()}
        stats["unrated"] = int(inter["rating"].isna().sum())
    stats["filters"] = _filters(dataset, stats)
    split = leave_one_out(dataset, order=args.order, seed=args.order_seed)
    stats["order"] = {k: split.params[k] for k in ("order", "synthetic", "order_seed", "note") if k in split.params}
    stats["leave_one_out"] = split.summary()
    stats["meta"] = dataset.meta
    if args.json:
        print_json(stats)
        return 0
    keys = ["name", "domain", "users", "items", "catalog_items", "interactions", "density",
            "interactions_per_user", "rated", "source", "load_seconds"]
    print_table([{"field": k, "value": ("yes" if stats[k] else "no") if isinstance(stats[k], bool) else stats[k]}
                 for k in keys])
    h = stats["history_length"]
    print(f"\nper-user interactions: min {h['min']}, median {h['median']:g}, max {h['max']}")
    f = stats["filters"]
    removed = ", ".join(f"{k.removeprefix('removed_by_')} -{v:,}" for k, v in f.items() if k.startswith("removed_by_"))
    if removed or f["applied"]:
        applied = ", ".join(f"{k}={v}" for k, v in f["applied"].items())
        print(f"filters ({applied}): {f['read']:,} interactions read; {removed or 'none removed'}; left: {f['left']['interactions']:,} "
              f"interactions, {f['left']['users']:,} users, {f['left']['items']:,} items")
    print(f"leave-one-out: {len(split.test):,} test users, {len(split.valid):,} validation users, "
          f"{split.skipped:,} skipped (fewer than {split.params['min_history'] + 1} interactions)")
    if split.params.get("synthetic"):
        print(f"order: random (synthetic, seed {split.params['order_seed']}): {split.params['note']}")
    return 0


def _filters(dataset, stats: dict[str, Any]) -> dict[str, Any]:
    """What the load-time filters (min_rating, duplicates, k_core) removed and what is left."""
    meta = dataset.meta
    out: dict[str, Any] = {"read": meta.get("read", stats["interactions"])}
    out.update({k: v for k, v in meta.items() if k.startswith("removed_by_")})
    opts = meta.get("options", {})
    out["applied"] = {k: opts[k] for k in ("min_rating", "duplicates", "k_core") if k in opts}
    out["left"] = {k: stats[k] for k in ("interactions", "users", "items")}
    return out
