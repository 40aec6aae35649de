"""recllm tune on the tiny random model: examples without leakage, bad input, determinism,
resume after SIGKILL, a full disk, and loading the adapter (transformers; vllm with a fake)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("peft")

from recllm.data import leave_one_out  # noqa: E402
from recllm.data.schema import RecDataset  # noqa: E402
from recllm.errors import RecllmError  # noqa: E402
from recllm.tune.examples import ExampleOptions, build  # noqa: E402

from conftest import make_catalog  # noqa: E402
from tiny_llm import CHAT_TEMPLATE, build_bpe_model, build_tiny_model  # noqa: E402

HERE = Path(__file__).parent
MOVIES = {str(i): (f"Movie {i} ({1960 + i})", ["Drama"]) for i in range(1, 41)}


def synthetic(users: int = 30, per_user: int = 9, seed: int = 0) -> RecDataset:
    import random

    rng = random.Random(seed)
    rows = []
    for u in range(users):
        for t, item in enumerate(rng.sample(list(MOVIES), per_user)):
            rows.append((f"u{u}", item, t + 1, 4.0))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    inter["timestamp"] = inter["timestamp"].astype("int64")
    inter = inter.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    return RecDataset("synthetic", inter, make_catalog(MOVIES), domain="movie", domain_plural="movies")


@pytest.fixture(scope="module")
def bpe_model(tmp_path_factory) -> Path:
    corpus = [t for t, _ in MOVIES.values()] * 5 + [
        "You are a movie recommender. I have watched these movies, oldest first: Recommend 10 different"
        " movies that I have not watched yet. Give one movie per line, numbered 1 to 10."] * 5
    return build_bpe_model(tmp_path_factory.mktemp("bpe") / "m", corpus, vocab_size=300, max_positions=1024)


def config(model: Path, alias: str = "tiny-tuned", **over):
    from recllm.tune.train import TuneConfig

    base = dict(alias=alias, model=str(model), dataset="synthetic", examples=48, valid_users=4, max_history=4,
                rank_ratio=0.25, negatives=3, batch_size=4, eval_steps=4, max_steps=8, early_stopping=0,
                save_total_limit=3, threads=1, learning_rate=5e-3)
    return TuneConfig(**{**base, **over})


def run(cfg, **kw):
    from recllm.tune.train import train

    return train(cfg, dataset=synthetic(), progress=False, log=lambda m: None, **kw)


# -- examples ----------------------------------------------------------------------------------

def test_examples_never_show_a_validation_or_test_target():
    ds = synthetic()
    opts = ExampleOptions(examples=150, valid_users=4, rank_ratio=0.5, negatives=5, max_history=4)
    train, valid, _ = build(ds, opts, cache=False)
    split = leave_one_out(ds)
    hidden = {c.user_id: {c.target} for c in split.test}
    for c in split.valid:
        hidden[c.user_id].add(c.target)
    assert {r["kind"] for r in train} == {"generate", "rank"}
    for row in list(train) + list(valid):
        assert not hidden[row["user_id"]] & set(row["items"]), row
        titles = {MOVIES[i][0] for i in hidden[row["user_id"]]}
        assert not any(t in (row["messages"] or "") + row["answer"] for t in titles)
    assert not {r["user_id"] for r in train} & {r["user_id"] for r in valid}  # held-out users


def test_answers_are_what_score_mode_scores():
    train, _, _ = build(synthetic(), ExampleOptions(examples=20, valid_users=4), cache=False)
    for row in train:
        title = next(t for i, (t, _) in MOVIES.items() if i == row["target"])
        assert row["answer"] == f"1. {title}\n"


def test_ranking_answer_puts_the_true_next_item_first():
    train, _, _ = build(synthetic(), ExampleOptions(examples=20, valid_users=4, rank_ratio=1.0, negatives=3),
                        cache=False)
    for row in train:
        lines = row["answer"].splitlines()
        assert len(lines) == 4 and lines[0] == f"1. {MOVIES[row['target']][0]}"


def test_examples_are_cached_by_fingerprint(recllm_home):
    opts = ExampleOptions(examples=20, valid_users=4)
    _, _, fp = build(synthetic(), opts)
    assert (recllm_home / "tune-examples" / fp / "done").exists()
    again, _, fp2 = build(synthetic(), opts)
    assert fp2 == fp and len(again) == 20
    assert build(synthetic(), opts.model_copy(update={"seed": 1}))[2] != fp


def test_more_examples_than_exist_is_refused():
    with pytest.raises(RecllmError, match=r"asks for 100000 examples.*only \d+"):
        build(synthetic(), ExampleOptions(examples=100_000, valid_users=4), cache=False)


def test_tiny_source_dataset_is_refused():
    from recllm.data import load_dataset

    with pytest.raises(RecllmError, match="tuning needs at least"):
        build(load_dataset(str(HERE / "data" / "ml-100k")), ExampleOptions(examples=5), cache=False)


# -- training ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference(bpe_model, tmp_path_factory):
    """One uninterrupted run (its own RECLLM_HOME), reused by the tests below."""
    home = tmp_path_factory.mktemp("ref-home")
    old = os.environ.get("RECLLM_HOME")
    os.environ["RECLLM_HOME"] = str(home)
    try:
        record = run(config(bpe_model))
    finally:
        os.environ["RECLLM_HOME"] = old or ""
    return home, record


def test_training_writes_adapter_card_and_alias(reference, monkeypatch):
    home, record = reference
    folder = home / "models" / "tiny-tuned"
    assert (folder / "adapter" / "adapter_config.json").exists()
    assert (folder / "loss.png").stat().st_size > 1000
    assert "validation loss" in (folder / "README.md").read_text()
    assert record["steps"] == 8 and [v["step"] for v in record["validation"]] == [4, 8]
    assert record["base"]["revision"] and record["data"]["examples"] == 48
    monkeypatch.setenv("RECLLM_HOME", str(home))
    from recllm.models import list_models, resolve

    assert any(r["alias"] == "tiny-tuned" and r["kind"] == "tuned (LoRA)" for r in list_models())
    resolved = resolve("tiny-tuned")
    assert resolved.adapter == str(folder / "adapter") and resolved.source == "tuned"


def test_same_seed_gives_the_same_adapter(reference, bpe_model):
    home, record = reference
    again = run(config(bpe_model))
    first = (home / "models" / "tiny-tuned" / "adapter" / "adapter_model.safetensors").read_bytes()
    from recllm.models import model_dir

    assert (model_dir("tiny-tuned") / "adapter" / "adapter_model.safetensors").read_bytes() == first
    assert again["final_eval_loss"] == record["final_eval_loss"]


def test_existing_output_is_not_overwritten(bpe_model):
    run(config(bpe_model, max_steps=4))
    with pytest.raises(RecllmError, match="already holds"):
        run(config(bpe_model, max_steps=4))


KILLER = """
import os, signal, sys
sys.path[:0] = [{tests!r}]
from transformers import TrainerCallback
import test_tune

