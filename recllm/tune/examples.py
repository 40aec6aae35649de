"""Tuning examples, rendered through recllm's own templates so the tuned model sees exactly the
prompts that evaluation sends.

- generation (BIGRec-style): a user's history -> the next item's title as the answer's first
  line ("1. <label>\\n": the continuation score mode scores, recllm.evaluate.scoring).
- ranking: history + shuffled candidates (the true next item + `negatives` unseen ones) -> the
  candidates as a numbered list with the true next item first (`rank_answer: all`), or its
  first line only (`rank_answer: first`).

No leakage: examples come from each user's TRAINING interactions only, i.e. everything before
the leave-one-out validation target (recllm.data.leave_one_out). The validation and test
targets of a user never appear in that user's examples, as history, answer or negative.
Held-out users (`valid_users`) give the validation examples and are never trained on.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from recllm.data.schema import RecDataset, UserCase
from recllm.errors import RecllmError
from recllm.options import StrictOptions

EXAMPLES_VERSION = 1  # bumped when the way examples are made changes (part of the fingerprint)


class ExampleOptions(StrictOptions):
    """How examples are drawn; see docs/tune.md."""

    examples: int = Field(2000, ge=1)        # training examples (generation + ranking)
    rank_ratio: float = Field(0.0, ge=0, le=1)  # share of ranking examples
    template: str = "score-next"             # generation examples' template
    rank_template: str = "rank-sequential"   # ranking examples' template
    rank_answer: Literal["all", "first"] = "all"
    negatives: int = Field(19, ge=1)
    max_history: int = Field(20, ge=1)
    # items the prompt asks for; None = the template's. Candidate evaluation asks for as many as
    # it shows (1 + 19 -> 20): set k to match its prompt exactly.
    k: int | None = Field(None, ge=1)
    min_history: int = Field(1, ge=1)
    valid_users: int = Field(50, ge=1)       # held-out users (one validation example each)
    seed: int = 0


@dataclass(frozen=True)
class Plan:
    """Where examples come from: per training user, the ordered training sequence."""

    train: list[UserCase]   # users to train on; .history = training interactions, in order
    valid: list[UserCase]   # held-out users
    held_out: dict[str, frozenset[str]]  # user -> items never to show (validation + test targets)
    positions: int          # usable (history, next item) positions over the training users


def plan(dataset: RecDataset, opts: ExampleOptions) -> Plan:
    """Split users into training and held-out, each user's sequence cut before its validation target."""
    from recllm.data import leave_one_out

    split = leave_one_out(dataset, min_history=1)
    tests = {c.user_id: c.target for c in split.test}
    held_out, usable = {}, []
    for case in split.valid:  # history = every interaction before the validation target
        hidden = frozenset({case.target, tests.get(case.user_id, case.target)})
        seq = tuple(i for i in case.history if i not in hidden)  # repeats of a target too
        if len(seq) > opts.min_history:
            held_out[case.user_id] = hidden
            usable.append(_with_history(case, seq))
    if len(usable) < opts.valid_users + 1:
        raise RecllmError(
            f"dataset {dataset.name!r} has {len(usable)} users with more than {opts.min_history + 2} "
            f"interactions; tuning needs at least {opts.valid_users + 1} ({opts.valid_users} held out "
            "for validation, the rest to train on)",
            hint="use a larger source dataset, or lower valid_users / min_history in the tune config")
    order = sorted(usable, key=lambda c: c.user_id)
    random.Random(f"{opts.seed}:valid").shuffle(order)
    valid, train = order[:opts.valid_users], sorted(order[opts.valid_users:], key=lambda c: c.user_id)
    positions = sum(len(c.history) - opts.min_history for c in train)
    return Plan(train, valid, held_out, positions)


def _with_history(case: UserCase, seq: tuple[str, ...]) -> UserCase:
    from dataclasses import replace

    return replace(case, history=seq, ratings=(), timestamps=(), truncated=0, seen=frozenset(seq))


def draw(p: Plan, opts: ExampleOptions) -> list[tuple[UserCase, int]]:
    """(user, position of the answer item) pairs: users visited round-robin in a seeded order,
    one random unused position each per round, so many users are covered, none dominates."""
    if opts.examples > p.positions:
        raise RecllmError(f"the tune config asks for {opts.examples} examples, but the training users "
                          f"have only {p.positions} (history, next item) positions",
                          where="examples", hint=f"set examples to at most {p.positions}")
    rng = random.Random(f"{opts.seed}:draw")
    left = {c.user_id: list(range(opts.min_history, len(c.history))) for c in p.train}
    for positions in left.values():
        rng.shuffle(positions)
    users, picked = list(p.train), []
    while len(picked) < opts.examples:
        rng.shuffle(users)
        users = [c for c in users if left[c.user_id]]
        for case in users[:opts.examples - len(picked)]:
            picked.append((case, left[case.user_id].pop()))
    return picked


