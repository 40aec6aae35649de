"""`executor: ray`: the same samples.jsonl as a local run, a lost actor's block retried, and a
clear error without Ray. A local Ray with 2 CPUs; skipped where ray is not importable."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from recllm.errors import RecllmError
from recllm.evaluate.config import EvalConfig
from recllm.evaluate.runner import run_one

ANSWERS = {"u1": "1. Fargo (1996)\n2. Heat (1995)", "u2": "1. Toy Story (1995)\n2. Star Wars (1977)",
           "u3": "1. Jumanji (1995)", "u4": "1. Heat (1986)\n2. Godfather, The (1972)",
           "u1#ask1": "1. Heat (1995)"}


def config(**kw) -> EvalConfig:
    base = dict(dataset="tiny", model="scripted-test", backend="scripted", users=None,
                backend_options={"answers": ANSWERS}, ci_resamples=10, progress=False,
                batch_size=1, baselines=["popularity"])
    return EvalConfig(**(base | kw)).resolved()


def test_without_ray_the_error_names_the_extra(tmp_path, tiny_dataset, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(RecllmError, match=r"recllm\[ray\]"):
        run_one(config(executor="ray"), tmp_path / "r", dataset=tiny_dataset, log=lambda m: None)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    here = str(Path(__file__).parent)
    path = os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def samples(run: Path) -> bytes:
    return (run / "samples.jsonl").read_bytes()


def test_ray_run_equals_local_run_and_survives_a_lost_actor(tmp_path, tiny_dataset, local_ray):
    kw = dict(protocol="candidates", negatives=3, reasks=1)
    run_one(config(**kw), tmp_path / "local", dataset=tiny_dataset, log=lambda m: None)
    crash = tmp_path / "crashed"
    opts = {"actors": 2, "engine": "ray_engines:CrashOnce",
            "engine_options": {"crash_file": str(crash), "crash_key": "u3"}}
    run_one(config(executor="ray", executor_options=opts, **kw),
            tmp_path / "ray", dataset=tiny_dataset, log=lambda m: None)
    assert crash.exists()  # an actor did die mid-run
    assert samples(tmp_path / "ray") == samples(tmp_path / "local")
    users = [json.loads(x)["user"] for x in samples(tmp_path / "ray").decode().splitlines()]
    assert sorted(users) == ["u1", "u2", "u3", "u4"]  # none lost, none twice
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("local", "ray"))
    assert a["systems"] == b["systems"]
    events = [json.loads(x) for x in (tmp_path / "ray" / "events.jsonl").read_text().splitlines()]
    assert sum(e.get("users", 0) for e in events) == 4 and b["timings"]["requests"] == 8
    assert b["timings"]["generate_seconds_all_sessions"] > 0


def test_an_engine_that_cannot_start_is_one_error_not_a_hang(tmp_path, tiny_dataset, local_ray):
    opts = {"actors": 1, "engine": "ray_engines:CrashOnce"}  # no crash_file: its options refuse
    with pytest.raises(RecllmError, match="Ray could not answer") as exc:
        run_one(config(executor="ray", executor_options=opts), tmp_path / "r",
                dataset=tiny_dataset, log=lambda m: None)
    assert "crash_file" in str(exc.value) and "\n" not in exc.value.message
