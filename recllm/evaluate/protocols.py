"""Evaluation protocols: what the model is asked for, per user, decided before it answers.

- `full`: no candidates; the model names `k` items from its own knowledge of the whole catalog
  (the honest headline number).
- `candidates`: the held-out positive plus N sampled negatives (LLMRank: N = 19), shuffled.
- `retrieved`: the top N+1 of a baseline for the user (the first stage of a two-stage system);
  the positive may be missing (a miss for everyone).

Each is one `Protocol` object in PROTOCOLS; the evaluation code asks it (list length, template
mode, candidates, whether seen items are dropped) and never compares protocol names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recllm.errors import unknown

if TYPE_CHECKING:
    from recllm.data.splits import Split
    from recllm.evaluate.config import EvalConfig
    from recllm.evaluate.setup import RunPlan


@dataclass(frozen=True)
class Protocol:
    """One protocol. `build` fills `plan.candidates` (and drops users it cannot serve, counted
    in `plan.skipped`); None means the model ranks the whole catalog."""

    name: str
    template_mode: str                 # the template mode it needs: "generate" or "rank"
    default_template: str
    build: Callable[["EvalConfig", "RunPlan", "Split"], None] | None
    describe: Callable[["EvalConfig"], dict[str, Any]]

    @property
    def uses_candidates(self) -> bool:
        """Candidates are shown, ranked as shown, and may be re-asked re-shuffled."""
        return self.build is not None

    @property
    def drops_seen(self) -> bool:
        """Lists over the whole catalog leave out what the user already had (when the config's
        `exclude_history` is on); candidate lists are ranked as shown."""
        return not self.uses_candidates

    def list_length(self, cfg: "EvalConfig") -> int:
        """How long every system's list is: k over the catalog, else every candidate."""
        return cfg.negatives + 1 if self.uses_candidates else cfg.k

    def reasks(self, cfg: "EvalConfig") -> int:
        return cfg.reasks if self.uses_candidates else 0

    def info(self, cfg: "EvalConfig") -> dict[str, Any]:
        """The protocol as recorded in results.json (always labelled)."""
        base = {"name": self.name, "split": f"leave-one-out ({cfg.split})", "ks": cfg.ks,
                "exclude_history": cfg.exclude_history}
        extra = self.describe(cfg)
        if cfg.constrain != "none":
            extra["description"] += f" (decoding constrained to {cfg.constrain} titles)"
            extra["constrain"] = cfg.constrain
        if cfg.mode == "score":
            extra["description"] += f" (ranked by likelihood: score mode, {cfg.score_norm})"
            extra["mode"] = "score"
        if self.uses_candidates:
            extra.update(shuffle=cfg.shuffle_candidates, reasks=cfg.reasks,
                         reasks_merge=cfg.reasks_merge if cfg.reasks else None)
        return {**base, **extra}


def _sampled(cfg: "EvalConfig", plan: "RunPlan", split: "Split") -> None:
    from recllm.evaluate.candidates import NegativeSampler, sampled_candidates

    sampler = NegativeSampler(plan.train, cfg.negatives, cfg.negative_sampling, cfg.seed)
    inter = plan.dataset.interactions
    if cfg.negatives_exclude_seen:  # never a negative the user interacted with, at any time
        sub = inter[inter["user_id"].isin({c.user_id for c in plan.cases})]
        seen = {u: set(g) for u, g in sub.groupby("user_id", sort=False)["item_id"]}
    else:  # LLMRank: negatives drawn from all items; only the targets are excluded
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


def _retrieved(cfg: "EvalConfig", plan: "RunPlan", split: "Split") -> None:
    from recllm.baselines import get_baseline
    from recllm.evaluate.candidates import retrieved_candidates

    retriever = plan.baselines.get(cfg.retriever) or get_baseline(
        cfg.retriever, plan.train, seed=cfg.seed, options=cfg.baseline_options.get(cfg.retriever))
    sets = retrieved_candidates(plan.cases, retriever, cfg.negatives + 1, cfg.seed,
                                shuffle=cfg.shuffle_candidates)
    plan.candidates = {c.user_id: s for c, s in zip(plan.cases, sets)}


def _full_info(cfg: "EvalConfig") -> dict[str, Any]:
    return {"description": f"full-catalog generation: the model names {cfg.k} items", "k": cfg.k}


def _sampled_info(cfg: "EvalConfig") -> dict[str, Any]:
    unseen = "unseen " if cfg.negatives_exclude_seen else ""
    return {"description": f"candidate ranking: 1 held-out positive + {cfg.negatives} "
                           f"{cfg.negative_sampling}-sampled {unseen}negatives",
            "negatives": cfg.negatives, "negative_sampling": cfg.negative_sampling,
            "negatives_exclude_seen": cfg.negatives_exclude_seen}


def _retrieved_info(cfg: "EvalConfig") -> dict[str, Any]:
    return {"description": f"retrieved candidates: top {cfg.negatives + 1} of {cfg.retriever} "
                           "(the positive may be missing)",
            "candidates": cfg.negatives + 1, "retriever": cfg.retriever}


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("full", "generate", "generate", None, _full_info),
    Protocol("candidates", "rank", "rank-sequential", _sampled, _sampled_info),
    Protocol("retrieved", "rank", "rank-sequential", _retrieved, _retrieved_info),
)}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise unknown("protocol", str(name), PROTOCOLS)
    return PROTOCOLS[name]
