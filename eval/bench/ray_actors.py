"""`--executor ray` against a local run: 100 ML-100K users, SmolLM2-135M through llama.cpp
(one slot, one thread per engine: answers do not depend on how requests are spread), no
cache. Checks samples.jsonl byte for byte and prints users/s for 1 and 2 actors.

    RECLLM_HOME=/tmp/recllm-home-scale .venv/bin/python eval/bench/ray_actors.py [--users 100]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from recllm.evaluate.config import EvalConfig
from recllm.evaluate.runner import run_one


def config(out: Path, users: int, max_tokens: int = 48, **kw) -> EvalConfig:
    return EvalConfig(name="ray-bench", dataset="ml-100k", users=users, seed=0, max_history=10,
                      protocol="full", k=10, model="smollm2-135m-instruct", backend="llamacpp",
                      backend_options={"threads": 1, "batch_size": 1, "n_ctx": 1024},
                      max_tokens=max_tokens, cache=False, progress=False, batch_size=4,
                      baselines=["popularity"], ci_resamples=10, output=str(out), **kw).resolved()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--only", default="local,ray-1,ray-2", help="which of the three runs")
    ap.add_argument("--local", help="compare with this finished local run folder instead")
    args = ap.parse_args()
    import ray

    env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env})
    ray.data.DataContext.get_current().enable_progress_bars = False
    root = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    runs = {"local": {}, "ray-1": {"executor": "ray", "executor_options": {"actors": 1}},
            "ray-2": {"executor": "ray", "executor_options": {"actors": 2}}}
    figures = {}
    for name, kw in runs.items():
        if name not in args.only.split(","):
            continue
        t0 = time.perf_counter()
        res = run_one(config(root / name, args.users, args.max_tokens, **kw), root / name, log=lambda m: None)
        wall = time.perf_counter() - t0
        loop = res["timings"]["loop_seconds_this_session"]
        figures[name] = {"users_per_s": round(args.users / loop, 3), "loop_seconds": loop,
                         "wall_seconds": round(wall, 1), "load": os.getloadavg()}
        print(name, json.dumps(figures[name]), flush=True)
    local = (Path(args.local) if args.local else root / "local").joinpath("samples.jsonl").read_bytes()
    for name in [n for n in ("ray-1", "ray-2") if n in figures]:
        same = (root / name / "samples.jsonl").read_bytes() == local
        print(f"{name} samples.jsonl == local: {same}")
    print(json.dumps({"figures": figures, "folder": str(root)}))


if __name__ == "__main__":
    main()
