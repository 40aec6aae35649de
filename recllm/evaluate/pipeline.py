"""The per-batch work of a run: render -> generate -> ground + score -> sample lines.

Rendering, grounding and scoring are CPU work; generation belongs to the backend, which lives
in the main process (it may hold a model). With `workers > 1` the CPU stages of each batch are
split across worker processes, which is what lets the pipeline keep up with a fast engine or
the scripted backend. Workers are forked only while this process has a single thread; once an
engine's threads exist (torch, tokenizers, httpx), a fork would copy their locks in whatever
state they are, so workers come from a fork server (a fresh interpreter) instead, and each gets
the plan and the LLM's CPU half (template, matcher; no engine) pickled once. Output is identical either way: every record
depends only on its own user.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from recllm.data.schema import UserCase
from recllm.evaluate.config import EvalConfig
from recllm.evaluate.metrics import intra_list_diversity, novelty, relevant_items, users_metrics
from recllm.evaluate.schema import SCHEMA_VERSION
from recllm.evaluate.setup import RunPlan

_STATE: dict[str, Any] = {}   # what the stages read: cfg, plan, order, llm, pending, label


def score_records(cfg: EvalConfig, plan: RunPlan, batch: Sequence[UserCase], order: dict[str, int],
                  llm_records: list[dict[str, Any]] | None, label: str | None = None) -> list[str]:
    """Sample lines (JSON) for a batch: the LLM's records plus every baseline's list, with
    per-user metrics computed for the whole batch at once."""
    cands = plan.candidates_of(batch)
    systems: list[tuple[str, list[dict[str, Any]]]] = []
    if llm_records is not None:
        systems.append((label or str(cfg.model), llm_records))
    cand_lists = [list(c.items) for c in cands] if plan.candidates else None
    for name, baseline in plan.baselines.items():
        ranked = baseline.rank(list(batch), cfg.protocol_spec.list_length(cfg), candidates=cand_lists,
                               exclude_history=cfg.exclude_history)
        systems.append((name, [{"kind": "baseline", "ranked": r} for r in ranked]))
    relevant = [relevant_items(c) for c in batch]
    counts, index, pct = plan.train.counts, plan.train.index, plan.percentiles
    # Item embeddings for intra-list diversity, when a baseline of this run has them (the
    # embedding baseline); without them no record carries "diversity" (nothing else changes).
    vectors = next((b.item_vectors for b in plan.baselines.values()
                    if getattr(b, "item_vectors", None) is not None), None)
    for _, recs in systems:
        per_user = users_metrics([r["ranked"] for r in recs], relevant, cfg.ks)
        for r, metrics in zip(recs, per_user):
            r["metrics"] = metrics
            top = r["ranked"][: cfg.k]
            p = [pct.get(i, 0.0) for i in top]
            r["popularity"] = round(float(np.mean(p)), 10) if p else None
            nov = novelty(top, {i: int(counts[index[i]]) for i in top if i in index},
                          plan.train.n_users)
            r["novelty"] = round(nov, 10) if nov is not None else None
            if vectors is not None:
                ild = intra_list_diversity(vectors[[index[i] for i in top if i in index]])
                r["diversity"] = round(ild, 10) if ild is not None else None
    lines = []
    for u, case in enumerate(batch):
        rec: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "i": order[case.user_id], "user": case.user_id,
            "target": case.target,
            "history": list(case.history), "history_truncated": case.truncated,
            "n_items": plan.train.n_items,
        }
        if len(case.targets) > 1:
            rec["targets"] = list(case.targets)
        if cands[u] is not None:
            rec["candidates"] = list(cands[u].items)
            rec["target_position"] = cands[u].target_position
        rec["systems"] = {name: recs[u] for name, recs in systems}
        lines.append(json.dumps(rec, ensure_ascii=False) + "\n")
    return lines


def _prepare(lo: int, hi: int):
    st = _STATE
    batch = st["pending"][lo:hi]
    plan = st["plan"]
    return st["llm"].prepare(batch, plan.candidates_of(batch))


def _finish(lo: int, hi: int, prep, results) -> tuple[list[str], float]:
    st = _STATE
    batch = st["pending"][lo:hi]
    t0 = time.perf_counter()
    records = st["llm"].finish(batch, prep, results) if st["llm"] is not None else None
    return score_records(st["cfg"], st["plan"], batch, st["order"], records, st["label"]), \
        time.perf_counter() - t0


def start_method() -> str:
    """`fork` while this process has a single thread (a fork then copies no lock mid-state, and
    costs nothing); otherwise a fork server (a fresh interpreter), or spawn where there is none."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and _threads() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


