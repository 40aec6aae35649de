"""The LLM as a recommender under a protocol: render -> generate (batched) -> parse -> match.

One object per run holds the template, the (cached) backend and the matcher. `prepare` renders
a batch of users, `generate` sends it, `finish` turns the answers into per-user records; none
of them sees targets: the UserCase passed to the template carries one, but templates only read
history (see recllm.prompting.context), and nothing here reads `case.target`. No retries
conditioned on the answer, no padding.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from recllm.data.schema import RecDataset, UserCase
from recllm.errors import RecllmError
from recllm.evaluate import scoring
from recllm.evaluate.candidates import CandidateSet, merge_rankings, shuffled
from recllm.evaluate.config import EvalConfig
from recllm.evaluate.grounder import Grounder
from recllm.requests import ask_key


@dataclass
class Prepared:
    """Rendered requests of one batch (picklable: it may come back from a worker process)."""

    asks: int
    showings: list[list[list[str]]]
    requests: list[Any] = field(default_factory=list)
    slots: list[tuple[int, int]] = field(default_factory=list)   # (user, ask) per request
    prompts: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class BatchStats:
    seconds_render: float = 0.0
    seconds_generate: float = 0.0
    seconds_ground: float = 0.0
    cached: int = 0
    requests: int = 0


class LLMRecommender:
    """Template + backend + grounding for one run (see module docstring)."""

    def __init__(self, cfg: EvalConfig, dataset: RecDataset, backend=None,
                 popularity: dict[str, float] | None = None, demos: dict[str, tuple] | None = None,
                 demo_domain: tuple[str, str] | None = None):
        from recllm.backends import SamplingParams
        from recllm.prompting import load_template

        self.cfg, self.dataset = cfg, dataset
        self.template = load_template(cfg.template)
        mode, self.protocol = self.template.header.mode, cfg.protocol_spec
        wants = self.protocol.template_mode
        if mode != wants:
            raise RecllmError(
                f"template {self.template.name!r} is a {mode!r} template but protocol "
                f"{cfg.protocol!r} needs a {wants!r} one", where="template",
                hint="use e.g. 'generate' for full, 'rank-sequential' for candidates/retrieved")
        if cfg.demos and "demos" not in self.template.variables:
            raise RecllmError(f"template {self.template.name!r} does not show demonstrations, "
                              f"so demos_from: {cfg.demos_from} would change nothing",
                              where="template", hint="use template cross-domain (generate) or "
                              "score-cross-domain (mode: score), or drop demos_from")
        self.demos, self.demo_domain = demos or {}, demo_domain
        from recllm.models import MODELS
        spec = MODELS.get(str(cfg.model))
        if spec is not None and not spec.instruct and self.template.header.chat:
            raise RecllmError(
                f"{cfg.model!r} is a base model (no chat template) but template "
                f"{self.template.name!r} writes chat messages", where="template",
                hint="use a completion-style template, e.g. --template completion")
        self.backend = backend if backend is not None else make_backend(cfg)
        self.params = SamplingParams(max_tokens=cfg.max_tokens, temperature=cfg.temperature,
                                     top_p=cfg.top_p, seed=cfg.seed if cfg.temperature > 0 else None,
                                     repetition_penalty=cfg.repetition_penalty,
                                     frequency_penalty=cfg.frequency_penalty, presence_penalty=cfg.presence_penalty)
        self.grounder = Grounder(dataset.catalog, popularity=popularity, **cfg.matcher)
        self.started = False  # a backend exception before any success is a setup error
        self._catalog_labels: list[str] | None = None  # constrain: catalog, built once

    def identity(self) -> dict[str, Any]:
        return {"model": system_label(self.cfg), "backend": self.backend.identity(),
                "template": self.template.name, "template_hash": self.template.sha256,
                "template_mode": self.template.header.mode}

    @property
    def needs_engine_to_render(self) -> bool:
        """A token budget counts with the engine's own tokenizer."""
        return bool(self.cfg.max_prompt_tokens)

    def without_backend(self) -> "LLMRecommender":
        """A copy for worker processes: template, parameters and matcher, no engine (the
        engine stays in the main process, which alone generates)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__, backend=None)
        return clone

    def __getstate__(self) -> dict[str, Any]:
        # A compiled template holds generated code objects: workers compile it again.
        if self.backend is not None:
            raise TypeError("an LLMRecommender with its engine cannot be pickled; use without_backend()")
        return {**self.__dict__, "template": None, "_template_sha": self.template.sha256}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from recllm.prompting import load_template

        sha = state.pop("_template_sha")
        self.__dict__.update(state)
        self.template = load_template(self.cfg.template)
        if self.template.sha256 != sha:
            raise RecllmError("the template changed on disk while the run started its workers",
                              where=f"template {self.cfg.template!r}", hint="run again")

    def _constraint(self, case: UserCase, rendered) -> dict[str, Any] | None:
        """What the answer may name (`constrain`): every catalog title, or the shown
        candidates, as the prompt labels them; the user's seen items are left out."""
        if self.cfg.constrain == "none":
            return None
        from recllm.prompting.context import catalog_items

        items = catalog_items(self.dataset.catalog)
        if self.cfg.constrain == "catalog":
            if self._catalog_labels is None:
                self._catalog_labels = [item.label for item in items.values()]
            titles = self._catalog_labels
        else:
            titles = [item.label for item in rendered.variables["candidates"]]
        seen = [items[i].label for i in sorted(case.seen) if i in items] \
            if self.protocol.drops_seen and self.cfg.exclude_history else []
        return {"titles": titles, "max_items": rendered.k, "exclude": seen,
                "format": "numbered" if rendered.output == "numbered_list" else "lines"}

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed run must share with the one it continues: the identity, except that
        a backend replaying saved answers (`fingerprint()`) is the same source as it grows."""
        own = getattr(self.backend, "fingerprint", None)
        return {**self.identity(), "backend": own() if own else self.backend.identity()}

    def _render(self, case: UserCase, candidates: Sequence[str]):
        from recllm.prompting import render_prompt

        count = self.backend.count_tokens if self.cfg.max_prompt_tokens else None
        k = len(candidates) if candidates else self.cfg.k
        return render_prompt(self.template, case, self.dataset, k=k, candidates=candidates,
                             domain=self.cfg.domain, demos=self.demos.get(case.user_id, ()),
                             demo_domain=self.demo_domain, max_history=None, max_prompt_tokens=self.cfg.max_prompt_tokens,
                             count_tokens=count)

    def prepare(self, cases: Sequence[UserCase], cands: Sequence[CandidateSet | None]
                ) -> Prepared:
        """Render every ask of every user (CPU only; may run in a worker process)."""
        from recllm.prompting import PromptTooLong

        asks = 1 + self.protocol.reasks(self.cfg)
        t0 = time.perf_counter()
        # showings[u][a] = candidate order of ask a for user u (ask 0 is the protocol's order)
        showings = [[list(c.items) if c else [] for _ in range(asks)] for c in cands]
        for u, (case, c) in enumerate(zip(cases, cands)):
            for a in range(1, asks):
                showings[u][a] = shuffled(sorted(c.items), self.cfg.seed, case.user_id, a)
        prep = Prepared(asks=asks, showings=showings)
        for u, case in enumerate(cases):
            rendered = []
            try:
                rendered = [self._render(case, showings[u][a]) for a in range(asks)]
            except PromptTooLong as exc:
                prep.errors[u] = f"prompt too long: {exc.message}"
                continue
            first = rendered[0]
            prep.prompts[u] = {
                "prompt": list(first.messages) if first.messages is not None else first.prompt,
                "history_used": first.history_used, "history_cut": first.history_cut}
            for a, r in enumerate(rendered):
                key = ask_key(case.user_id, a)
                if self.cfg.mode == "generate":
                    prep.requests.append(r.to_request(self.params, key=key,
                                                      structured=self._constraint(case, r)))
                    prep.slots.append((u, a))
                    continue
                prep.requests.append(scoring.score_request(r, key))
                prep.slots.append((u, a))
                if self.cfg.score_norm == "pmi":  # the same candidates, nothing in the history
                    prior = self._render(scoring.without_history(case), showings[u][a])
                    prep.requests.append(scoring.score_request(prior, key + "#prior"))
                    prep.slots.append((u, ("prior", a)))
        prep.seconds = time.perf_counter() - t0
        return prep

    def generate(self, requests: Sequence[Any], stats: BatchStats) -> list[Any]:
        """Send a batch to the backend (in the main process: it holds the model)."""
        t0 = time.perf_counter()
        results = self._generate(list(requests)) if requests else []
        stats.seconds_generate += time.perf_counter() - t0
        stats.requests += len(requests)
        stats.cached += sum(1 for r in results if r.cached)
        return results

    def finish(self, cases: Sequence[UserCase], prep: Prepared, results: Sequence[Any]
               ) -> list[dict[str, Any]]:
        """Ground each answer: one record per user (CPU only; may run in a worker)."""
        answers = dict(zip(prep.slots, results))
        return [self._record(case, u, prep, answers) for u, case in enumerate(cases)]

    def _generate(self, requests):
        from recllm.backends import GenerationResult, ScoreResult

        try:
            results = self.backend.score(requests) if self.cfg.mode == "score" \
                else self.backend.generate(requests)
        except (RecllmError, KeyboardInterrupt):
            raise
        except Exception as exc:  # an engine crash for this batch: record it, go on
            if not self.started:
                raise
            msg = f"{type(exc).__name__}: {exc}"
            if self.cfg.mode == "score":
                return [ScoreResult([], [], error=msg) for _ in requests]
            return [GenerationResult(texts=[], error=msg) for _ in requests]
        if len(results) != len(requests):
            raise RecllmError(f"backend returned {len(results)} results for {len(requests)} "
                              "requests", where=f"backend {self.backend.name!r}")
        if any(r.error is None for r in results):
            self.started = True
        return results

    def _record(self, case: UserCase, u: int, prep: Prepared, answers) -> dict[str, Any]:
        showings = prep.showings[u]
        if u in prep.errors:
            return {"kind": "llm", "ranked": [], "error": prep.errors[u], "prompt": None,
                    "raw": [], "validity": self.grounder.empty_validity(
                        error=True, k=self._k(showings[0]))}
        if self.cfg.mode == "score":
            priors = [answers.get((u, ("prior", a))) for a in range(prep.asks)]
            rec = scoring.record(showings, [answers[u, a] for a in range(prep.asks)], priors,
                                 self.cfg.score_norm)
            rankings = rec.pop("_rankings")
            return self._merged({"kind": "llm", **prep.prompts[u], **rec}, showings, rankings)
        rec: dict[str, Any] = {"kind": "llm", **prep.prompts[u], "prompt_tokens": 0,
                               "completion_tokens": 0, "raw": [], "error": None}
        rankings, validity, parsed, matched = [], None, None, None
        for a in range(prep.asks):
            result = answers[u, a]
            rec["raw"].append(result.text)
            rec["prompt_tokens"] += result.prompt_tokens or 0
            rec["completion_tokens"] += result.completion_tokens or 0
            if result.error:
                rec["error"] = result.error
                rankings.append([])
                continue
            g = self.grounder.ground(result.text, k=self._k(showings[a]), history=case.seen,
                                     candidates=showings[a] or None,
                                     # candidates are ranked as shown (as the baselines do)
                                     exclude_history=self.cfg.exclude_history and self.protocol.drops_seen)
            rankings.append(g.ranked)
            if a == 0:
                validity, parsed, matched = g.validity, g.parsed, g.matched
        if validity is None:  # the first ask failed
            validity = self.grounder.empty_validity(error=True, k=self._k(showings[0]))
        else:
            validity = {**validity, "error": int(bool(rec["error"]))}
        rec.update(parsed=parsed or [], matched=matched or [], validity=validity)
        return self._merged(rec, showings, rankings)

    def _merged(self, rec: dict[str, Any], showings: list[list[str]],
                rankings: list[list[str]]) -> dict[str, Any]:
        """The record's final ranking: the one ask's, or the re-asks merged."""
        rec["ranked"] = merge_rankings(rankings, self.cfg.reasks_merge) if len(rankings) > 1 \
            else rankings[0]
        if len(rankings) > 1:
            rec["asks"] = [{"candidates": s, "ranked": r} for s, r in zip(showings, rankings)]
        return rec

    def _k(self, showing: Sequence[str]) -> int:
        return len(showing) if showing else self.cfg.k

    def close(self) -> None:
        self.backend.close()


def system_label(cfg: EvalConfig) -> str:
    """The LLM's name in samples, tables and results.json: the configured model, except for
    answers replayed by the scripted backend, which are labelled by what served them: a
    previous run's model + " (rescored)", else the model named in the config, else the file."""
    if cfg.backend != "scripted" or not cfg.backend_options.get("path"):
        return str(cfg.model)
    from pathlib import Path

    import yaml

    path = Path(str(cfg.backend_options["path"]))
    source = path.parent / "config.yaml"
    try:
        model = (yaml.safe_load(source.read_text(encoding="utf-8")) or {}).get("model")
    except (OSError, yaml.YAMLError, AttributeError):
        model = None
    if isinstance(model, str) and model:
        return f"{model} (rescored)"
    return str(cfg.model) if "model" in cfg.model_fields_set else f"scripted:{path.name}"


def make_backend(cfg: EvalConfig):
    """The configured engine, wrapped in the response cache unless `cache: false`."""
    from recllm.backends import backend_class, get_backend

    name = cfg.backend or "transformers"
    options = dict(cfg.backend_options)
    if "model" in backend_class(name).Options.model_fields and cfg.model is not None:
        options.setdefault("model", cfg.model)
    backend = get_backend(name, **options)
    if cfg.cache and name != "scripted":
        from recllm.cache import CachedBackend
        backend = CachedBackend(backend)
    return backend
