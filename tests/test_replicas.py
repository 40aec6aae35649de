"""The openai backend over several base_urls: spread by least outstanding requests, a dead or
failing replica taken out for a back-off and tried again later, per-replica counts."""

from __future__ import annotations

import json
import socket
import time

import pytest

from recllm.backends import GenerationRequest, SamplingParams, get_backend
from recllm.evaluate.config import EvalConfig
from recllm.evaluate.runner import run_one
from test_backend_openai import FakeServer


@pytest.fixture
def two():
    a, b = FakeServer(), FakeServer()
    yield a, b
    a.close()
    b.close()


def dead_url() -> str:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def chat(i):
    return GenerationRequest(messages=({"role": "user", "content": f"q{i}"},),
                             params=SamplingParams(max_tokens=4))


def make(urls, **kw):
    opts = {"model": "m", "base_url": urls, "backoff": 0.0, "max_retries": 1, "timeout": 5.0} | kw
    return get_backend("openai", **opts)


def test_one_dead_replica_the_others_answer_everything(two):
    a, _ = two
    backend = make([dead_url(), a.url], concurrency=2, replica_backoff=30)
    results = backend.generate([chat(i) for i in range(12)])
    assert all(r.error is None for r in results)
    assert [r.text for r in results] == [f"echo q{i} STOP tail" for i in range(12)]
    dead, live = backend.replica_counts()
    assert live["requests"] == 12 and dead["failed"] == dead["requests"] >= 1
    assert dead["requests"] <= 2  # taken out after its first failures, not tried per request


def test_least_outstanding_picks_the_idlest_in_service_replica():
    from recllm.backends.openai_http import Replicas

    pool = Replicas(3, backoff=10, max_backoff=60)
    picks = []
    for _ in range(6):  # nothing finishes: in-flight counts level out, 2-2-2
        picks.append(pool.pick())
        pool.start(picks[-1])
    assert sorted(picks) == [0, 0, 1, 1, 2, 2]
    pool.done(1, ok=True)
    pool.done(1, ok=True)
    assert pool.pick() == 1  # now the one with nothing in flight
    pool.start(1)
    pool.start(1)
    pool.done(0, ok=False)   # a failure takes 0 out, though it now has the fewest in flight
    assert pool.inflight == [1, 2, 2] and pool.pick() == 2 and pool.counts[0]["taken_out"] == 1
    pool.done(0, ok=True)    # a success (of a request sent before) puts it back
    assert pool.pick() == 0


def test_a_failed_replica_sits_out_then_is_tried_again(two):
    a, b = two
    a.actions = ["503"]
    backend = make([a.url, b.url], concurrency=1, replica_backoff=0.3)
    first = backend.generate([chat(0), chat(1)])
    assert all(r.error is None for r in first)
    assert backend.replica_counts()[0] == {"base_url": a.url, "requests": 1, "failed": 1, "taken_out": 1}
    time.sleep(0.35)
    backend.generate([chat(2), chat(3)])
    assert backend.replica_counts()[0]["requests"] >= 2  # back in service after the back-off


def test_all_dead_is_each_request_s_error(two):
    backend = make([dead_url(), dead_url()], replica_backoff=0.01)
    [result] = backend.generate([chat(0)])
    assert "cannot connect" in result.error and "gave up after 3 attempts" in result.error


def test_identity_lists_replicas_single_url_unchanged(two):
    a, b = two
    assert make(a.url).identity()["base_url"] == a.url
    assert make([a.url, b.url]).identity()["base_url"] == [a.url, b.url]
    assert make(a.url).replica_counts() is None


def test_eval_run_completes_on_the_live_replica_and_logs_counts(two, tmp_path, tiny_dataset):
    a, _ = two
    cfg = EvalConfig(dataset="tiny", model="m", backend="openai", users=None, progress=False,
                     ci_resamples=10, baselines=["popularity"], cache=False, batch_size=2,
                     backend_options={"base_url": [dead_url(), a.url], "backoff": 0.0,
                                      "max_retries": 1}).resolved()
    run_one(cfg, tmp_path / "run", dataset=tiny_dataset, log=lambda m: None)
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert sorted(s["user"] for s in samples) == ["u1", "u2", "u3", "u4"]
    assert all(s["systems"]["m"]["error"] is None for s in samples)
    events = [json.loads(x) for x in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    [replicas] = [e["replicas"] for e in events if "replicas" in e]
    assert replicas[1]["requests"] == 4 and replicas[0]["failed"] >= 1
