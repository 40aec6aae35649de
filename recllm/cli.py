"""The `recllm` command. Each subcommand lives in its own module under `recllm.commands`,
imported only when the CLI starts, and each imports its heavy dependencies inside `run`."""

from __future__ import annotations

import argparse
import importlib
import sys

from recllm import __version__
from recllm.errors import RecllmError

# name -> module; each module has `add_parser(subparsers)` which sets `func` on its parser.
COMMANDS = {
    "data": "recllm.commands.data",
    "prompts": "recllm.commands.prompts",
    "models": "recllm.commands.models",
    "generate": "recllm.commands.generate",
    "match": "recllm.commands.match",
    "eval": "recllm.commands.evaluate",
    "report": "recllm.commands.report",
    "tune-baselines": "recllm.commands.tune_baselines",
    "tune": "recllm.commands.tune",
    "recommend": "recllm.commands.recommend",
    "serve": "recllm.commands.serve",
    "demo": "recllm.commands.demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recllm",
        description="Prompt-based generative recommendation with LLMs, and its offline evaluation.",
        epilog="`recllm COMMAND --help` for each command; `make demo` runs the main job end to end.",
    )
    parser.add_argument("--version", action="version", version=f"recllm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a subcommand not built into this install
            if exc.name != module_name:
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except RecllmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the OS refused (full disk, permissions ...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; finished work is saved — rerun with --resume to go on", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
