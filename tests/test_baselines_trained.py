"""Trained baselines (bpr, ease, sasrec): they learn the structure of tiny data, never see the
held-out targets, refuse bad options and too little data by name, and are cached once fitted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recllm.baselines import get_baseline, training_data
from recllm.data.schema import RecDataset, UserCase
from recllm.errors import RecllmError
from tests.conftest import make_catalog, make_dataset

FAST = {"bpr": {"factors": 8, "iterations": 30, "learning_rate": 0.05},
        "ease": {"l2": 1.0},
        "sasrec": {"epochs": 3, "hidden": 16, "max_len": 8, "batch_size": 16}}


def two_groups() -> tuple[RecDataset, list[UserCase]]:
    """20 users: even users watch items 1-6, odd users 7-12, in order; the last item of each
    is the held-out target. A model that learns anything ranks the own group's items first."""
    rows = []
    for u in range(20):
        items = [str(i) for i in (range(1, 7) if u % 2 == 0 else range(7, 13))]
        items = items[u % 6:] + items[:u % 6]
        rows += [(f"u{u:02d}", it, t, 4.0) for t, it in enumerate(items)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    inter["timestamp"] = inter["timestamp"].astype("int64")
    ds = RecDataset("groups", inter, make_catalog(), domain="movie", domain_plural="movies")
    cases = []
    for user, g in inter.groupby("user_id", sort=True):
        items = g["item_id"].tolist()
        cases.append(UserCase(user, tuple(items[:-1]), (4.0,) * 5, tuple(range(5)), items[-1], 5))
    return ds, cases


@pytest.mark.parametrize("name", ["bpr", "ease"])
def test_learns_the_groups_from_training_data_only(name):
    ds, cases = two_groups()
    train = training_data(ds, cases)
    model = get_baseline(name, train, options=FAST[name])
    for case in cases:
        top = model.rank([case], 1)[0][0]     # the only unseen item of its own group
        assert top == case.target, (case.user_id, top)
    assert model.fit_info["cached"] is False and model.fit_info["device"] == "cpu"
    assert model.fit_info["fit_seconds"] >= 0


@pytest.mark.parametrize("name", ["bpr", "ease"])
def test_fitted_model_is_cached_and_keyed_by_data_and_options(name):
    ds, cases = two_groups()
    train = training_data(ds, cases)
    a = get_baseline(name, train, options=FAST[name])
    b = get_baseline(name, train, options=FAST[name])
    assert b.fit_info["cached"] is True and b.fit_info["key"] == a.fit_info["key"]
    assert np.array_equal(a.scores(cases), b.scores(cases))
    other = {**FAST[name], **({"factors": 9} if name == "bpr" else {"l2": 2.0})}
    assert get_baseline(name, train, options=other).fit_info["cached"] is False
    # another training regime (no held-out targets) is other data: a new fit
    assert get_baseline(name, training_data(ds, []), options=FAST[name]).fit_info["cached"] is False


def test_train_fingerprint_changes_with_held_out_targets(tiny_dataset):
    from tests.test_baselines import cases_of
    cases = cases_of(tiny_dataset)
    assert training_data(tiny_dataset, cases).fingerprint() != training_data(tiny_dataset, []).fingerprint()
    assert training_data(tiny_dataset, cases).fingerprint() == training_data(tiny_dataset, cases).fingerprint()


def test_training_sequences_are_chronological(tiny_dataset):
    train = training_data(tiny_dataset, [])
    seq = [train.items[i] for i in train.sequence("u1")]
    assert seq == ["1", "2", "3", "4", "7"]
    assert train.sequence("nobody") is None


@pytest.mark.parametrize("name,options,field", [
    ("bpr", {"factor": 8}, "factor"),              # unknown, did-you-mean
    ("bpr", {"factors": "many"}, "factors"),       # ill-typed
    ("ease", {"l2": -1}, "l2"),
    ("sasrec", {"max_len": 0}, "max_len"),
    ("sasrec", {"hidden": 30, "heads": 4}, "heads"),  # hidden not divisible by heads
])
def test_bad_options_are_named(name, options, field):
    ds, cases = two_groups()
    with pytest.raises(RecllmError) as exc:
        get_baseline(name, training_data(ds, cases), options=options)
    assert field in str(exc.value) and f"baseline_options.{name}" in str(exc.value)


@pytest.mark.parametrize("name", ["bpr", "ease", "sasrec"])
def test_too_little_data_is_refused_with_the_count(name):
    inter = pd.DataFrame({"user_id": ["u1"], "item_id": ["1"], "timestamp": [1], "rating": [1.0]})
    ds = RecDataset("one", inter, make_catalog(), domain="movie", domain_plural="movies")
    with pytest.raises(RecllmError, match=r"needs at least 2 items .* have 1"):
        get_baseline(name, training_data(ds, []), options=FAST[name])


def test_ease_refuses_a_catalog_too_large_naming_the_limit(monkeypatch):
    ds, cases = two_groups()
    train = training_data(ds, cases)
    with pytest.raises(RecllmError, match=r"limit here is 5 items"):
        get_baseline("ease", train, options={"max_items": 5})
    import recllm.baselines.ease as ease
    monkeypatch.setattr(ease, "available_bytes", lambda: 8 * 3 * 10 * 10 * 2)  # room for 10
    with pytest.raises(RecllmError, match=r"12 x 12 inverse .* limit here is 10 items"):
        get_baseline("ease", train, options={})


def test_bpr_divergence_is_an_error_and_nothing_is_cached(monkeypatch):
    import recllm.baselines.bpr as bpr
    from recllm import paths

    ds, cases = two_groups()
    train = training_data(ds, cases)
    with pytest.raises(RecllmError, match="diverged"):
        get_baseline("bpr", train, options={**FAST["bpr"], "learning_rate": 1e30})
    assert not list(paths.subdir("fitted").glob("bpr-*"))


def test_unknown_baseline_has_did_you_mean():
    from recllm.evaluate.config import EvalConfig
    with pytest.raises(RecllmError, match="did you mean 'bpr'"):
        EvalConfig.parse({"baselines": ["bprr"]})


def test_bpr_unknown_user_gets_popularity(tiny_dataset):
    from tests.test_baselines import cases_of
    train = training_data(tiny_dataset, cases_of(tiny_dataset))
    model = get_baseline("bpr", train, options=FAST["bpr"])
    stranger = UserCase("new", ("1",), (1.0,), (1,), "2", 2)
    scores = model.scores([stranger])[0]
    assert np.argmax(scores) == np.argmax(train.counts)


def test_sasrec_learns_the_next_item_and_is_cached():
    ds, cases = two_groups()
    train = training_data(ds, cases)
    opts = {**FAST["sasrec"], "epochs": 12, "patience": 12, "lr": 0.02, "dropout": 0.0}
    model = get_baseline("sasrec", train, options=opts)
    hits = sum(model.rank([c], 1)[0][0] == c.target for c in cases)
    assert hits >= 16, hits                       # the own group's unseen item, nearly always
    info = model.fit_info
    assert info["device"] == "cpu" and info["best_epoch"] >= 1 and len(info["valid_history"]) >= 1
    again = get_baseline("sasrec", train, options=opts)
    assert again.fit_info["cached"] is True
    assert np.allclose(model.scores(cases), again.scores(cases))


def test_sasrec_retrained_from_scratch_gives_the_same_scores():
    # Seeded training is reproducible on one machine; the golden samples leave SASRec out
    # because its float32 kernels differ between CPU instruction sets.
    import shutil

    from recllm import paths
    ds, cases = two_groups()
    train = training_data(ds, cases)
    first = get_baseline("sasrec", train, options=FAST["sasrec"]).scores(cases)
    shutil.rmtree(paths.subdir("fitted"))
    again = get_baseline("sasrec", train, options=FAST["sasrec"])
    assert again.fit_info["cached"] is False
    assert np.array_equal(first, again.scores(cases))


def test_sasrec_divergence_is_an_error_and_nothing_is_cached():
    from recllm import paths
    ds, cases = two_groups()
    with pytest.raises(RecllmError, match="SASRec training diverged"):
        get_baseline("sasrec", training_data(ds, cases),
                     options={**FAST["sasrec"], "lr": 1e20, "epochs": 5, "patience": 5})
    assert not list(paths.subdir("fitted").glob("sasrec-*"))


def test_sasrec_history_window_or_all(tiny_dataset):
    from tests.test_baselines import cases_of
    cases = cases_of(tiny_dataset)
    train = training_data(tiny_dataset, cases)
    full = get_baseline("sasrec", train, options=FAST["sasrec"])
    shown = get_baseline("sasrec", train, options={**FAST["sasrec"], "history": "shown"})
    short = [UserCase(c.user_id, c.history[-1:], c.ratings[-1:], c.timestamps[-1:], c.target,
                      c.target_timestamp, seen=frozenset(c.history)) for c in cases]
    # "all" reads the training sequence, whatever window the case shows
    assert np.allclose(full.scores(short), full.scores(cases))
    assert not np.allclose(shown.scores(short), shown.scores(cases))


def test_gini_and_intra_list_diversity():
    from recllm.evaluate.metrics import gini_exposure, intra_list_diversity
    assert gini_exposure([["a"], ["b"], ["c"], ["d"]], 4, 1) == 0.0          # equal exposure
    assert gini_exposure([["a", "b"], ["a", "b"]], 4, 2) == 0.5              # half never shown
    assert gini_exposure([["a"]] * 9, 10, 1) == pytest.approx(0.9)           # one item: (n-1)/n
    assert intra_list_diversity(np.eye(3)) == pytest.approx(1.0)             # orthogonal
    assert intra_list_diversity(np.ones((3, 2)) / np.sqrt(2)) == pytest.approx(0.0)
    assert intra_list_diversity(np.eye(3)[:1]) is None


def test_eval_records_training_gini_and_diversity(tmp_path, monkeypatch):
    """A baselines-only run: results.json has each trained baseline's fit (seconds, device,
    cache), gini for every system, and intra-list diversity once item embeddings exist."""
    import json

    import recllm.baselines.embedding as emb
    from recllm.evaluate import load_config, run_eval

    monkeypatch.setattr(emb, "encode", lambda texts, *a: np.eye(len(texts), 8, dtype=np.float32)
                        + np.eye(len(texts), 8, k=1, dtype=np.float32) * 0.5)
    ds, _ = two_groups()
    cfg = load_config(None, {"model": None, "users": None, "output": str(tmp_path / "run"),
                             "baselines": ["popularity", "bpr", "embedding"], "progress": False,
                             "baseline_options": {"bpr": FAST["bpr"]}, "ci_resamples": 10},
                      keep_none=["model"])
    run_eval(cfg, dataset=ds, log=lambda m: None)
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["baseline_training"]["bpr"]["device"] == "cpu"
    assert "embed_seconds" in res["baseline_training"]["embedding"]
    for name in ("popularity", "bpr", "embedding"):
        ba = res["systems"][name]["beyond_accuracy"]
        assert 0 <= ba["gini@10"] <= 1 and "intra_list_diversity" in ba


def test_tune_baselines_scores_on_the_validation_target_only():
    from recllm.commands.tune_baselines import tune
    from recllm.evaluate import load_config

    ds, _ = two_groups()
    cfg = load_config(None, {"model": None, "users": None, "protocol": "candidates",
                             "negatives": 3, "split": "test"}, keep_none=["model"])
    out = tune(cfg, {"ease": {"l2": [0.5, 1e6]}}, log=lambda m: None, dataset=ds)
    assert out["split"] == "valid" and out["users"] == 20
    points = out["baselines"]["ease"]["points"]
    assert [p["options"] for p in points] == [{"l2": 0.5}, {"l2": 1e6}]
    assert out["baselines"]["ease"]["best"] == max(points, key=lambda p: p["score"])["options"]
    assert points[0]["fit_info"]["cached"] is False
    with pytest.raises(RecllmError, match="no cutoff"):
        tune(cfg, {"ease": {"l2": [1.0]}}, metric="ndcg", log=lambda m: None, dataset=ds)
