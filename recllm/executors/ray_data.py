"""`executor: ray`: the run's requests become a Ray Dataset, answered in `map_batches` actors.

One engine per actor (the config's backend, built in the actor: transformers or llamacpp on
CPU, any registered engine; vLLM through `ray.data.llm` where vLLM is installed). The driver
renders every pending user, answers what the response cache already holds, streams the rest
through Ray, and grounds, scores and appends each batch of users in plan order as soon as all
its answers are back, so samples.jsonl is the local run's byte for byte and a killed run
resumes like any other. An actor that dies is restarted by Ray Data and its block retried
(max_restarts / max_task_retries = -1, Ray Data's default for actor pools); each answer is
taken once, by request index, so no user is lost or written twice.
"""

from __future__ import annotations

import importlib
import os
import pickle
import time
from typing import Any

import numpy as np

from recllm.errors import RecllmError
from recllm.options import StrictOptions


class RayOptions(StrictOptions):
    """`executor_options` of `executor: ray`."""

    actors: int = 1               # engines, one per actor
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    address: str | None = None    # a running cluster; default RAY_ADDRESS, else a local one
    num_cpus: int | None = None   # size of a local cluster (default: all cores)
    window: int = 50_000          # users rendered and sent per Dataset (bounds driver memory)
    batch_size: int | None = None  # requests per actor call (default: the run's batch_size)
    # "module:Class" that the actors build instead of the config's backend (a plugin engine, a
    # test double), with these options over backend_options; the driver keeps the config's
    # backend for identity (cache keys), token counts and the results' "model"
    engine: str | None = None
    engine_options: dict[str, Any] = {}


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RecllmError("--executor ray needs Ray Data", where="executor",
                          hint="pip install 'recllm[ray]' (or use --executor local)") from None
    return ray


def connect(opts: RayOptions) -> None:
    """Join the cluster at `address` / RAY_ADDRESS, or start a local one (once per process)."""
    ray = import_ray()
    if ray.is_initialized():
        return
    address = opts.address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=opts.num_cpus, **kwargs)


def engine_spec(cfg, opts: RayOptions) -> tuple[str, dict[str, Any]]:
    """(engine name or "module:Class", options) as make_backend would build it, uncached."""
    from recllm.backends import backend_class

    name = opts.engine or cfg.backend or "transformers"
    options = dict(cfg.backend_options) | (opts.engine_options if opts.engine else {})
    cls = _engine_class(name) if ":" in name else backend_class(name)
    if "model" in cls.Options.model_fields and cfg.model is not None:
        options.setdefault("model", cfg.model)
    return name, options


