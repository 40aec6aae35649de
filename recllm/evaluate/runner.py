"""`recllm eval`: plan, answer user batches, append samples, aggregate into results.json.

Resumable by construction: the plan (users, candidates, baselines) is a pure function of the
config, every random choice is seeded per user, finished users are read back from
samples.jsonl and skipped, and results.json is computed from samples.jsonl alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recllm.errors import RecllmError
from recllm.evaluate import rundir
from recllm.evaluate.aggregate import aggregate
from recllm.evaluate.config import EvalConfig
from recllm.evaluate.schema import SCHEMA_VERSION
from recllm.evaluate.setup import RunPlan, build_plan

Log = Callable[[str], None]


def default_output(cfg: EvalConfig) -> Path:
    name = cfg.name or f"{cfg.dataset}-{cfg.hash()[:8]}"
    return Path("runs") / name.replace("/", "_")


def run_eval(cfg: EvalConfig, *, resume: bool = False, log: Log = print, backend=None,
             dataset=None) -> list[Path]:
    """Run every point of the config's sweep; each lands in its own sub-folder."""
    import json

    out = Path(cfg.output) if cfg.output else default_output(cfg)
    points = cfg.sweep()
    dirs = []
    engines: dict[str, Any] = {}  # one engine per model across sweep points: load it once
    try:
        for i, (name, point) in enumerate(points):
            run_dir = out / name if name else out
            if len(points) > 1:
                log(f"[{i + 1}/{len(points)}] {name}")
            point = point.resolved()
            engine = backend
            if engine is None and point.model is not None and len(points) > 1:
                key = json.dumps([point.model, point.backend, point.backend_options, point.cache],
                                 sort_keys=True, default=str)
                if key not in engines:
                    from recllm.evaluate.llm import make_backend
                    engines[key] = make_backend(point)
                engine = engines[key]
            run_one(point, run_dir, resume=resume, log=log, backend=engine, dataset=dataset)
            dirs.append(run_dir)
    finally:
        for engine in engines.values():
            engine.close()
    return dirs


def run_one(cfg: EvalConfig, run_dir: Path, *, resume: bool = False, log: Log = print,
            backend=None, dataset=None) -> dict[str, Any] | None:
    """One evaluation run into `run_dir`; returns results (None when stopped by `limit`)."""
    with rundir.RunLock(run_dir, log=log):
        return _run_locked(cfg, run_dir, resume=resume, log=log, backend=backend, dataset=dataset)


def _run_locked(cfg: EvalConfig, run_dir: Path, *, resume: bool, log: Log, backend, dataset
                ) -> dict[str, Any] | None:
    t_start = time.perf_counter()
    if cfg.workers > 1:
        from recllm.evaluate.pipeline import warm_up
        warm_up()  # the workers' fork server imports recllm while the plan is built
    rundir.prepare(run_dir, cfg.to_yaml(), cfg.hash(), resume)
    done = rundir.read_records(run_dir / rundir.SAMPLES, repair=True)
    plan = build_plan(cfg, log=log, dataset=dataset)
    t_plan = time.perf_counter()
    rundir.check_fingerprint(run_dir, "dataset", plan.dataset.fingerprint(), has_samples=bool(done))
    done, pending = _pending(cfg, run_dir, plan, done, log)
    if cfg.export_requests or cfg.import_answers:  # batch files (recllm.evaluate.batchfiles)
        from recllm.evaluate import batchfiles
        if cfg.model is None:
            raise RecllmError("batch files carry the LLM's requests; this run has no model",
                              where="--export-requests/--import-answers", hint="set --model")
        if backend is None:  # the same identity both ways: an export and an import share a run
            backend = batchfiles.engine_for(cfg)
    llm = None
    if cfg.model is not None and pending:
        from recllm.evaluate.llm import LLMRecommender
        llm = LLMRecommender(cfg, plan.dataset, backend=backend,
                             popularity={k: float(v) for k, v in plan.train.count_of().items()},
                             demos=plan.demos, demo_domain=plan.demo_domain)
        rundir.check_fingerprint(run_dir, "model", llm.fingerprint(), has_samples=bool(done))
    if cfg.export_requests:  # write the requests, generate nothing (recllm.evaluate.batchfiles)
        from recllm.evaluate import batchfiles
        batchfiles.export(cfg, plan, pending, llm, log)
        return None
    t_loop, c_loop = time.perf_counter(), _cpu_seconds()
    try:
        stats = _answer(cfg, run_dir, plan, pending, llm)
    finally:
        if llm is not None and backend is None:  # an engine passed in belongs to the caller
            llm.close()
    t_end, c_end = time.perf_counter(), _cpu_seconds()  # workers are joined: their CPU counts
    samples = rundir.read_records(run_dir / rundir.SAMPLES)
    if len(samples) < len(plan.cases):
        log(f"stopped after {len(samples)}/{len(plan.cases)} users (limit); "
            "rerun with --resume to finish")
        return None
    timings = {"plan_seconds": round(t_plan - t_start, 3),
               "loop_seconds_this_session": round(t_end - t_loop, 3),
               "loop_cpu_seconds_this_session": round(c_end - c_loop, 3),
               "users_this_session": len(pending),
               "render_seconds": round(stats.seconds_render, 3),
               "generate_seconds": round(stats.seconds_generate, 3),
               "ground_seconds": round(stats.seconds_ground, 3)}
    results = build_results(cfg, plan, samples, run_dir, timings)
    rundir.write_json_atomic(run_dir / rundir.RESULTS, results)
    return results


