"""SIGKILL (and one Ctrl-C) at random points, then --resume: the same results as a run
never interrupted."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# A child process that evaluates a synthetic 400-user dataset with the scripted backend.
CHILD = r'''
import sys, json
import numpy as np, pandas as pd
from recllm.data.schema import Catalog, RecDataset
from recllm.evaluate import EvalConfig, run_eval

rng = np.random.default_rng(7)
n_users, n_items = 250, 60
titles = {str(i): f"Movie Number {i} ({1950 + i})" for i in range(n_items)}
rows = []
for u in range(n_users):
    items = rng.choice(n_items, size=int(rng.integers(4, 12)), replace=False)
    rows += [(f"u{u}", str(i), t, 4.0) for t, i in enumerate(items)]
inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
inter["timestamp"] = inter["timestamp"].astype("int64")
table = pd.DataFrame({"item_id": list(titles), "title": [t[:-7] for t in titles.values()],
                      "raw_title": list(titles.values()),
                      "year": [1950 + i for i in range(n_items)], "genres": [None] * n_items,
                      "description": [None] * n_items, "domain": ["movie"] * n_items}).set_index("item_id")
ds = RecDataset("synthetic", inter, Catalog(table), domain="movie", domain_plural="movies")
answers = {f"u{u}": "\n".join(f"{j + 1}. Movie Number {int(i)}"
                              for j, i in enumerate(rng.choice(n_items, 10, replace=False)))
           for u in range(n_users)}
cfg = EvalConfig(dataset="synthetic", model="scripted", backend="scripted",
                 backend_options={"answers": answers}, users=200, protocol=sys.argv[2],
                 negatives=9, output=sys.argv[1], progress=False, batch_size=3, ci_resamples=100)
run_eval(cfg, resume=sys.argv[3] == "resume", dataset=ds, log=lambda m: None)
'''


def _run(script: Path, out: Path, protocol: str, resume: bool) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(out), protocol,
                             "resume" if resume else "fresh"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _results(run: Path) -> dict:
    res = json.loads((run / "results.json").read_text())
    return {k: res[k] for k in ("systems", "position_bias", "users", "config_hash") if k in res}


@pytest.mark.parametrize("protocol", ["full", "candidates"])
def test_sigkill_anywhere_then_resume_matches_uninterrupted(tmp_path, protocol):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    ref = tmp_path / "ref"
    p = _run(script, ref, protocol, resume=False)
    assert p.wait(timeout=120) == 0, p.stderr.read().decode()

    out = tmp_path / "killed"
    rng = random.Random(protocol)
    kills = mid_run = 0
    for attempt in range(10):
        p = _run(script, out, protocol, resume=attempt > 0)
        samples = out / "samples.jsonl"
        start_lines = samples.read_bytes().count(b"\n") if samples.exists() else 0
        # kill either after a random delay, or once some more users were written
        if attempt % 2 == 0:
            time.sleep(rng.uniform(0.05, 1.5))
        else:
            deadline = time.time() + 30
            want = start_lines + rng.randint(1, 40)
            while time.time() < deadline and p.poll() is None:
                if samples.exists() and samples.read_bytes().count(b"\n") >= want:
                    break
                time.sleep(0.002)
        if p.poll() is None:
            # mostly SIGKILL (no cleanup at all); once Ctrl-C, which must leave it resumable too
            os.kill(p.pid, signal.SIGINT if attempt == 1 else signal.SIGKILL)
            kills += 1
            done = samples.read_bytes().count(b"\n") if samples.exists() else 0
            mid_run += 0 < done < 200 and done > start_lines
        p.wait(timeout=60)
        if (out / "results.json").exists():
            break
    if not (out / "results.json").exists():
        p = _run(script, out, protocol, resume=True)
        assert p.wait(timeout=120) == 0, p.stderr.read().decode()
    assert kills >= 2 and mid_run >= 1, (kills, mid_run)
    assert _results(out) == _results(ref)
    # no user lost or done twice, and the very same samples as the uninterrupted run
    ref_lines = sorted((ref / "samples.jsonl").read_text().splitlines())
    assert sorted((out / "samples.jsonl").read_text().splitlines()) == ref_lines