def _engine_class(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


class EngineActor:
    """A map_batches callable class: builds its engine once, answers batches of pickled
    requests. An engine exception is that batch's recorded error, as in a local run."""

    def __init__(self, name: str, options: dict[str, Any], score: bool):
        if ":" in name:
            cls = _engine_class(name)
            self.engine = cls(cls.Options.parse(options, where=f"engine {name}"))
        else:
            from recllm.backends import get_backend
            self.engine = get_backend(name, **options)
        self.score = score

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from recllm.backends import GenerationResult, ScoreResult

        requests = [pickle.loads(b) for b in batch["request"]]
        try:
            results = self.engine.score(requests) if self.score else self.engine.generate(requests)
        except RecllmError as exc:
            results = self._failed(requests, exc.message, ScoreResult, GenerationResult)
        except Exception as exc:  # noqa: BLE001 -- an engine crash: this batch's error only
            results = self._failed(requests, f"{type(exc).__name__}: {exc}", ScoreResult, GenerationResult)
        out = np.empty(len(results), dtype=object)
        out[:] = [pickle.dumps(r) for r in results]
        return {"i": batch["i"], "result": out}

    def _failed(self, requests, msg, score_cls, gen_cls):
        return [score_cls([], [], error=msg) if self.score else gen_cls([], error=msg) for _ in requests]


def answer(cfg, plan, order, llm, pending, stats, writer, events):
    """The `_answer` loop of recllm.evaluate.runner, generating through Ray Data."""
    from recllm.evaluate.llm import system_label
    from recllm.evaluate.pipeline import score_records

    opts = RayOptions.parse(cfg.executor_options, where="executor_options")
    connect(opts)
    label, step = system_label(cfg), cfg.batch_size
    for w in range(0, len(pending), opts.window):
        window = pending[w:w + opts.window]
        chunks = []  # (users, Prepared, first request index)
        requests: list[Any] = []
        for lo in range(0, len(window), step):
            batch = window[lo:lo + step]
            prep = llm.prepare(batch, plan.candidates_of(batch))
            stats.seconds_render += prep.seconds
            chunks.append((batch, prep, len(requests)))
            requests.extend(prep.requests)
        results: list[Any] = [None] * len(requests)
        t0, flushed = time.perf_counter(), 0
        last = t0

        def flush() -> None:
            nonlocal flushed, last
            while flushed < len(chunks):
                batch, prep, at = chunks[flushed]
                mine = results[at:at + len(prep.requests)]
                if any(r is None for r in mine):
                    return
                t1 = time.perf_counter()
                records = llm.finish(batch, prep, mine)
                writer.write_lines(score_records(cfg, plan, batch, order, records, label))
                stats.seconds_ground += time.perf_counter() - t1
                now = time.perf_counter()
                events.write([{"users": len(batch), "executor": "ray", "seconds": round(now - last, 4),
                               "generate_seconds": round(t1 - last, 4),  # waiting on Ray
                               "cached": sum(1 for r in mine if r.cached), "requests": len(mine)}])
                last = now
                flushed += 1

        for i, result in _stream(cfg, opts, llm, requests, results):
            results[i] = result
            flush()
        flush()
        stats.seconds_generate += time.perf_counter() - t0
        stats.requests += len(requests)
        stats.cached += sum(1 for r in results if r is not None and r.cached)
        if flushed < len(chunks):  # cannot happen: every request gets one answer
            raise RecllmError(f"{len(chunks) - flushed} batches got no answers from Ray",
                              where="executor ray", hint="rerun with --resume")
    return stats


def _stream(cfg, opts: RayOptions, llm, requests: list[Any], results: list[Any]):
    """(request index, result) pairs: cache hits first, then Ray's answers as they arrive."""
    import dataclasses

    from recllm.cache import CachedBackend, cache_key, cacheable

    score = cfg.mode == "score"
    backend = llm.backend
    cached = isinstance(backend, CachedBackend) and not score  # score mode: no cache via Ray
    keys: list[str | None] = [None] * len(requests)
    if cached:
        identity = backend.inner.identity()
        keys = [cache_key(identity, r) if cacheable(r) else None for r in requests]
        found = backend.cache.get_many([k for k in keys if k])
        for i, k in enumerate(keys):
            if k in found:
                yield i, dataclasses.replace(found[k], cached=True, seconds=0.0)
    todo = [i for i in range(len(requests)) if results[i] is None]  # the caller stored the hits
    if not todo:
        return
    ray = import_ray()
    rows = [{"i": i, "request": pickle.dumps(requests[i])} for i in todo]
    name, options = engine_spec(cfg, opts)
    batch = opts.batch_size or cfg.batch_size
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = bool(cfg.progress)
    if name == "vllm":
        ds = _vllm(ray.data.from_items(rows), options, opts, batch)
    else:
        # blocks made here, in the driver (a repartition would need CPUs the actors hold);
        # a block is what an actor's death retries
        ds = ray.data.from_items(rows, override_num_blocks=min(1000, -(-len(rows) // batch)))
        ds = ds.map_batches(
            EngineActor, fn_constructor_kwargs={"name": name, "options": options, "score": score},
            batch_size=batch, compute=ray.data.ActorPoolStrategy(size=opts.actors),
            num_cpus=opts.cpus_per_actor, num_gpus=opts.gpus_per_actor or None)
    try:
        for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for i, blob in zip(out["i"], out["result"]):
                result = pickle.loads(blob)
                i = int(i)
                if results[i] is not None:  # a retried block answered twice: keep the first
                    continue
                if cached and keys[i] and result.error is None:
                    backend.cache.put(keys[i], backend.inner.identity(), requests[i], result)
                yield i, result
    except ray.exceptions.RayError as exc:
        first = str(exc).strip().splitlines()
        raise RecllmError(f"Ray could not answer the requests: {first[-1] if first else exc}",
                          where="executor ray", hint="see the actor's log above; finished "
                          "users are kept, rerun with --resume") from None


def _vllm(ds, options: dict[str, Any], opts: RayOptions, batch: int):
    """vLLM engines through ray.data.llm (where vLLM is installed; not run on the CPU machine
    this was written on): the rows' chat messages and sampling parameters in, text out."""
    from ray.data import llm as ray_llm

    from recllm.backends import GenerationResult
    from recllm.models import resolve

    build = getattr(ray_llm, "build_processor", None) or ray_llm.build_llm_processor
    model = resolve(str(options.get("model")), fetch=True).path
    engine_kwargs = {k: v for k, v in options.items() if k not in ("model", "batch_size")}
    config = ray_llm.vLLMEngineProcessorConfig(model_source=str(model), engine_kwargs=engine_kwargs,
                                               concurrency=opts.actors, batch_size=batch)

    def pre(row):
        request = pickle.loads(row["request"])
        p = request.params
        out = {"i": row["i"], "sampling_params": {"max_tokens": p.max_tokens, "temperature": p.temperature,
                                                  "top_p": p.top_p, "seed": p.seed,
                                                  "repetition_penalty": p.repetition_penalty,
                                                  "stop": list(p.stop) or None}}
        if request.messages is not None:
            out["messages"] = [dict(m) for m in request.messages]
        else:
            out["prompt"] = request.prompt
        return out

    def post(row):
        result = GenerationResult([row["generated_text"]],
                                  prompt_tokens=row.get("num_input_tokens"),
                                  completion_tokens=row.get("num_generated_tokens"))
        return {"i": row["i"], "result": pickle.dumps(result)}

    return build(config, preprocess=pre, postprocess=post)(ds)
