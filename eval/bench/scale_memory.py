"""Matcher memory against catalog size, for the internet-scale plan (docs/scale.md): a fresh
process per size builds TitleMatcher over N synthetic titles (eval/bench/matching.py's
generator) and reports the resident memory it added and its build time, so 10M can be
extrapolated from a measured line, not guessed.

    .venv/bin/python eval/bench/scale_memory.py 100000 300000 1000000
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from pathlib import Path


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one(n: int) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from matching import synth_catalog

    from recllm.grounding import TitleMatcher

    titles, years = synth_catalog(n, seed=0)
    catalog = {str(i): f"{t} ({y})" for i, (t, y) in enumerate(zip(titles, years))}
    del titles, years
    gc.collect()
    before = current_rss_mb()
    t0 = time.perf_counter()
    matcher = TitleMatcher(catalog, cache_size=0)
    build = time.perf_counter() - t0
    gc.collect()
    after = current_rss_mb()
    matcher.match(["Return of the Heat (1995)"])  # it works, and is kept alive until here
    return {"titles": n, "build_seconds": round(build, 1), "matcher_mb": round(after - before),
            "rss_before_mb": round(before), "rss_after_mb": round(after)}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(one(int(sys.argv[2]))))
    else:
        for n in sys.argv[1:] or ["100000", "300000", "1000000"]:
            out = subprocess.run([sys.executable, __file__, "--one", n], capture_output=True, text=True)
            print(out.stdout.strip() or out.stderr[-500:], flush=True)