def render_example(case: UserCase, at: int, dataset: RecDataset, opts: ExampleOptions, kind: str,
                   rng: random.Random, pool: list[str], templates: dict,
                   hidden: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One example row: prompt (chat messages as JSON, or a raw prompt), answer, and every item
    it shows (for the leakage check)."""
    from dataclasses import replace

    from recllm.prompting import render_prompt

    seq, target = case.history[:at], case.history[at]
    view = replace(case, history=seq, target=target, seen=frozenset(seq))
    template = templates[kind]
    candidates: list[str] = []
    if kind == "rank" or template.header.mode == "rank":
        never = set(case.history) | hidden
        candidates = [target] + _negatives(pool, never, opts.negatives, rng)
        rng.shuffle(candidates)
    rendered = render_prompt(template, view, dataset, k=opts.k, candidates=candidates, max_history=opts.max_history)
    labels = {c.id: c.label for c in rendered.variables["candidates"]}
    label = labels.get(target) or _label(dataset, target)
    numbered = rendered.output == "numbered_list"
    if kind == "rank" and opts.rank_answer == "all" and "candidates" in template.variables:
        ordered = [target] + [c for c in candidates if c != target]
        answer = "".join(f"{n}. {labels[c]}\n" if numbered else f"{labels[c]}\n"
                         for n, c in enumerate(ordered, 1))
    else:
        answer = f"1. {label}\n" if numbered else f"{label}\n"
    shown = [h.id for h in rendered.variables["history"]]
    return {"user_id": case.user_id, "kind": kind, "target": target,
            "messages": json.dumps(list(rendered.messages)) if rendered.messages is not None else None,
            "prompt": rendered.prompt, "answer": answer, "items": shown + candidates + [target],
            "chat": rendered.messages is not None}


def _negatives(pool: list[str], never: set[str], n: int, rng: random.Random) -> list[str]:
    out: list[str] = []
    tries = 0
    while len(out) < n and tries < 50 * n:
        item = pool[rng.randrange(len(pool))]
        tries += 1
        if item not in never and item not in out:
            out.append(item)
    if len(out) < n:
        raise RecllmError(f"cannot draw {n} negatives the user has not seen from a catalog of {len(pool)}",
                          hint="lower negatives in the tune config")
    return out


def _label(dataset: RecDataset, item_id: str) -> str:
    from recllm.prompting.context import catalog_items

    return catalog_items(dataset.catalog)[item_id].label


def fingerprint(dataset: RecDataset, opts: ExampleOptions, templates: dict) -> str:
    """Everything that changes the examples: data, options, template texts, this code's version."""
    parts = {"data": dataset.fingerprint(), "opts": opts.model_dump(), "version": EXAMPLES_VERSION,
             "templates": {k: t.sha256 for k, t in sorted(templates.items())}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def build(dataset: RecDataset, opts: ExampleOptions, *, cache: bool = True, log=None):
    """(train, valid) as datasets.Dataset, cached under RECLLM_HOME/tune-examples/<fingerprint>."""
    import datasets

    from recllm import paths
    from recllm.prompting import load_template

    templates = {"generate": load_template(opts.template), "rank": load_template(opts.rank_template)}
    fp = fingerprint(dataset, opts, templates)
    folder = paths.home() / "tune-examples" / fp
    if cache and (folder / "done").exists():
        return datasets.load_from_disk(str(folder / "train")), datasets.load_from_disk(str(folder / "valid")), fp
    p = plan(dataset, opts)
    pool = sorted(str(i) for i in dataset.catalog)
    rng = random.Random(f"{opts.seed}:render")
    picked = draw(p, opts)
    n_rank = round(opts.rank_ratio * len(picked))
    kinds = ["rank"] * n_rank + ["generate"] * (len(picked) - n_rank)
    rng.shuffle(kinds)
    rows = [render_example(c, at, dataset, opts, kind, rng, pool, templates, p.held_out[c.user_id])
            for (c, at), kind in zip(picked, kinds)]
    vrows = [render_example(c, len(c.history) - 1, dataset, opts, "generate" if i % 2 or not n_rank else "rank",
                            rng, pool, templates, p.held_out[c.user_id]) for i, c in enumerate(p.valid)]
    train = datasets.Dataset.from_list(rows).shuffle(seed=opts.seed, new_fingerprint=f"{fp}-train")
    valid = datasets.Dataset.from_list(vrows)
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        train.save_to_disk(str(folder / "train"))
        valid.save_to_disk(str(folder / "valid"))
        (folder / "done").write_text(json.dumps({"examples": len(rows), "valid": len(vrows)}))
    if log:
        log(f"{len(rows)} tuning examples ({n_rank} ranking) from {len(p.train)} users; "
            f"{len(vrows)} validation examples from held-out users; fingerprint {fp}")
    return train, valid, fp
