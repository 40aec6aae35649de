"""Datasets without timestamps in `recllm eval`: a seeded synthetic order, said so in prompts
and results, and `order: time` refused."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from recllm.errors import RecllmError
from recllm.evaluate import EvalConfig, run_eval
from recllm.evaluate.rundir import read_records


def untimed(dataset):
    return replace(dataset, meta={**dataset.meta, "timestamps": False})


def config(tmp_path, **kw) -> EvalConfig:
    base = dict(dataset="tiny", model="scripted-test", backend="scripted",
                backend_options={"answers": {}}, users=None, max_history=None,
                output=str(tmp_path / "run"), progress=False, ks=[1, 5], ci_resamples=20)
    return EvalConfig(**{**base, **kw})


def prompt_text(run) -> str:
    sample = read_records(run / "samples.jsonl")[0]
    return "\n".join(m["content"] for m in sample["systems"]["scripted-test"]["prompt"])


def test_no_timestamps_means_a_synthetic_order_said_everywhere(tmp_path, tiny_dataset):
    [timed] = run_eval(config(tmp_path, output=str(tmp_path / "timed")), dataset=tiny_dataset,
                       log=lambda m: None)
    assert "oldest first" in prompt_text(timed)
    [run] = run_eval(config(tmp_path), dataset=untimed(tiny_dataset), log=lambda m: None)
    assert "oldest first" not in prompt_text(run)
    results = json.loads((run / "results.json").read_text())
    assert results["users"]["split"]["synthetic"] is True
    assert "synthetic order" in results["protocol"]["split"]
    assert results["dataset"]["timestamps"] is False
    # the order is the order_seed's, not the run seed's: another seed keeps the targets
    [other] = run_eval(config(tmp_path, seed=5, output=str(tmp_path / "seed5")),
                       dataset=untimed(tiny_dataset), log=lambda m: None)
    targets = lambda r: sorted((s["user"], s["target"]) for s in read_records(r / "samples.jsonl"))  # noqa: E731
    assert targets(other) == targets(run)


def test_order_time_without_timestamps_is_refused(tmp_path, tiny_dataset):
    with pytest.raises(RecllmError, match="timestamp"):
        run_eval(config(tmp_path, order="time"), dataset=untimed(tiny_dataset), log=lambda m: None)


def test_order_random_on_a_timed_dataset(tmp_path, tiny_dataset):
    [run] = run_eval(config(tmp_path, order="random", order_seed=3), dataset=tiny_dataset,
                     log=lambda m: None)
    results = json.loads((run / "results.json").read_text())
    assert results["users"]["split"]["order"] == "random" and "oldest first" not in prompt_text(run)
