"""`recllm prompts list | show NAME | render NAME --dataset D --user U | check [PATH...]`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from recllm.commands._output import print_json, print_table
from recllm.errors import RecllmError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("prompts", help="list, show, render and check prompt templates",
                              description=__doc__)
    sub = p.add_subparsers(dest="prompts_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="templates that can be loaded by name")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=run_list)

    show = sub.add_parser("show", help="a template's header, variables and source")
    show.add_argument("name", help="template name or .jinja path")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=run_show)

    render = sub.add_parser("render", help="render a template for one user of a dataset")
    render.add_argument("name", help="template name or .jinja path")
    render.add_argument("--dataset", required=True, help="dataset name or path (see `recllm data list`)")
    render.add_argument("--user", required=True, help="user id")
    render.add_argument("--k", type=int, default=None, help="items to recommend (default: the template's)")
    render.add_argument("--candidates", type=int, default=None, metavar="N",
                        help="rank templates: held-out item + N-1 sampled unseen items (default 20)")
    render.add_argument("--negative-sampling", choices=["uniform", "popularity"], default="uniform")
    render.add_argument("--seed", type=int, default=0, help="seed of the candidate draw and shuffle")
    render.add_argument("--domain", default=None, help="target domain noun (cross-domain), e.g. book")
    render.add_argument("--domain-plural", default=None, help="its plural, when not just +s")
    render.add_argument("--max-history", type=int, default=None, help="keep at most N recent items")
    render.add_argument("--max-prompt-tokens", type=int, default=None,
                        help="cut the oldest history to fit (character estimate of tokens)")
    render.add_argument("--json", action="store_true", help="print JSON")
    render.set_defaults(func=run_render)

    check = sub.add_parser("check", help="check templates: header, declared variables, fixture render")
    check.add_argument("paths", nargs="*", help="files or folders (default: every known template)")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=run_check)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _summary(t) -> dict[str, Any]:
    h = t.header
    return {"name": t.name, "mode": h.mode, "output": h.output, "chat": h.chat, "k": h.k,
            "version": h.version, "description": " ".join(h.description.split()),
            "path": str(t.path) if t.path else None, "sha256": t.sha256}


def run_list(args: argparse.Namespace) -> int:
    from recllm.prompting import list_templates, template_dirs

    rows = [_summary(t) for t in list_templates()]
    if args.json:
        print_json({"dirs": [str(d) for d in template_dirs()], "templates": rows})
        return 0
    print_table([{**r, "chat": "yes" if r["chat"] else "no",
                  "description": _clip(r["description"], 70)} for r in rows],
                ["name", "mode", "output", "chat", "k", "description"])
    return 0


def run_show(args: argparse.Namespace) -> int:
    from recllm.prompting import load_template

    t = load_template(args.name)
    info = {**_summary(t), "stop": t.header.stop, "variables": sorted(t.variables),
            "roles": list(t.roles), "source": t.source}
    if args.json:
        print_json(info)
        return 0
    for key in ("name", "version", "mode", "output", "chat", "k", "stop", "path", "sha256"):
        print(f"{key:10} {info[key]}")
    print(f"{'variables':10} {', '.join(info['variables'])}")
    print(f"{'messages':10} {', '.join(info['roles']) or '(raw prompt)'}")
    print(f"\n{info['description']}\n\n{t.source.rstrip()}")
    return 0


def run_render(args: argparse.Namespace) -> int:
    from recllm.data import leave_one_out, load_dataset
    from recllm.prompting import load_template, render_prompt

    template = load_template(args.name)
    dataset = load_dataset(args.dataset)
    case = next((c for c in leave_one_out(dataset).test if c.user_id == str(args.user)), None)
    if case is None:
        raise RecllmError(f"user {args.user!r} has no test case in {dataset.name!r}",
                          hint="pick a user with at least two interactions (see `recllm data show`)")
    candidates: list[str] = []
    if template.header.mode == "rank" or args.candidates:
        candidates = draw_candidates(dataset, case, args.candidates or 20, args.negative_sampling,
                                     args.seed)
    out = render_prompt(template, case, dataset, k=args.k, candidates=candidates,
                        domain=args.domain, domain_plural=args.domain_plural,
                        max_history=args.max_history, max_prompt_tokens=args.max_prompt_tokens)
    record = {**out.to_dict(), "dataset": dataset.name, "user": case.user_id,
              "target": case.target, "target_title": dataset.catalog.get(case.target)}
    if args.json:
        print_json(record)
        return 0
    print(out.text)
    print(f"\n--- {template.name} ({template.sha256[:12]}) user {case.user_id}: history "
          f"{out.history_used} used, {out.history_cut} cut; ~{out.prompt_tokens or _chars(out)} "
          f"tokens; {len(candidates)} candidates; held-out target {record['target_title']!r}",
          file=sys.stderr)
    return 0


def draw_candidates(dataset, case, n: int, sampling: str, seed: int) -> list[str]:
    """The held-out item plus n-1 negatives, drawn and shuffled like `recllm eval`'s
    candidates protocol (recllm.evaluate.candidates), so a rendered prompt matches an eval one."""
    if n < 2:
        raise RecllmError(f"--candidates must be at least 2, got {n}")
    from recllm.baselines import training_data
    from recllm.evaluate.candidates import NegativeSampler, sampled_candidates

    inter = dataset.interactions
    seen = {case.user_id: set(inter.loc[inter["user_id"] == case.user_id, "item_id"])}
    sampler = NegativeSampler(training_data(dataset, [case]), n - 1, sampling, seed)
    [cands], [reason] = sampled_candidates([case], sampler, seed, seen)
    if cands is None:
        raise RecllmError(f"cannot draw candidates for user {case.user_id!r}: {reason}")
    return list(cands.items)


def run_check(args: argparse.Namespace) -> int:
    from recllm.prompting import check_paths

    results = check_paths(args.paths)
    if not results:
        raise RecllmError("no templates found", hint="pass .jinja files or folders holding them")
    if args.json:
        print_json([{"name": r.name, "path": r.path, "ok": r.ok, "problems": r.problems}
                    for r in results])
    else:
        for r in results:
            print(f"{'ok  ' if r.ok else 'FAIL'} {r.name}  ({r.path})")
            for problem in r.problems:
                print("     " + problem.replace("\n", "\n     "))
        bad = sum(not r.ok for r in results)
        print(f"{len(results) - bad} of {len(results)} templates ok")
    return 1 if any(not r.ok for r in results) else 0


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _chars(out) -> int:
    from recllm.prompting import estimate_tokens

    return estimate_tokens(out)
