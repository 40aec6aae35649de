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
    p = sub.add_parser("fetch", help="make an alias loadable offline (its sources in order, see `models list`)")
    p.add_argument("alias")
    p.add_argument("--engine", choices=["transformers", "llamacpp"], default=None,
                   help="what to fetch for: llamacpp keeps the GGUF file, transformers converts it into a "
                        "model folder (default: the alias's first engine)")
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
                     for r in rows], ["alias", "params", "size", "kind", "engines", "sources", "fetched", "default",
                                      "description"])
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from recllm.models import MODELS, fetch, fetch_gguf, file_sha256, resolve
    from recllm.errors import unknown

    if args.alias not in MODELS:
        raise unknown("model", args.alias, MODELS)
    engine = args.engine or MODELS[args.alias].engines[0]
    if engine == "llamacpp":  # the GGUF file as it is
        path = fetch_gguf(args.alias, force=args.force)
        revision = file_sha256(path)[:16]
    else:
        path = fetch(args.alias, force=args.force)
        revision = resolve(args.alias).revision
    if args.json:
        print_json({"alias": args.alias, "engine": engine, "path": str(path), "revision": revision})
    else:
        print(f"{args.alias}: {path} (engine {engine}, revision {revision})")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from recllm.models import MODELS, file_sha256, resolve, resolve_gguf

    spec = MODELS.get(args.name)
    if spec is not None and spec.engines[0] == "llamacpp":  # its GGUF file, as llamacpp loads it
        path = resolve_gguf(args.name)
        info = {"name": args.name, "path": str(path), "source": "cache", "engine": "llamacpp",
                "revision": file_sha256(path)[:16], "instruct": spec.instruct}
    else:
        info = asdict(resolve(args.name))
    if args.json:
        print_json(info)
    else:
        for key, value in info.items():
            print(f"{key:>9}: {value}")
    return 0
