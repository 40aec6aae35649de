"""Throughput of the transformers backend on CPU: a batch of 16 vs one request at a time, and
the response-cache hit path vs the first run; with --backends, engines side by side.

    .venv/bin/python eval/bench/generation.py [--model smollm2-135m-instruct] [--users 16]
        [--max-tokens 128] [--max-history 20] [--threads N] [--dtype bfloat16]
    .venv/bin/python eval/bench/generation.py --backends transformers,llamacpp [--threads N]

--backends runs the same prompts, batched, on each engine in turn in one process (same model
alias: transformers loads its dequantized float32 folder, llamacpp the GGUF it came from) with
the same thread count, and reports each engine's tokens/s and the ratio to the first engine:
on a shared machine the ratio, measured in one run, means more than either absolute figure.
Each engine also answers the same prompts with 1 token (prefill), so decoding's own tokens/s,
(tokens - prompts) / (total - prefill), is reported apart from reading the prompts.

Prompts are real: the `generate` template for ML-100K test users (leave-one-out). Tokens/s
counts generated tokens up to each answer's end (EOS), so padding rows that already finished
in a batch do not inflate the batched figure. The cache run uses a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--template", default="generate")
    ap.add_argument("--users", type=int, default=16, help="requests (= the batch size of the batched run)")
    ap.add_argument("--max-tokens", type=int, default=128, help="answer cap; 10 titles take ~100-150 tokens")
    ap.add_argument("--max-history", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--dtype", default="auto", help="auto (float32 on CPU) | float32 | bfloat16")
    ap.add_argument("--backends", default=None, help="compare engines, e.g. transformers,llamacpp")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="with --backends: requests decoded together (default: all of them)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.backends:
        return compare(args)

    from recllm.backends import SamplingParams, get_backend
    from recllm.cache import CachedBackend
    from recllm.data import leave_one_out, load_dataset, sample_users
    from recllm.prompting import load_template, render_prompt

    dataset = load_dataset(args.dataset)
    cases = sample_users(leave_one_out(dataset).test, n=args.users, seed=0)
    template = load_template(args.template)
    params = SamplingParams(max_tokens=args.max_tokens)
    requests = [render_prompt(template, c, dataset, max_history=args.max_history).to_request(params)
                for c in cases]

    backend = get_backend("transformers", model=args.model, batch_size=1, threads=args.threads, dtype=args.dtype)
    backend.generate(requests[:1])  # load the weights and warm up kernels outside the timings

    def timed(batch_size: int, runner=None):
        backend.options.batch_size = batch_size
        started = time.perf_counter()
        results = (runner or backend).generate(requests)
        seconds = time.perf_counter() - started
        tokens = sum(r.completion_tokens or 0 for r in results)
        assert not any(r.error for r in results), [r.error for r in results if r.error]
        return results, seconds, tokens

    single, single_s, single_tok = timed(1)
    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedBackend(backend, Path(tmp) / "bench.sqlite")
        batched, batch_s, batch_tok = timed(len(requests), cached)
        rerun, rerun_s, _ = timed(len(requests), cached)
        assert all(r.cached for r in rerun) and [r.text for r in rerun] == [r.text for r in batched]
    same = sum(a.text == b.text for a, b in zip(single, batched))

    import torch

    report = {
        "model": args.model, "dtype": backend.dtype, "requests": len(requests), "max_tokens": args.max_tokens,
        "prompt_tokens_mean": round(sum(r.prompt_tokens for r in single) / len(single), 1),
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "one_at_a_time": {"seconds": round(single_s, 2), "tokens": single_tok,
                          "tokens_per_s": round(single_tok / single_s, 2)},
        "batched": {"batch_size": len(requests), "seconds": round(batch_s, 2), "tokens": batch_tok,
                    "tokens_per_s": round(batch_tok / batch_s, 2)},
        "batched_speedup": round((batch_tok / batch_s) / (single_tok / single_s), 2),
        "identical_answers_batched_vs_single": f"{same}/{len(requests)}",
        "cache": {"first_run_s": round(batch_s, 3), "cached_rerun_s": round(rerun_s, 5),
                  "speedup": round(batch_s / rerun_s, 1)},
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    print(f"model {report['model']} ({report['dtype']}) · {report['requests']} requests · ~{report['prompt_tokens_mean']} prompt tokens"
          f" · max {args.max_tokens} new tokens · torch threads {report['torch_threads']}"
          f" · load avg {report['load_average_1m']}")
    o, b, c = report["one_at_a_time"], report["batched"], report["cache"]
    print(f"one at a time : {o['tokens']:5d} tokens in {o['seconds']:7.2f} s = {o['tokens_per_s']:7.2f} tokens/s")
    print(f"batch of {b['batch_size']:<4d} : {b['tokens']:5d} tokens in {b['seconds']:7.2f} s = {b['tokens_per_s']:7.2f} tokens/s"
          f"  ({report['batched_speedup']}x; identical answers {report['identical_answers_batched_vs_single']})")
    print(f"cache         : first run {c['first_run_s']:.2f} s, cached re-run {c['cached_rerun_s'] * 1000:.2f} ms"
          f" = {c['speedup']:.0f}x")


def bench_requests(args):
    from recllm.backends import SamplingParams
    from recllm.data import leave_one_out, load_dataset, sample_users
    from recllm.prompting import load_template, render_prompt

    dataset = load_dataset(args.dataset)
    cases = sample_users(leave_one_out(dataset).test, n=args.users, seed=0)
    template = load_template(args.template)
    params = SamplingParams(max_tokens=args.max_tokens)
    return [render_prompt(template, c, dataset, max_history=args.max_history).to_request(params) for c in cases]


def timed_batch(backend, requests):
    started = time.perf_counter()
    results = backend.generate(requests)
    seconds = time.perf_counter() - started
    assert not any(r.error for r in results), [r.error for r in results if r.error]
    return results, seconds


def compare(args) -> None:
    """Each engine: load, warm up on one request, then the whole batch timed."""
    from recllm.backends import get_backend
    from recllm.backends.llamacpp import idle_cores

    requests = bench_requests(args)
    threads = args.threads or idle_cores()  # the same for every engine
    batch = args.batch_size or len(requests)
    options = {
        "transformers": {"batch_size": batch, "threads": threads, "dtype": args.dtype},
        "llamacpp": {"batch_size": batch, "threads": threads,
                     "n_ctx": 2048},  # per request: the prompts are ~300-600 tokens
    }
    rows = []
    for name in args.backends.split(","):
        backend = get_backend(name, model=args.model, **options.get(name, {}))
        if name == "llamacpp":  # no pass may reuse the prompts an earlier one left in the slots
            body = backend.body
            backend.body = lambda request: body(request) | {"cache_prompt": False}
        backend.generate(requests[:1])  # load and warm up outside the timing
        load = os.getloadavg()[0]
        results, seconds = timed_batch(backend, requests)
        tokens = sum(r.completion_tokens or 0 for r in results)
        # The same prompts with a 1-token answer: the prompt-processing (prefill) share of the time,
        # so that decoding's own speed (where the engines differ most) is seen apart from it.
        _, prefill = timed_batch(backend, [replace(r, params=replace(r.params, max_tokens=1)) for r in requests])
        decode_tokens = tokens - len(requests)
        rows.append({"backend": name, "seconds": round(seconds, 2), "tokens": tokens,
                     "tokens_per_s": round(tokens / seconds, 2), "prefill_seconds": round(prefill, 2),
                     "decode_tokens_per_s": round(decode_tokens / max(1e-9, seconds - prefill), 2),
                     "load_average_1m_at_start": round(load, 2), "sample": results[0].text[:120]})
        backend.close()
        del backend
    for row in rows:
        row["ratio"] = round(row["tokens_per_s"] / rows[0]["tokens_per_s"], 2)
        row["decode_ratio"] = round(row["decode_tokens_per_s"] / rows[0]["decode_tokens_per_s"], 2)
    report = {"model": args.model, "requests": len(requests), "batch_size": batch, "max_tokens": args.max_tokens,
              "threads": threads,
              "cpus": os.cpu_count(), "load_average_1m_end": round(os.getloadavg()[0], 2), "backends": rows}
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    print(f"model {args.model} · {len(requests)} prompts, batches of {batch} · max {args.max_tokens} new tokens"
          f" · {threads} threads each · load avg at end {report['load_average_1m_end']}")
    for row in rows:
        print(f"{row['backend']:>12}: {row['tokens']:5d} tokens in {row['seconds']:7.2f} s = "
              f"{row['tokens_per_s']:7.2f} tokens/s ({row['ratio']}x {rows[0]['backend']}); "
              f"prefill {row['prefill_seconds']:.1f} s, decoding {row['decode_tokens_per_s']:.2f} tokens/s "
              f"({row['decode_ratio']}x); load avg {row['load_average_1m_at_start']} at start")


if __name__ == "__main__":
    main()
