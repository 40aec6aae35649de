"""Everything decided before any model answers: data, split, users, training data, baselines,
and each user's candidates. Nothing here depends on which users were already finished, so a
resumed run rebuilds exactly the same plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recllm.baselines import Baseline, TrainData, get_baseline, training_data
from recllm.data.schema import RecDataset, UserCase
from recllm.errors import RecllmError
from recllm.evaluate.config import EvalConfig
from recllm.evaluate.protocols import (CandidateSet, NegativeSampler, retrieved_candidates,
                                       sampled_candidates)

Log = Callable[[str], None]


@dataclass
class Plan:
    """The users to evaluate (in order), what each is shown, and the fitted baselines."""

    dataset: RecDataset
    cases: list[UserCase]
    train: TrainData
    baselines: dict[str, Baseline]
    candidates: dict[str, CandidateSet] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    percentiles: dict[str, float] = field(default_factory=dict)


def protocol_info(cfg: EvalConfig) -> dict[str, Any]:
    """The protocol as recorded in results.json (always labelled)."""
    info: dict[str, Any] = {"name": cfg.protocol, "split": f"leave-one-out ({cfg.split})",
                            "ks": cfg.ks, "exclude_history": cfg.exclude_history}
    if cfg.protocol == "full":
        info.update(description=f"full-catalog generation: the model names {cfg.k} items freely",
                    k=cfg.k)
    elif cfg.protocol == "candidates":
        unseen = "unseen " if cfg.negatives_exclude_seen else ""
        info.update(description=f"candidate ranking: 1 held-out positive + {cfg.negatives} "
                    f"{cfg.negative_sampling}-sampled {unseen}negatives",
                    negatives=cfg.negatives, negative_sampling=cfg.negative_sampling,
                    negatives_exclude_seen=cfg.negatives_exclude_seen,
                    shuffle=cfg.shuffle_candidates, bootstrap=cfg.bootstrap,
                    bootstrap_merge=cfg.bootstrap_merge if cfg.bootstrap else None)
    else:
        info.update(description=f"retrieved candidates: top {cfg.negatives + 1} of {cfg.retriever} "
                    "(the positive may be missing)", candidates=cfg.negatives + 1,
                    retriever=cfg.retriever, shuffle=cfg.shuffle_candidates,
                    bootstrap=cfg.bootstrap,
                    bootstrap_merge=cfg.bootstrap_merge if cfg.bootstrap else None)
    return info


def build_plan(cfg: EvalConfig, *, log: Log = print, dataset: RecDataset | None = None,
               progress: Callable | None = None) -> Plan:
    """Load, split, pick users, fit baselines and draw candidates, all seeded by `cfg.seed`."""
    from recllm.data import leave_one_out, load_dataset, sample_users
    from recllm.evaluate.metrics import popularity_percentiles

    import time
    t0 = time.perf_counter()
    if dataset is None:
        dataset = load_dataset(cfg.dataset, **cfg.dataset_options)
    split = leave_one_out(dataset, max_history=cfg.max_history, min_history=cfg.min_history)
    cases = list(split.test if cfg.split == "test" else split.valid)
    skipped: dict[str, int] = {}
    n_skip = split.skipped if cfg.split == "test" else split.skipped_valid
    if n_skip:
        skipped[f"fewer than {cfg.min_history} history items before the target"] = int(n_skip)
    if not cases:
        raise RecllmError(f"no user of {dataset.name!r} has {cfg.min_history}+ history items "
                          "before a target", where="min_history",
                          hint="lower min_history or use a dataset with longer histories")
    if isinstance(cfg.users, str):
        cases = sample_users(cases, None, cfg.seed, user_ids=cfg.users)
    else:
        cases = sample_users(cases, cfg.users, cfg.seed)
    # Training data leave out every held-out target of every user (not only the sampled ones).
    held = list(split.test) + (list(split.valid) if cfg.split == "valid" else [])
    train = training_data(dataset, held)
    log(f"data: {dataset.name}, {len(cases)} users to evaluate, {train.n_items} items "
        f"({time.perf_counter() - t0:.1f}s)")
    baselines = {}
    names = list(dict.fromkeys(cfg.baselines))
    for name in names:
        t1 = time.perf_counter()
        baselines[name] = get_baseline(name, train, seed=cfg.seed, neighbors=cfg.knn_neighbors)
        if name == "itemknn":
            log(f"baseline itemknn fitted ({time.perf_counter() - t1:.1f}s)")
    plan = Plan(dataset, cases, train, baselines, skipped=skipped, split=split.summary(),
                percentiles=popularity_percentiles(train.count_of()))
    if cfg.protocol == "candidates":
        _sampled(cfg, plan, split)
    elif cfg.protocol == "retrieved":
        retriever = baselines.get(cfg.retriever) or get_baseline(
            cfg.retriever, train, seed=cfg.seed, neighbors=cfg.knn_neighbors)
        sets = retrieved_candidates(plan.cases, retriever, cfg.negatives + 1, cfg.seed,
                                    shuffle=cfg.shuffle_candidates)
        plan.candidates = {c.user_id: s for c, s in zip(plan.cases, sets)}
    return plan


def _sampled(cfg: EvalConfig, plan: Plan, split) -> None:
    sampler = NegativeSampler(plan.train, cfg.negatives, cfg.negative_sampling, cfg.seed)
    inter = plan.dataset.interactions
    wanted = {c.user_id for c in plan.cases}
    if cfg.negatives_exclude_seen:
        sub = inter[inter["user_id"].isin(wanted)]
        seen = {u: set(g) for u, g in sub.groupby("user_id", sort=False)["item_id"]}
    else:  # LLMRank: negatives drawn from all items; only the target itself is excluded
        seen = {c.user_id: {c.target, *c.targets} for c in plan.cases}
    sets, reasons = sampled_candidates(plan.cases, sampler, cfg.seed, seen,
                                       shuffle=cfg.shuffle_candidates)
    kept = []
    for case, cset, why in zip(plan.cases, sets, reasons):
        if cset is None:
            plan.skipped[why] = plan.skipped.get(why, 0) + 1
        else:
            kept.append(case)
            plan.candidates[case.user_id] = cset
    plan.cases = kept