PRELOAD = ["recllm.evaluate.pipeline", "recllm.evaluate.llm", "recllm.baselines.itemknn",
           "recllm.grounding", "recllm.prompting"]


def warm_up() -> None:
    """Start the fork server now, importing what workers need, so it is ready (and they start
    in milliseconds) by the time the plan is built and the pool is made."""
    if start_method() == "forkserver":
        from multiprocessing import forkserver

        multiprocessing.set_forkserver_preload(PRELOAD)
        forkserver.ensure_running()


def _threads() -> int:
    """Threads of this process, native ones included (torch, tokenizers, httpx); 0 if unknown."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def _slim(plan: RunPlan) -> RunPlan:
    """The plan as workers need it: everything but the interactions table (render, grounding
    and scoring read the catalog, the training data and the fitted baselines), so a worker
    unpickles a few MB instead of ML-1M's 112."""
    from dataclasses import replace

    dataset = replace(plan.dataset, interactions=plan.dataset.interactions.iloc[:0])
    return replace(plan, dataset=dataset)


def _install(blob: bytes) -> None:
    """Worker initializer: the state the stages read, unpickled once per worker."""
    _STATE.update(pickle.loads(blob))


class Pipeline:
    """Turns batches of pending users into sample lines, in order, optionally in parallel."""

    def __init__(self, cfg: EvalConfig, plan: RunPlan, order: dict[str, int], llm,
                 pending: list[UserCase], workers: int = 1):
        from recllm.evaluate.llm import system_label
        _STATE.update(cfg=cfg, plan=plan, order=order, llm=llm, pending=pending,
                      label=system_label(cfg))
        self.llm, self.pool, self.workers = llm, None, max(1, workers)
        # Rendering with a token budget needs the engine's tokenizer: it stays in this process.
        self.render_here = llm is not None and llm.needs_engine_to_render
        if self.workers > 1 and len(pending) > 1:
            method = start_method()
            if method == "fork":  # nothing but this thread exists: the children inherit _STATE
                self.pool = multiprocessing.get_context(method).Pool(self.workers)
            else:
                state = {**_STATE, "plan": _slim(plan),
                         "llm": llm.without_backend() if llm is not None else None}
                blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
                self.pool = multiprocessing.get_context(method).Pool(
                    self.workers, initializer=_install, initargs=(blob,))

    def _parts(self, lo: int, hi: int) -> list[tuple[int, int]]:
        n = self.workers if self.pool is not None else 1
        step = max(1, -(-(hi - lo) // n))
        return [(a, min(a + step, hi)) for a in range(lo, hi, step)]

    def run(self, lo: int, hi: int, stats) -> list[str]:
        """Sample lines for pending[lo:hi]."""
        parts = self._parts(lo, hi)
        pool = self.pool
        preps = [None] * len(parts)
        if self.llm is not None:
            preps = pool.starmap(_prepare, parts) if pool and not self.render_here \
                else [_prepare(*p) for p in parts]
            stats.seconds_render += sum(p.seconds for p in preps)
            requests = [r for p in preps for r in p.requests]
            results = self.llm.generate(requests, stats)
            split, at = [], 0
            for p in preps:
                split.append(results[at:at + len(p.requests)])
                at += len(p.requests)
        else:
            split = [[] for _ in parts]
        args = [(a, b, prep, res) for (a, b), prep, res in zip(parts, preps, split)]
        outs = pool.starmap(_finish, args) if pool else [_finish(*x) for x in args]
        stats.seconds_ground += sum(s for _, s in outs)
        return [line for lines, _ in outs for line in lines]

    def close(self, terminate: bool = False) -> None:
        if self.pool is not None:
            if terminate:
                self.pool.terminate()
            else:
                self.pool.close()
            self.pool.join()
            self.pool = None
        _STATE.clear()
