"""Peak memory of loading a big generic CSV table, as a multiple of the file's size.

    .venv/bin/python eval/bench/load_memory.py                  # 5M rows (~100 MB)
    .venv/bin/python eval/bench/load_memory.py --rows 1000000

Writes `user_id,item_id,timestamp,rating` rows (80k users, 20k items) once to --file, then
loads it with `load_dataset(path, cache=False)` in a fresh Python process and reports that
process's peak RSS (ru_maxrss of the child) next to the file size, and the load time. The
child's baseline (imports only) is measured the same way and reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHILD = """
import sys, time
import recllm.data
started = time.perf_counter()
if sys.argv[1] != "-":
    ds = recllm.data.load_dataset(sys.argv[1], cache=False, log=lambda m: None)
    assert len(ds.interactions) > 0
print(round(time.perf_counter() - started, 2))
"""


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    with path.open("w") as f:
        f.write("user_id,item_id,timestamp,rating\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            users = rng.integers(1, 80_000, n)
            items = rng.integers(1, 20_000, n)
            times = rng.integers(900_000_000, 1_700_000_000, n)
            ratings = rng.integers(1, 11, n) / 2
            f.write("\n".join(f"{u},{i},{t},{r:g}" for u, i, t, r in zip(users, items, times, ratings)))
            f.write("\n")


def peak_rss(arg: str) -> tuple[float, float]:
    """(peak RSS in bytes, seconds) of a child process that loads `arg` ('-': imports only)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True,
                         env={**os.environ, "RECLLM_HOME": os.environ.get("RECLLM_HOME", "/tmp/recllm-bench")})
    if out.returncode:
        sys.exit(out.stderr)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all waited-for children: run the big one last.
    return max(before, after) * 1024, float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--file", default="/tmp/recllm-bench-ratings.csv")
    args = parser.parse_args()
    path = Path(args.file)
    if not path.exists() or path.stat().st_size == 0:
        started = time.perf_counter()
        write_csv(path, args.rows)
        print(f"wrote {path} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    size = path.stat().st_size
    base, _ = peak_rss("-")
    peak, seconds = peak_rss(str(path))
    print(json.dumps({"file_mb": round(size / 1e6, 1), "baseline_rss_mb": round(base / 1e6),
                      "peak_rss_mb": round(peak / 1e6), "peak_over_file": round(peak / size, 2),
                      "added_over_file": round((peak - base) / size, 2), "load_s": seconds,
                      "load_avg": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