def _pending(cfg: EvalConfig, run_dir: Path, plan: RunPlan, done: list[dict[str, Any]],
             log: Log) -> tuple[list[dict[str, Any]], list]:
    """(samples kept, users still to answer): finished users are skipped, failed ones dropped
    for another try with `retry_failed`, and at most `limit` users are done in all."""
    samples_path = run_dir / rundir.SAMPLES
    if done and cfg.retry_failed:
        kept = [s for s in done if not any((r or {}).get("error") for r in s["systems"].values())]
        if len(kept) < len(done):
            log(f"retrying {len(done) - len(kept)} users whose requests failed")
            _rewrite(samples_path, kept)
            done = kept
    finished = {s["user"] for s in done}
    stale = finished - {c.user_id for c in plan.cases}
    if stale:
        raise RecllmError(f"samples.jsonl holds {len(stale)} users not in this run's plan",
                          where=str(samples_path), hint="start over with --output NEW_DIR")
    pending = [c for c in plan.cases if c.user_id not in finished]
    if cfg.limit is not None:
        pending = pending[: max(0, cfg.limit - len(finished))]
    log(f"{run_dir}: {len(plan.cases)} users ({len(finished)} done, {len(pending)} to go), "
        f"protocol {cfg.protocol}, model {cfg.model or '(baselines only)'}")
    return done, pending


def _answer(cfg: EvalConfig, run_dir: Path, plan: RunPlan, pending: list, llm):
    """Answer and score the pending users batch by batch, appending each batch's samples
    (durably) and its timings to events.jsonl; returns the session's BatchStats."""
    from tqdm.auto import tqdm

    from recllm.evaluate.llm import BatchStats
    from recllm.evaluate.pipeline import Pipeline

    stats = BatchStats()
    order = {c.user_id: i for i, c in enumerate(plan.cases)}
    writer = rundir.JsonlAppender(run_dir / rundir.SAMPLES)
    events = rundir.JsonlAppender(run_dir / rundir.EVENTS)
    if llm is not None:
        events.write([{"model": llm.identity()}])
    if cfg.executor == "ray" and llm is not None:  # generation in Ray Data actors
        from recllm.executors import ray_answer
        try:
            return ray_answer(cfg, plan, order, llm, pending, stats, writer, events)
        finally:
            writer.close()
            events.close()
    pipe = Pipeline(cfg, plan, order, llm, pending, workers=cfg.workers)
    try:
        bar = tqdm(total=len(pending), desc="users", unit="user", disable=not cfg.progress,
                   leave=False)
        for start in range(0, len(pending), cfg.batch_size):
            stop = min(start + cfg.batch_size, len(pending))
            t0 = time.perf_counter()
            before = (stats.seconds_generate, stats.cached, stats.requests)
            writer.write_lines(pipe.run(start, stop, stats))
            events.write([{"users": stop - start, "seconds": round(time.perf_counter() - t0, 4),
                           "generate_seconds": round(stats.seconds_generate - before[0], 4),
                           "cached": stats.cached - before[1],
                           "requests": stats.requests - before[2]}])
            bar.update(stop - start)
        bar.close()
    except BaseException:  # Ctrl-C or a crash: stop workers at once, keep what was written
        pipe.close(terminate=True)
        raise
    finally:
        pipe.close()
        from recllm.backends.openai_http import replica_counts
        counts = replica_counts(llm.backend) if llm is not None else None
        if counts:  # openai with several base_urls: requests and failures per replica
            events.write([{"replicas": counts}])
        writer.close()
        events.close()
    return stats


