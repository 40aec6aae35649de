"""Load test of `recllm serve` on loopback: N concurrent clients for a fixed time, against 1 client.

    .venv/bin/python eval/bench/serve.py [--clients 64] [--seconds 30] [--batch-cost-ms 20]
        [--max-batch 32] [--window-ms 10] [--overfill-seconds 10] [--json]
    .venv/bin/python eval/bench/serve.py --backend transformers --model smollm2-135m-instruct \\
        --clients 4 --seconds 20 --batch-cost-ms 0 --overfill-seconds 0     # the real model (slow)

The server is a subprocess (this script with --server) on ML-100K. With the scripted backend
every answer is the same list of ML-100K titles, and --batch-cost-ms adds a fixed cost per
backend call (the shape of a GPU forward pass: one batch costs about what one request does),
so that what batching buys shows; 0 measures the HTTP + grounding overhead alone. Clients send
random 2-5 title histories of popular ML-100K movies. Phase 1: one client; phase 2: --clients
clients; each prints requests/s, p50/p95/p99 latency, mean backend batch size (from /metrics)
and errors (every non-200 is an error here). Phase 3 (--overfill-seconds > 0): a second server
with a queue of --overfill-queue, hammered by the same clients: 503s are expected (deliberate),
then one client for 3 s must get only 200s and the server must still be alive (recovery).
Bounded: about 2 x --seconds + --overfill-seconds + 3 s + start-ups; it never runs from the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

TITLES = ["Toy Story", "Fargo", "Star Wars", "Return of the Jedi", "Contact", "The English Patient",
          "Scream", "Liar Liar", "Air Force One", "Independence Day", "Pulp Fiction", "Twelve Monkeys",
          "The Godfather", "Raiders of the Lost Ark", "The Silence of the Lambs", "Titanic", "Jerry Maguire",
          "Rock, The", "Men in Black", "Braveheart"]
ANSWER = "\n".join(f"{n}. {t}" for n, t in enumerate(
    ["Heat (1995)", "Casablanca (1942)", "Alien (1979)", "Vertigo (1958)", "Twister (1996)", "Jaws (1975)",
     "Batman (1989)", "Babe (1995)", "Seven (1995)", "Clueless (1995)"], 1))


def serve(args) -> None:
    """The server side: ML-100K, the engine (scripted + a simulated cost per call), uvicorn."""
    import uvicorn

    from recllm.recommend import Recommender, RecommendSettings, load_catalog
    from recllm.serve import ServeOptions, create_app

    options = {"answers": {}, "default": ANSWER} if args.backend == "scripted" else {"threads": args.threads}
    settings = RecommendSettings(backend=args.backend, model=args.model, backend_options=options,
                                 cache=False, max_tokens=args.max_tokens)
    rec = Recommender(load_catalog("ml-100k"), settings)
    if args.batch_cost_ms > 0:
        rec.backend = Costly(rec.backend, args.batch_cost_ms / 1000)
        for llm in rec._llms.values():
            llm.backend = rec.backend
    app = create_app(rec, ServeOptions(max_batch=args.max_batch, batch_window_ms=args.window_ms,
                                       max_queue=args.max_queue, timeout_s=args.timeout))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


class Costly:
    """An engine that takes `seconds` per call, whatever the batch size (then answers)."""

    def __init__(self, inner, seconds: float):
        self.inner, self.seconds, self.name = inner, seconds, inner.name

    def generate(self, requests):
        time.sleep(self.seconds)
        return self.inner.generate(requests)

    def close(self):
        self.inner.close()


def start_server(args, max_queue: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, __file__, "--server", "--port", str(port), "--max-queue", str(max_queue),
           "--max-batch", str(args.max_batch), "--window-ms", str(args.window_ms), "--backend", args.backend,
           "--batch-cost-ms", str(args.batch_cost_ms), "--timeout", str(args.timeout),
           "--max-tokens", str(args.max_tokens), "--threads", str(args.threads)]
    if args.model:
        cmd += ["--model", args.model]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start within 300 s")


def batch_stats(url: str) -> tuple[float, float]:
    """(sum, count) of the server's batch-size histogram."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    total = count = 0.0
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "recllm_batch_size_sum":
                total = sample.value
            elif sample.name == "recllm_batch_size_count":
                count = sample.value
    return total, count


