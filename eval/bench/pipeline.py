"""Throughput of the evaluation pipeline itself on ML-1M, generation excluded.

Every one of ML-1M's 6,040 users goes through what `recllm eval` does per user: render the
prompt (Jinja, sandboxed), "generate" (the scripted backend answers instantly from a table
prepared beforehand), parse the answer, match titles to catalog ids, score, and append the
sample to samples.jsonl (flushed + fsynced per batch). Answers look like a model's: numbered
lists of catalog titles written the way people write them, some invented, some repeated.

    .venv/bin/python eval/bench/pipeline.py [--users N] [--batch-size B] [--workers W]
                                            [--protocol full,candidates]

Prints users/s for the LLM pipeline alone (no baselines) and with the three baselines.
Target: at least 2,000 users/s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def answers_for(plan, protocol: str, seed: int = 0) -> dict[str, str]:
    """A model-like answer per user: 10 titles (full) or every candidate (ranking), with
    years on some lines, a made-up title now and then, and an occasional repeat."""
    rng = np.random.default_rng(seed)
    catalog = plan.dataset.catalog
    items = np.array(list(plan.train.items), dtype=object)
    out = {}
    for case in plan.cases:
        if protocol == "full":
            ids = list(rng.choice(items, 10, replace=False))
        else:
            ids = list(plan.candidates[case.user_id].items)
            rng.shuffle(ids)
        lines = []
        for n, item in enumerate(ids, 1):
            row = catalog.item(item)
            title = row["title"]
            if rng.random() < 0.5 and row.get("year"):
                title = f"{title} ({row['year']})"
            if rng.random() < 0.05:
                title = f"The Invisible {title.split()[0]} Returns"
            lines.append(f"{n}. {title}")
        if rng.random() < 0.1:
            lines.append(f"{len(lines) + 1}. {lines[0].split('. ', 1)[1]}")
        out[case.user_id] = "Here are my recommendations:\n" + "\n".join(lines)
    return out


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the workers)."""
    import resource
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", default="all")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--protocol", default="full,candidates")
    ap.add_argument("--workers", type=int, default=2, help="processes for the CPU stages")
    args = ap.parse_args()

    from recllm.data import load_dataset
    from recllm.evaluate import EvalConfig
    from recllm.evaluate.runner import run_one
    from recllm.evaluate.setup import build_plan

    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")
    t = time.perf_counter()
    ds = load_dataset("ml-1m")
    print(f"load ml-1m: {time.perf_counter() - t:.2f}s, {ds.stats()['users']} users")
    for protocol in args.protocol.split(","):
        for baselines in ([], ["random", "popularity", "itemknn"]):
            cfg = EvalConfig(dataset="ml-1m", protocol=protocol, users=args.users,
                             model="scripted", backend="scripted", max_history=50,
                             batch_size=args.batch_size, progress=False, baselines=baselines,
                             workers=args.workers,
                             ci_resamples=1000).resolved()
            plan = build_plan(cfg, dataset=ds, log=lambda m: None)
            answers = answers_for(plan, protocol)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "answers.jsonl"
                import json
                path.write_text("".join(json.dumps({"key": k, "output": v}) + "\n"
                                        for k, v in answers.items()))
                cfg = cfg.model_copy(update={"backend_options": {"path": str(path)},
                                             "output": str(Path(tmp) / "run")})
                t0, c0 = time.perf_counter(), cpu_seconds()
                res = run_one(cfg, Path(cfg.output), dataset=ds, log=lambda m: None)
                total, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            tm = res["timings"]
            n = tm["users_this_session"]
            loop = tm["loop_seconds_this_session"]
            llm = res["systems"]["scripted"]
            label = "LLM pipeline only" if not baselines else "LLM + 3 baselines"
            print(f"{protocol:10s} {label:18s}: {n} users, loop {loop:.2f}s = {n / loop:,.0f} users/s "
                  f"(render {tm['render_seconds']:.2f}s, generate {tm['generate_seconds']:.2f}s, "
                  f"parse+match {tm['ground_seconds']:.2f}s); whole run incl. plan+results "
                  f"{total:.2f}s; ndcg@10 {llm['metrics']['ndcg@10']['mean']:.4f}, "
                  f"out-of-catalog {llm['validity']['out_of_catalog_rate']['mean']:.3f}")
            lc = tm["loop_cpu_seconds_this_session"]
            print(f"{'':10s} {'':18s}  loop CPU time (all processes) {lc:.2f}s = {lc / n * 1e3:.3f} "
                  f"ms/user -> {2 * n / lc:,.0f} users/s if 2 idle cores were all ours; whole run "
                  f"CPU {cpu:.2f}s; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