class Kill(TrainerCallback):
    def on_save(self, args, state, control, **kw):
        if state.global_step == 4:
            os.kill(os.getpid(), signal.SIGKILL)

test_tune.run(test_tune.config(__import__("pathlib").Path({model!r})), callbacks=[Kill()])
"""


def test_resume_after_sigkill_ends_with_the_same_loss(reference, bpe_model, recllm_home):
    _, record = reference
    script = KILLER.format(tests=str(HERE), model=str(bpe_model))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "RECLLM_HOME": str(recllm_home)}, timeout=300)
    assert done.returncode == -9, done.stderr[-2000:]
    ckpts = recllm_home / "models" / "tiny-tuned" / "checkpoints"
    assert (ckpts / "checkpoint-4" / "trainer_state.json").exists()
    resumed = run(config(bpe_model), resume=True)
    assert resumed["resumed_from"] == "checkpoint-4" and resumed["steps"] == 8
    assert resumed["final_eval_loss"] == pytest.approx(record["final_eval_loss"], abs=1e-5)
    assert resumed["final_train_loss"] == pytest.approx(record["final_train_loss"], abs=1e-5)


def test_full_disk_keeps_the_last_good_checkpoint(bpe_model, recllm_home, monkeypatch):
    import errno

    from transformers import Trainer

    real = Trainer._save_rng_state

    def flaky(self, output_dir):
        if self.state.global_step == 8:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", flaky)
    with pytest.raises(RecllmError, match="last good checkpoint checkpoint-4 is kept") as info:
        run(config(bpe_model))
    assert "No space left" in str(info.value) and "--resume" in str(info.value)
    ckpts = recllm_home / "models" / "tiny-tuned" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-4"]
    assert (ckpts / "checkpoint-4" / "trainer_state.json").exists()


def test_base_model_without_chat_template_is_refused(tmp_path):
    model = build_tiny_model(tmp_path / "base", chat_template=None)
    with pytest.raises(RecllmError, match="no chat template.*chat messages"):
        run(config(model))


# -- loading -----------------------------------------------------------------------------------

def test_transformers_backend_loads_base_plus_adapter(reference, monkeypatch):
    from recllm.backends import ScoreRequest, get_backend

    home, _ = reference
    monkeypatch.setenv("RECLLM_HOME", str(home))
    req = ScoreRequest(messages=({"role": "user", "content": "Movie 1 (1961)"},),
                       continuations=("1. Movie 2 (1962)\n", "1. Movie 3 (1963)\n"))
    card = json.loads((home / "models" / "tiny-tuned" / "recllm-tune.json").read_text())
    tuned = get_backend("transformers", model="tiny-tuned", threads=1)
    base = get_backend("transformers", model=card["base"]["path"], threads=1)
    assert tuned.identity()["revision"] != base.identity()["revision"]
    a, b = tuned.score([req])[0], base.score([req])[0]
    assert not a.error and not b.error and a.logprobs != b.logprobs  # the adapter changed the model


def test_adapter_over_another_base_is_refused(reference, tmp_path, monkeypatch):
    from recllm.backends import get_backend

    home, _ = reference
    monkeypatch.setenv("RECLLM_HOME", str(home))
    other = build_tiny_model(tmp_path / "other", chat_template=CHAT_TEMPLATE, seed=3)
    with pytest.raises(RecllmError, match=r"made on base model .*bpe.*not on .*other"):
        get_backend("transformers", model=str(other), adapter=str(home / "models" / "tiny-tuned"))


def test_vllm_backend_passes_the_adapter_as_a_lora_request(reference, monkeypatch):
    from recllm.backends import GenerationRequest, get_backend

    home, _ = reference
    monkeypatch.setenv("RECLLM_HOME", str(home))
    calls = {}

    class LoRARequest:
        def __init__(self, name, int_id, path):
            self.args = (name, int_id, path)

    class LLM:
        def __init__(self, **kwargs):
            calls["llm"] = kwargs

        def chat(self, messages, sampling_params=None, use_tqdm=True, lora_request=None):
            calls["lora"] = lora_request
            out = types.SimpleNamespace(text="1. x", token_ids=[1], finish_reason="stop")
            return [types.SimpleNamespace(outputs=[out], prompt_token_ids=[0]) for _ in messages]

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, lambda **kw: kw
    lora, request = types.ModuleType("vllm.lora"), types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    for name, mod in {"vllm": vllm, "vllm.lora": lora, "vllm.lora.request": request}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    backend = get_backend("vllm", model="tiny-tuned")
    backend.generate([GenerationRequest(messages=({"role": "user", "content": "hi"},))])
    assert calls["llm"]["enable_lora"] is True and calls["llm"]["max_lora_rank"] == 8
    assert calls["lora"].args == ("tiny-tuned", 1, str(home / "models" / "tiny-tuned" / "adapter"))


def test_merge_writes_weights_that_load_alone(bpe_model, recllm_home):
    run(config(bpe_model, max_steps=4), merge=True)
    merged = recllm_home / "models" / "tiny-tuned" / "merged"
    from recllm.models import check_folder

    check_folder(merged)
    assert json.loads((recllm_home / "models" / "tiny-tuned" / "recllm-tune.json").read_text())["merged"] == "merged"


def test_tune_cli_rejects_unknown_keys(tmp_path):
    from recllm.cli import main

    cfg = tmp_path / "t.yaml"
    cfg.write_text(textwrap.dedent("""\
        alias: x
        exampels: 10
    """))
    assert main(["tune", "--config", str(cfg)]) == 2


def test_time_budget_stops_with_a_checkpoint_and_counts_across_resume(bpe_model, recllm_home):
    record = run(config(bpe_model, max_minutes=1e-6))
    assert record["stopped_by_time"] and record["steps"] == 1 and record["training_seconds"] > 0
    state = json.loads((recllm_home / "models" / "tiny-tuned" / "checkpoints" / "checkpoint-1"
                        / "trainer_state.json").read_text())
    assert state["stateful_callbacks"]["TimeBudget"]["attributes"]["spent"] > 0
    again = run(config(bpe_model, max_minutes=1e-6), resume=True)  # the budget is already spent
    assert again["steps"] == 2 and again["training_seconds"] > record["training_seconds"]


def test_resume_with_a_time_budget_from_a_checkpoint_made_without_one(bpe_model):
    # Regression: the Trainer's checkpoint save raised KeyError 'TimeBudget' (no saved state for it).
    run(config(bpe_model, max_steps=4))
    record = run(config(bpe_model, max_steps=8, max_minutes=60), resume=True)
    assert record["resumed_from"] == "checkpoint-4" and record["steps"] == 8 and not record["stopped_by_time"]


def test_k_sets_how_many_items_the_prompt_asks_for():
    train, _, _ = build(synthetic(), ExampleOptions(examples=4, valid_users=4, k=20), cache=False)
    assert all("numbered list of 20 different movies" in r["messages"] for r in train)
