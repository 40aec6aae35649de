"""`recllm generate`: render a template for a few users of a dataset, send it to a model, and
show each prompt and raw answer with its tokens and seconds. The quickest way to see what a
template and a model actually do before running a full evaluation."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from recllm.commands._args import parse_assignment
from recllm.commands._output import print_json
from recllm.errors import RecllmError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("generate", help="show rendered prompts and raw model answers for a few users",
                              description=__doc__)
    p.add_argument("--model", default=None, help="alias, model folder or hub id (default: smollm2-135m-instruct)")
    p.add_argument("--backend", default="transformers", help="transformers | vllm | openai | scripted")
    p.add_argument("--template", default=None, help="template name or file (default: the generate template)")
    p.add_argument("--dataset", default="ml-100k", help="dataset name or path")
    p.add_argument("--users", type=int, default=3, help="how many test users to sample")
    p.add_argument("--user", action="append", default=None, help="a user id to include (repeatable)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the user sample")
    p.add_argument("--k", type=int, default=None, help="how many items to ask for (default: the template's)")
    p.add_argument("--max-history", type=int, default=50, help="most recent history items to show (default 50)")
    p.add_argument("--max-prompt-tokens", type=int, default=None,
                   help="cut the oldest history until the prompt fits (model tokens)")
    p.add_argument("--max-tokens", type=int, default=256, help="answer length cap (tokens)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None, help="sampling seed (needed to cache sampled answers)")
    p.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="> 1 penalizes tokens already in the prompt or answer (e.g. history titles); 1 = off")
    p.add_argument("--frequency-penalty", type=float, default=0.0,
                   help="OpenAI-style, answer tokens only: minus this per earlier use; 0 = off")
    p.add_argument("--presence-penalty", type=float, default=0.0,
                   help="OpenAI-style, answer tokens only: minus this once used; 0 = off")
    p.add_argument("--batch-size", type=int, default=None, help="transformers: requests per forward batch")
    p.add_argument("--base-url", default=None, help="openai: server URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="any backend option (value parsed as JSON when it can be), repeatable")
    p.add_argument("--no-cache", action="store_true", help="always ask the model (don't read or write the cache)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """Backend options from the flags; --option KEY=VALUE wins over the named flags."""
    from recllm.backends import backend_class

    fields = backend_class(args.backend).Options.model_fields
    opts: dict[str, Any] = {}
    if "model" in fields and (args.model or args.backend != "openai"):
        from recllm.models import DEFAULT_MODEL
        opts["model"] = args.model or DEFAULT_MODEL
    if args.batch_size is not None:
        opts["batch_size"] = args.batch_size
    if args.base_url is not None:
        opts["base_url"] = args.base_url
    for item in args.option:
        key, value = parse_assignment(item, "--option")
        opts[key] = value
    return opts


def run(args: argparse.Namespace) -> int:
    from recllm.backends import SamplingParams, get_backend
    from recllm.cache import CachedBackend
    from recllm.data import leave_one_out, load_dataset, sample_users
    from recllm.prompting import (
        DEFAULT_TEMPLATE,
        PromptTooLong,
        load_template,
        render_prompt,
    )
    from recllm.redact import redact, redact_text, secret_values

    try:
        params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                                seed=args.seed, repetition_penalty=args.repetition_penalty,
                                frequency_penalty=args.frequency_penalty, presence_penalty=args.presence_penalty)
    except ValueError as exc:
        raise RecllmError(str(exc), where="command line") from None
    template = load_template(args.template or DEFAULT_TEMPLATE)
    if template.header.mode == "rank":
        raise RecllmError(f"template {template.name!r} ranks candidates, which come from an evaluation protocol",
                          hint="use `recllm eval --protocol candidates` for rank templates, "
                               "or a generate-mode template here (`recllm prompts list`)")
    dataset = load_dataset(args.dataset)
    cases = sample_users(leave_one_out(dataset).test, n=args.users, seed=args.sample_seed, user_ids=args.user)
    options = backend_options(args)
    secrets = secret_values(options)  # masked in everything printed below (errors, identity)
    backend = get_backend(args.backend, **options)
    if not args.no_cache:
        backend = CachedBackend(backend)
    rows: list[dict[str, Any]] = []
    rendered, requests = [], []
    for case in cases:
        row: dict[str, Any] = {"user_id": case.user_id, "target": _title(dataset, case.target)}
        try:
            prompt = render_prompt(template, case, dataset, k=args.k, max_history=args.max_history,
                                   max_prompt_tokens=args.max_prompt_tokens,
                                   count_tokens=backend.count_tokens if args.max_prompt_tokens else None)
        except PromptTooLong as exc:
            row.update(error=str(exc))
            rows.append(row)
            continue
        row.update(prompt=prompt.to_dict())
        rows.append(row)
        rendered.append(row)
        requests.append(prompt.to_request(params))
    started = time.perf_counter()
    results = backend.generate(requests) if requests else []
    wall = time.perf_counter() - started
    for row, result in zip(rendered, results):
        row.update(answer=result.text, answers=result.texts, prompt_tokens=result.prompt_tokens,
                   completion_tokens=result.completion_tokens, seconds=round(result.seconds, 3),
                   cached=result.cached, finish_reason=result.finish_reason,
                   error=redact_text(result.error, secrets) if result.error else None)
    summary = {"template": template.name, "backend": args.backend, "identity": redact(backend.identity()),
               "dataset": dataset.name, "users": len(rows), "wall_seconds": round(wall, 3),
               "cached": sum(bool(r.cached) for r in results), "failed": sum(bool(r.get("error")) for r in rows)}
    backend.close()
    if args.json:
        print_json({"summary": summary, "samples": rows})
    else:
        show(rows, summary)
    return 1 if rows and summary["failed"] == len(rows) else 0


def _title(dataset, item_id: str) -> str:
    try:
        return dataset.catalog[item_id]
    except KeyError:
        return item_id


def show(rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    for row in rows:
        prompt = row.get("prompt") or {}
        head = f"user {row['user_id']}"
        if prompt:
            head += f" · {prompt['history_used']} history items"
            if prompt["history_cut"]:
                head += f" ({prompt['history_cut']} cut)"
        print(f"━━ {head} · held-out: {row['target']} ━━")
        if prompt.get("messages"):
            for m in prompt["messages"]:
                print(f"[{m['role']}]\n{m['content']}\n")
        elif prompt.get("prompt") is not None:
            print(f"{prompt['prompt']}\n")
        if row.get("error"):
            print(f"── failed: {row['error']}\n")
            continue
        tokens = f"{row['prompt_tokens']}→{row['completion_tokens']} tokens"
        where = "cache" if row["cached"] else f"{row['seconds']:.2f} s"
        print(f"── answer ({tokens}, {where}, {row['finish_reason']}) ──\n{row['answer']}\n")
    ident = summary["identity"]
    print(f"{summary['users']} users · {ident.get('engine')}:{ident.get('model')} · template {summary['template']}"
          f" · {summary['cached']} from cache · {summary['failed']} failed · {summary['wall_seconds']:.2f} s",
          file=sys.stderr)