class Connection:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams. httpx was the bottleneck at 64
    concurrent connections (the client process at 80% CPU, the server at 20%, mean batch 2.5),
    so the load generator is kept this small; it only POSTs JSON and reads Content-Length bodies."""

    def __init__(self, host: str, port: int):
        self.host, self.port, self.reader, self.writer = host, port, None, None

    async def post(self, path: str, payload: dict) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        body = json.dumps(payload).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
        await self.reader.readexactly(length)
        if "connection: close" in head:
            self.close()
        return int(head[9:12])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def load(url: str, clients: int, seconds: float, k: int, pause_on_503: float = 0.0) -> dict:
    host, port = url.rsplit("//", 1)[1].split(":")
    latencies: list[float] = []
    codes: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    async def client(n: int) -> None:
        rng, conn = random.Random(n), Connection(host, int(port))
        while time.monotonic() < deadline:
            body = {"history": rng.sample(TITLES, rng.randint(2, 5)), "k": k}
            t0 = time.perf_counter()
            try:
                status = await conn.post("/v1/recommend", body)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                status = -1
                conn.close()
            codes[status] = codes.get(status, 0) + 1
            if status == 200:
                latencies.append(time.perf_counter() - t0)
            elif status == 503 and pause_on_503:
                await asyncio.sleep(pause_on_503)
        conn.close()

    started = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(clients)))
    wall = time.monotonic() - started
    return {"clients": clients, "seconds": round(wall, 2), "codes": codes, "ok": len(latencies),
            "throughput_rps": round(len(latencies) / wall, 1), **percentiles(latencies)}


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    import numpy as np

    p = np.percentile(np.array(values) * 1000, [50, 95, 99])
    return {"p50_ms": round(float(p[0]), 1), "p95_ms": round(float(p[1]), 1), "p99_ms": round(float(p[2]), 1)}


def phase(url: str, clients: int, seconds: float, k: int, **kw) -> dict:
    s0, c0 = batch_stats(url)
    out = asyncio.run(load(url, clients, seconds, k, **kw))
    s1, c1 = batch_stats(url)
    out["batches"] = int(c1 - c0)
    out["mean_batch"] = round((s1 - s0) / (c1 - c0), 2) if c1 > c0 else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--backend", default="scripted")
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=1, help="transformers: CPU threads")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--batch-cost-ms", type=float, default=20, help="simulated seconds per backend call (scripted)")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--window-ms", type=float, default=10)
    ap.add_argument("--max-queue", type=int, default=256)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--overfill-seconds", type=float, default=10)
    ap.add_argument("--overfill-queue", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.server:
        return serve(args)

    report: dict = {"config": {k: v for k, v in vars(args).items() if k not in ("server", "port", "json")},
                    "load_average_before": os.getloadavg()}
    proc, url = start_server(args, args.max_queue)
    try:
        report["one_client"] = phase(url, 1, args.seconds, args.k)
        report["many_clients"] = phase(url, args.clients, args.seconds, args.k)
    finally:
        proc.terminate()
        proc.wait(30)
    one, many = report["one_client"], report["many_clients"]
    report["throughput_ratio"] = round(many["throughput_rps"] / one["throughput_rps"], 2) if one["ok"] else None
    report["errors"] = sum(n for r in (one, many) for code, n in r["codes"].items() if code != 200)
    if args.overfill_seconds > 0:
        proc, url = start_server(args, args.overfill_queue)
        try:
            over = phase(url, args.clients, args.overfill_seconds, args.k, pause_on_503=0.005)
            over["deliberate_503"] = over["codes"].get(503, 0)
            over["other_errors"] = sum(n for code, n in over["codes"].items() if code not in (200, 503))
            after = phase(url, 1, 3, args.k)
            over["recovery"] = {"codes": after["codes"], "alive": proc.poll() is None,
                                "p50_ms": after["p50_ms"]}
            report["overfill"] = over
        finally:
            proc.terminate()
            proc.wait(30)
    report["load_average_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for name in ("one_client", "many_clients", "overfill"):
        r = report.get(name)
        if r:
            print(f"{name:>12}: {r['clients']:>3} clients {r['seconds']:>6.1f} s  {r['throughput_rps']:>7.1f} req/s  "
                  f"p50 {r['p50_ms']} ms  p95 {r['p95_ms']} ms  p99 {r['p99_ms']} ms  mean batch {r['mean_batch']}  "
                  f"codes {r['codes']}")
    print(f"throughput {args.clients} vs 1 client: x{report['throughput_ratio']}; errors (not deliberate): "
          f"{report['errors']}")
    if "overfill" in report:
        o = report["overfill"]
        print(f"overfill: {o['deliberate_503']} deliberate 503s, {o['other_errors']} other errors; recovery "
              f"{o['recovery']['codes']}, server alive: {o['recovery']['alive']}")
    print(f"load average before {report['load_average_before']}, after {report['load_average_after']}")


if __name__ == "__main__":
    main()