def build_results(cfg: EvalConfig, plan: RunPlan | None, samples: list[dict[str, Any]],
                  run_dir: Path, timings: dict[str, Any]) -> dict[str, Any]:
    """results.json: metrics from samples, plus everything needed to reproduce them."""
    metrics = aggregate(samples, ks=cfg.ks, k=cfg.k, resamples=cfg.ci_resamples, seed=cfg.seed)
    events = rundir.read_records(run_dir / rundir.EVENTS)
    models = [e["model"] for e in events if "model" in e]
    model = models[-1] if models else None
    events = [e for e in events if "seconds" in e]
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": cfg.name or run_dir.name,
        "protocol": cfg.protocol_spec.info(cfg),
        "dataset": plan.dataset.stats() if plan else {"name": cfg.dataset},
        "users": {"evaluated": metrics["users"], "requested": cfg.users,
                  "skipped": plan.skipped if plan else {}, "split": plan.split if plan else {}},
        "config_hash": cfg.hash(),
        "config": cfg.public(),
        "model": model,
        **{k: v for k, v in metrics.items() if k != "users"},
        "timings": {**timings,
                    "loop_seconds_all_sessions": round(sum(e["seconds"] for e in events), 3),
                    "generate_seconds_all_sessions": round(
                        sum(e.get("generate_seconds", 0) for e in events), 3),
                    "cached_requests": sum(e.get("cached", 0) for e in events),
                    "requests": sum(e.get("requests", 0) for e in events)},
        "environment": rundir.environment(),
    }
    if plan is not None:
        results["transfer"] = transfer_info(cfg, plan)
        if plan.split.get("synthetic"):  # nobody should read "last item" as "latest"
            results["protocol"]["split"] += f", synthetic order ({plan.split.get('note')})"
            results["protocol"]["order"] = plan.split.get("order")
    # How each trained baseline was fitted here: seconds, device, cache hit (Baseline.fit_info)
    fitted = {n: b.fit_info for n, b in (plan.baselines.items() if plan else []) if b.fit_info}
    if fitted:
        results["baseline_training"] = fitted
    return results


def transfer_info(cfg: EvalConfig, plan: RunPlan) -> dict[str, Any]:
    """Where the prompt's knowledge came from and what the baselines trained on: the columns
    of `recllm report --transfer`."""
    return {"target": plan.dataset.name, "domain": cfg.domain or plan.dataset.domain,
            "demos_from": cfg.demos_from if cfg.demos else None, "demos": cfg.demos,
            "demo_domain": plan.demo_domain[0] if plan.demo_domain else None,
            "regime": plan.regime or {"train_fraction": 1.0, "train_users": None,
                                      "users": plan.train.n_users,
                                      "interactions": int(plan.train.counts.sum())}}


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (worker processes)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _rewrite(path: Path, records: list[dict[str, Any]]) -> None:
    import json
    import os

    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                           for r in records), encoding="utf-8")
    os.replace(tmp, path)


def recompute(run_dir: str | Path) -> dict[str, Any]:
    """Metrics of a run from its config.yaml and samples.jsonl alone (no data, no model):
    the same dict as the metric part of results.json."""
    run_dir = Path(run_dir)
    cfg = EvalConfig.parse(rundir.load_run_config(run_dir), where=str(run_dir / rundir.CONFIG))
    samples = rundir.read_records(run_dir / rundir.SAMPLES)
    return aggregate(samples, ks=cfg.ks, k=cfg.k, resamples=cfg.ci_resamples, seed=cfg.seed)
