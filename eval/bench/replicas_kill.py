"""Two `transformers serve` replicas behind the openai backend, one SIGKILLed mid-run: the run
completes on the other, no user lost. Then the batch-file round trip through the live server:
--export-requests -> answer the file over HTTP -> --import-answers gives the direct run's
metrics and samples. The served model is a tiny random Llama (tests/tiny_llm.py): this checks
the plumbing, not recommendations.

    RECLLM_HOME=/tmp/recllm-home-scale .venv/bin/python eval/bench/replicas_kill.py [--users 40]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from tiny_llm import build_tiny_model  # noqa: E402

from recllm.backends import get_backend  # noqa: E402
from recllm.evaluate import batchfiles  # noqa: E402
from recllm.evaluate.config import EvalConfig  # noqa: E402
from recllm.evaluate.runner import run_one  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(folder: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cli = Path(sys.executable).parent / "transformers"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([str(cli), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu", "--log-level", "warning"], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}/v1"


def wait_healthy(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"transformers serve exited with {proc.returncode}")
        try:
            if httpx.get(url.removesuffix("/v1") + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("transformers serve not healthy after 180 s")


def config(folder: Path, urls: list[str], users: int, **kw) -> EvalConfig:
    return EvalConfig(dataset="ml-100k", users=users, seed=0, max_history=5, protocol="full",
                      model=str(folder), backend="openai", max_tokens=8, cache=False,
                      progress=False, batch_size=4, baselines=["popularity"], ci_resamples=10,
                      backend_options={"base_url": urls if len(urls) > 1 else urls[0],
                                       "concurrency": 2, "max_retries": 2, "backoff": 0.2,
                                       "timeout": 60, "replica_backoff": 2.0}, **kw).resolved()


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=40)
    ap.add_argument("--kill-after", type=int, default=8, help="users written before the kill")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="replicas-"))
    folder = build_tiny_model(root / "tiny", max_positions=2048)
    (a, url_a), (b, url_b) = serve(folder, root / "a.log"), serve(folder, root / "b.log")
    try:
        wait_healthy(a, url_a)
        wait_healthy(b, url_b)
        run = root / "kill"
        killed: dict[str, float] = {}

        def killer() -> None:  # SIGKILL replica b once `kill_after` users are written
            samples = run / "samples.jsonl"
            while not (samples.exists() and len(samples.read_text().splitlines()) >= args.kill_after):
                time.sleep(0.05)
            os.killpg(b.pid, signal.SIGKILL)
            killed["at_users"] = len(samples.read_text().splitlines())

        threading.Thread(target=killer, daemon=True).start()
        t0 = time.perf_counter()
        run_one(config(folder, [url_a, url_b], args.users), run, log=lambda m: None)
        samples = read(run / "samples.jsonl")
        errors = [s["user"] for s in samples if s["systems"][str(folder)]["error"]]
        replicas = [e["replicas"] for e in read(run / "events.jsonl") if "replicas" in e]
        print(json.dumps({"users": len(samples), "distinct": len({s["user"] for s in samples}),
                          "errors": errors, "killed_after_users": killed.get("at_users"),
                          "seconds": round(time.perf_counter() - t0, 1), "replicas": replicas}))

        # batch files through the live replica: export -> answer over HTTP -> import
        req, ans, via = root / "requests.jsonl", root / "answers.jsonl", root / "via-batch"
        cfg = config(folder, [url_a], args.users)
        run_one(config(folder, [url_a], args.users, export_requests=str(req)), via, log=lambda m: None)
        engine = get_backend("openai", model=str(folder), base_url=url_a, concurrency=2, timeout=60)
        batchfiles.answer_file(req, ans, engine)
        run_one(config(folder, [url_a], args.users, import_answers=str(ans)), via, log=lambda m: None)
        direct = root / "direct"
        run_one(cfg, direct, log=lambda m: None)
        same_samples = (via / "samples.jsonl").read_bytes() == (direct / "samples.jsonl").read_bytes()
        m = [json.loads((d / "results.json").read_text())["systems"] for d in (via, direct)]
        print(json.dumps({"requests": len(req.read_text().splitlines()),
                          "metrics_equal": m[0] == m[1], "samples_equal": same_samples,
                          "samples_equal_kill_run": (via / "samples.jsonl").read_bytes()
                          == (run / "samples.jsonl").read_bytes(), "folder": str(root)}))
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)


if __name__ == "__main__":
    main()
