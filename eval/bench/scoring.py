"""Likelihood scoring cost on CPU: the transformers backend's prompt-once KV reuse against one
full forward pass over prompt + continuation per candidate, on real candidate prompts.

    .venv/bin/python eval/bench/scoring.py [--model smollm2-135m-instruct] [--users 3]
        [--candidates 20] [--max-history 50] [--threads N] [--json]

Prompts are real: the `rank-sequential` template for ML-100K test users (leave-one-out) with
the target and 19 seeded random unseen items as candidates (about 600 prompt tokens with 20
history titles). Each candidate's continuation is "1. <title (year)>", the answer's first item.
Both methods score the same token ids (recllm.backends.scoring's boundary rule), so their
log-probabilities must agree (to ~1e-4, float32); the script fails if they do not.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--template", default="rank-sequential")
    ap.add_argument("--users", type=int, default=3, help="prompts timed (each with --candidates continuations)")
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--max-history", type=int, default=20, help="history titles (20: ~600 prompt tokens)")
    ap.add_argument("--batch-size", type=int, default=20, help="rows per forward pass of the batched method")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from recllm.backends import ScoreRequest, get_backend
    from recllm.backends.hf_score import continuation_logprobs, full_pass_logprobs
    from recllm.backends.scoring import render, split_tokens
    from recllm.data import leave_one_out, load_dataset, sample_users
    from recllm.prompting import load_template, render_prompt
    from recllm.prompting.context import catalog_items

    dataset = load_dataset(args.dataset)
    items = catalog_items(dataset.catalog)
    cases = sample_users(leave_one_out(dataset).test, n=args.users, seed=0)
    template = load_template(args.template)
    rng = random.Random(0)
    ids = sorted(items)
    requests = []
    for case in cases:
        seen = set(case.history) | {case.target}
        negatives = rng.sample([i for i in ids if i not in seen], args.candidates - 1)
        candidates = [case.target, *negatives]
        rng.shuffle(candidates)
        rendered = render_prompt(template, case, dataset, candidates=candidates, max_history=args.max_history)
        requests.append(ScoreRequest(messages=rendered.messages, key=case.user_id,
                                     continuations=tuple(f"1. {items[i].label}" for i in candidates)))

    backend = get_backend("transformers", model=args.model, batch_size=args.batch_size, threads=args.threads)
    model, tokenizer = backend._load()
    bounds = []
    for request in requests:
        text, raw = render(tokenizer, request, args.model)
        bounds.append(split_tokens(tokenizer, text, request.continuations, raw=raw))
    backend.score(requests[:1])  # warm up kernels outside the timings
    full_pass_logprobs(model, dataclasses.replace(bounds[0], continuations=bounds[0].continuations[:1]), backend.device)

    started = time.perf_counter()
    reused = backend.score(requests)  # what the backend does ("auto": packed for these models)
    reuse_s = time.perf_counter() - started
    assert not any(r.error for r in reused), [r.error for r in reused if r.error]
    started = time.perf_counter()
    rows = [continuation_logprobs(model, b, tokenizer.pad_token_id, backend.device, args.batch_size, method="batched")
            for b in bounds]
    rows_s = time.perf_counter() - started
    started = time.perf_counter()
    separate = [full_pass_logprobs(model, b, backend.device) for b in bounds]
    full_s = time.perf_counter() - started
    diff = max(abs(a - b) for r, s in zip(reused, separate) for a, b in zip(r.logprobs, s))
    diff_rows = max(abs(a - b) for r, s in zip(rows, separate) for a, b in zip(r, s))

    import torch

    n = sum(len(r.logprobs) for r in reused)
    report = {
        "model": args.model, "dtype": backend.dtype, "prompts": len(requests), "continuations": n,
        "prompt_tokens_mean": round(sum(len(b.prompt) for b in bounds) / len(bounds), 1),
        "continuation_tokens_mean": round(sum(sum(r.tokens) for r in reused) / n, 1),
        "joint_boundary": f"{sum(sum(b.joint) for b in bounds)}/{n}",
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "kv_reuse": {"seconds": round(reuse_s, 2), "per_prompt_s": round(reuse_s / len(requests), 3)},
        "kv_reuse_rows": {"seconds": round(rows_s, 2), "per_prompt_s": round(rows_s / len(requests), 3),
                          "max_abs_logprob_diff": float(f"{diff_rows:.2e}")},
        "full_passes": {"seconds": round(full_s, 2), "per_prompt_s": round(full_s / len(requests), 3)},
        "speedup": round(full_s / reuse_s, 2),
        "max_abs_logprob_diff": float(f"{diff:.2e}"),
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(f"model {args.model} ({backend.dtype}) · {len(requests)} prompts x {args.candidates} candidates · "
              f"~{report['prompt_tokens_mean']} prompt tokens, ~{report['continuation_tokens_mean']} per continuation "
              f"· joint boundary {report['joint_boundary']} · torch threads {report['torch_threads']} "
              f"· load avg {report['load_average_1m']}")
        print(f"KV reuse   : {reuse_s:7.2f} s = {report['kv_reuse']['per_prompt_s']:.3f} s per prompt (packed)")
        print(f"  as rows  : {rows_s:7.2f} s = {report['kv_reuse_rows']['per_prompt_s']:.3f} s per prompt "
              f"(copies of the cache; max |difference| {diff_rows:.2e})")
        print(f"full passes: {full_s:7.2f} s = {report['full_passes']['per_prompt_s']:.3f} s per prompt "
              f"({args.candidates} forward passes each)")
        print(f"speedup {report['speedup']}x · max |log-prob difference| {diff:.2e}")
    if max(diff, diff_rows) > 1e-3:
        sys.exit(f"the methods disagree: max |difference| {max(diff, diff_rows):.2e}")


if __name__ == "__main__":
    main()
