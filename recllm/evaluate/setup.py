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
from recllm.evaluate.candidates import CandidateSet
from recllm.evaluate.config import EvalConfig

Log = Callable[[str], None]


@dataclass
class RunPlan:
    """The users to evaluate (in order), what each is shown, and the fitted baselines."""

    dataset: RecDataset
    cases: list[UserCase]
    train: TrainData
    baselines: dict[str, Baseline]
    candidates: dict[str, CandidateSet] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    percentiles: dict[str, float] = field(default_factory=dict)
    # Each user's demonstrations (`demos_from`) and their domain's (noun, plural).
    demos: dict[str, tuple] = field(default_factory=dict)
    demo_domain: tuple[str, str] | None = None
    regime: dict[str, Any] = field(default_factory=dict)  # what the baselines trained on

    def candidates_of(self, cases) -> list[CandidateSet | None]:
        """Each case's candidates as shown (None under a protocol without candidates)."""
        return [self.candidates.get(c.user_id) for c in cases]


def build_plan(cfg: EvalConfig, *, log: Log = print, dataset: RecDataset | None = None,
               progress: Callable | None = None) -> RunPlan:
    """Load, split, pick users, fit baselines and draw candidates, all seeded by `cfg.seed`."""
    from recllm.data import leave_one_out, load_dataset, sample_users
    from recllm.data.splits import reorder
    from recllm.evaluate.metrics import popularity_percentiles

    import time
    t0 = time.perf_counter()
    if dataset is None:
        dataset = load_dataset(cfg.dataset, **cfg.dataset_options)
    split = leave_one_out(dataset, max_history=cfg.max_history, min_history=cfg.min_history,
                          order=cfg.order, seed=cfg.order_seed)
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
    # Sequence baselines read the training interactions in the order the split used.
    ordered = reorder(dataset, cfg.order, cfg.order_seed)
    train = training_data(ordered, held)
    log(f"data: {dataset.name}, {len(cases)} users to evaluate, {train.n_items} items "
        f"({time.perf_counter() - t0:.1f}s)")
    # A cold-start regime shrinks what the baselines fit on, nothing else: candidates, the
    # matcher's popularity prior and percentiles keep the full training data, so every
    # regime evaluates the same users on the same candidates.
    fit_on, regime = train, _regime(cfg, train)
    if regime:
        fit_on = training_data(ordered, held, fraction=float(cfg.train_fraction),
                               max_users=cfg.train_users, seed=cfg.seed)
        regime.update(users=fit_on.n_users, interactions=int(fit_on.counts.sum()))
        log(f"cold-start regime: baselines fit on {regime['interactions']:,} of "
            f"{int(train.counts.sum()):,} training interactions ({fit_on.n_users:,} users)")
    baselines = {}
    for name in dict.fromkeys(cfg.baselines):
        t1 = time.perf_counter()
        baselines[name] = get_baseline(name, fit_on, seed=cfg.seed,
                                       options=cfg.baseline_options.get(name))
        if baselines[name].trains:
            log(f"baseline {name} fitted ({time.perf_counter() - t1:.1f}s)")
    plan = RunPlan(dataset, cases, train, baselines, skipped=skipped, split=split.summary(),
                   percentiles=popularity_percentiles(train.count_of()), regime=regime)
    if cfg.demos and cfg.model is not None:  # demos: 0 in a sweep is the zero-shot point
        _add_demos(cfg, plan, log)
    protocol = cfg.protocol_spec
    if protocol.build is not None:
        protocol.build(cfg, plan, split)
    return plan


def _regime(cfg: EvalConfig, train: TrainData) -> dict[str, Any]:
    """The cold-start settings in force ({} = the full training data)."""
    if float(cfg.train_fraction) >= 1.0 and cfg.train_users is None:
        return {}
    return {"train_fraction": float(cfg.train_fraction), "train_users": cfg.train_users,
            "full_interactions": int(train.counts.sum()), "full_users": train.n_users}


def _add_demos(cfg: EvalConfig, plan: RunPlan, log: Log) -> None:
    """Draw every evaluated user's demonstrations from `demos_from` (recllm.evaluate.demos)."""
    from recllm.data import load_dataset
    from recllm.evaluate.demos import DemoPool, draw_demos

    source = load_dataset(cfg.demos_from, **cfg.demos_options)
    if source.domain == plan.dataset.domain and "cross-domain" in str(cfg.template):
        log(f"warning: demos_from {cfg.demos_from!r} is in the same domain as {plan.dataset.name!r} "
            f"({source.domain}); template {cfg.template!r} will read as a same-domain prompt")
    pool = DemoPool(source, history=cfg.demo_history, seed=cfg.seed)
    plan.demos = draw_demos(pool, plan.cases, plan.dataset, cfg.demos)
    plan.demo_domain = (source.domain, source.domain_plural)
    log(f"demos: {cfg.demos} per prompt from {source.name} ({len(pool):,} {source.domain} users)")
