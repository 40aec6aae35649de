"""Recommend for real: a catalog and one person's history in, ranked catalog items out.

The one path that `recllm recommend` and `recllm serve` both call (`Recommender.recommend_many`):

    titles ──match──▶ history ids ──(score mode: retriever top N, or given candidates)──▶ UserCase
           ──LLMRecommender (render, generate or score, ground; recllm.evaluate.llm)──▶ ranked ids
           ──(explain: one short generation per item, template `explain`)──▶ Recommendation

The evaluation's own recommender does the prompting and grounding, so a recommendation here is
what `recllm eval` would score for the same history. Items in the history are never
recommended: the grounder and the retriever drop them, constrained decoding excludes them, and
a last filter here guarantees it. A history whose titles all ground to nothing gets no model
call and an empty list, with the unmatched titles (the server answers 200; see docs/serve.md).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from recllm.data.schema import RecDataset, UserCase
from recllm.errors import RecllmError
from recllm.options import StrictOptions

EXPLAIN_TEMPLATE = "explain"
# Local engines that enforce constrained decoding: on by default there, since small models
# otherwise mostly repeat the history or invent titles (SmolLM2-135M: 1 usable item of 5 vs 5).
CONSTRAINING = ("transformers", "llamacpp", "vllm")
MAX_REASON_CHARS = 200
_NUMBERING = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*")


class BackendFailed(RecllmError):
    """The engine failed for this request (the server answers 502)."""


class RecommendSettings(StrictOptions):
    """How recommendations are made; fixed for the life of a server (the model loads once)."""

    model: str | None = Field(None, description="model alias, folder or hub id (default: smollm2-135m-instruct)")
    backend: str = Field("transformers", description="engine: transformers | llamacpp | vllm | openai | scripted")
    backend_options: dict[str, Any] = Field(default_factory=dict)
    template: str | None = Field(None, description="prompt template (default: generate; score-next in score mode; "
                                                   "rank-sequential with candidates)")
    mode: Literal["generate", "score"] = Field("generate", description="generate: the model writes a list; score: "
                                               "candidates ranked by the model's likelihood")
    constrain: bool | None = Field(None, description="decode only catalog titles (only the candidates when given); "
                                   "default: on for the engines that enforce it (transformers, llamacpp, vllm)")
    retriever: str = Field("itemknn", description="score mode: baseline whose top items are the candidates")
    n_candidates: int = Field(20, ge=1, le=1000, description="score mode: how many candidates the retriever gives")
    score_norm: Literal["sum", "mean", "pmi"] = Field("sum", description="score mode normalization")
    max_history: int = Field(50, ge=1, description="most recent history items shown to the model")
    max_tokens: int = Field(256, ge=1, description="answer length cap (tokens)")
    temperature: float = Field(0.0, ge=0.0)
    repetition_penalty: float = Field(1.0, gt=0)
    explain_tokens: int = Field(48, ge=1, le=512, description="--explain: length cap of each reason (tokens)")
    cache: bool = Field(True, description="response cache (not for the scripted backend)")


@dataclass(frozen=True)
class Query:
    """One person's request. `history` holds titles as people write them, `history_ids` catalog
    ids (both may be given; ids first). `candidates`: item ids to rank instead of the catalog."""

    history: tuple[str, ...] = ()
    history_ids: tuple[str, ...] = ()
    k: int = 10
    candidates: tuple[str, ...] | None = None
    explain: bool = False
    user: str = "user"  # names the request (logs, the scripted backend's answer keys)


@dataclass
class _Plan:
    query: Query
    history: list[dict[str, Any]]
    unmatched: list[str]
    case: UserCase | None = None
    candidates: tuple[str, ...] | None = None
    source: str = "catalog"
    result: dict[str, Any] | None = field(default=None)


class Recommender:
    """Catalog, matcher, engine and templates, loaded once; `recommend_many` answers a batch."""

    def __init__(self, dataset: RecDataset, settings: RecommendSettings | None = None, backend=None):
        from recllm.evaluate.llm import make_backend
        from recllm.prompting import load_template

        self.dataset, self.settings = dataset, settings or RecommendSettings()
        self.constrained = constrains(self.settings)
        counts = dataset.interactions["item_id"].value_counts()
        self.popularity = {str(k): float(v) for k, v in counts.items()}
        self._llms: dict[tuple[str, int], Any] = {}
        self._retriever = None
        self._search: tuple | None = None
        self.explain_template = load_template(EXPLAIN_TEMPLATE)
        main = "candidates" if self.settings.mode == "score" else "full"  # what most requests use
        self.backend = backend if backend is not None else make_backend(self._config(main, 10))
        from recllm.backends import backend_class
        self._has_model = "model" in backend_class(self.settings.backend).Options.model_fields
        first = self._llm(main, 10)
        self.matcher = first.grounder.matcher

    # ------------------------------------------------------------------ setup

    def _config(self, protocol: str, k: int):
        from recllm.evaluate.config import EvalConfig
        from recllm.models import DEFAULT_MODEL

        s = self.settings
        # A given template serves the protocol of its own mode; the other keeps its default.
        wants = "generate" if protocol == "full" else "rank"
        template = s.template if s.template and self._template_mode(s.template) == wants else None
        if template is None and protocol != "full":
            template = "score-next" if s.mode == "score" else "rank-sequential"
        constrain = "none" if not self.constrained or s.mode == "score" else (
            "catalog" if protocol == "full" else "candidates")
        return EvalConfig.parse({
            "dataset": self.dataset.name, "model": s.model or DEFAULT_MODEL, "backend": s.backend,
            "backend_options": s.backend_options, "template": template, "mode": s.mode,
            "protocol": "full" if protocol == "full" else "retrieved", "k": k,
            "score_norm": s.score_norm, "constrain": constrain, "max_tokens": s.max_tokens,
            "temperature": s.temperature, "repetition_penalty": s.repetition_penalty,
            "cache": s.cache, "baselines": [], "negatives": max(s.n_candidates - 1, 0)},
            where="recommend settings").resolved()

    @staticmethod
    def _template_mode(name: str) -> str:
        from recllm.prompting import load_template

        return load_template(name).header.mode

    def _llm(self, protocol: str, k: int):
        """The evaluation's LLMRecommender for a protocol; full-catalog lists get one copy per k
        (the prompt asks for k), sharing the template, engine and matcher."""
        from recllm.evaluate.llm import LLMRecommender

        key = (protocol, k if protocol == "full" else 0)
        if key in self._llms:
            return self._llms[key]
        base = next((v for (p, _), v in self._llms.items() if p == protocol), None)
        if base is None:
            llm = LLMRecommender(self._config(protocol, k), self.dataset, backend=self.backend,
                                 popularity=self.popularity)
            if self._llms:  # one matcher for the catalog, whichever protocol built it first
                llm.grounder = next(iter(self._llms.values())).grounder
        else:
            llm = object.__new__(type(base))  # a shallow copy (copy.copy would pickle the engine)
            llm.__dict__.update(base.__dict__, cfg=base.cfg.model_copy(update={"k": k}))
        self._llms[key] = llm
        return llm

    def retriever(self):
        """Score mode's first stage: a baseline fitted on every interaction of the catalog."""
        if self._retriever is None:
            from recllm.baselines import get_baseline, training_data

            if self.dataset.interactions.empty:
                raise RecllmError(f"score mode needs candidates, and the catalog {self.dataset.name!r} has no "
                                  "interactions to fit a retriever on", where="candidates",
                                  hint="pass candidates (item ids), or use mode generate")
            self._retriever = get_baseline(self.settings.retriever, training_data(self.dataset, []))
        return self._retriever

    @property
    def identity(self) -> dict[str, Any]:
        llm = next(iter(self._llms.values()))
        return {"catalog": self.dataset.name, "catalog_items": len(self.dataset.catalog), "mode": self.settings.mode,
                "model": str(llm.cfg.model) if self._has_model else None, "backend": self.settings.backend, "template": llm.template.name,
                "constrain": self.constrained and self.settings.mode == "generate"}

    def close(self) -> None:
        self.backend.close()

    # ------------------------------------------------------------------ history and search

    def ground_history(self, query: Query) -> tuple[list[dict[str, Any]], list[str]]:
        """(matched history entries in order, each item once; titles that matched nothing)."""
        catalog = self.dataset.catalog
        out, seen, unmatched = [], set(), []
        for i, item_id in enumerate(query.history_ids):
            if item_id not in catalog:
                raise RecllmError(f"item id {item_id!r} is not in the catalog", where=f"history_ids[{i}]",
                                  hint="use ids from /v1/items (or --history with titles)")
            if item_id not in seen:
                seen.add(item_id)
                out.append({"query": item_id, "item_id": item_id, "title": catalog[item_id],
                            "score": 100.0, "method": "id"})
        for title in query.history:
            found = self.matcher.match_one(title)
            if found is None:
                unmatched.append(title)
            elif found.item_id not in seen:
                seen.add(found.item_id)
                out.append({"query": title, "item_id": found.item_id, "title": found.title,
                            "score": round(float(found.score), 1), "method": found.method})
        return out, unmatched

    def search(self, text: str, limit: int = 10) -> list[dict[str, Any]]:
        """Catalog items for a search box: the matcher's own match first, then titles that
        contain the typed words (most popular first), then near spellings (rapidfuzz)."""
        from rapidfuzz import fuzz, process

        from recllm.grounding import match_key

        m, key = self.matcher, match_key(text)
        if not key:
            return []
        picked: list[int] = []
        if self._search is None:  # display-title keys, most popular item first
            order = sorted(range(len(m.ids)), key=lambda i: -m.popularity[i])
            keys = [match_key(t) for t in m.titles]
            self._search = (keys, [k.split() for k in keys], order, {v: i for i, v in enumerate(m.ids)})
        keys, key_words, by_pop, pos = self._search
        found = m.match_one(text)
        if found is not None:
            picked.append(pos[found.item_id])
        words = key.split()
        for i in by_pop:
            if len(picked) >= limit:
                break
            if i not in picked and all(any(kw.startswith(w) for kw in key_words[i]) for w in words):
                picked.append(i)
        if len(picked) < limit and len(key) >= 3:
            close = process.extract(key, keys, scorer=fuzz.partial_ratio, processor=None,
                                    score_cutoff=80, limit=limit * 3)
            for _, _, i in sorted(close, key=lambda c: (-c[1], -m.popularity[c[2]])):
                if len(picked) >= limit:
                    break
                if i not in picked:
                    picked.append(i)
        return [self.item(m.ids[i]) for i in picked[:limit]]

    def item(self, item_id: str) -> dict[str, Any]:
        from recllm.prompting.context import catalog_items

        it = catalog_items(self.dataset.catalog)[item_id]
        return {"item_id": item_id, "title": it.title, "year": it.year, "label": it.label}

    # ------------------------------------------------------------------ recommending

    def recommend(self, query: Query) -> dict[str, Any]:
        """One query; errors are raised (RecllmError, BackendFailed)."""
        out = self.recommend_many([query])[0]
        if isinstance(out, Exception):
            raise out
        return out

    def recommend_many(self, queries: Sequence[Query]) -> list[dict[str, Any] | RecllmError]:
        """A batch: one backend call for all the lists (grouped by protocol and k, in order),
        then one for all the reasons. Each query gets its recommendation or its own error."""
        from recllm.evaluate.llm import BatchStats

        t0 = time.perf_counter()
        plans: list[_Plan | RecllmError] = []
        for q in queries:
            try:
                plans.append(self._plan(q))
            except RecllmError as exc:
                plans.append(exc)
        live = [(i, p) for i, p in enumerate(plans) if isinstance(p, _Plan) and p.result is None]
        groups: dict[tuple[str, int], list[tuple[int, _Plan]]] = {}
        for i, p in live:
            protocol = "full" if p.candidates is None else "candidates"
            groups.setdefault((protocol, p.query.k), []).append((i, p))
        spans, requests = [], []
        for (protocol, k), members in groups.items():
            llm = self._llm(protocol, k)
            cands = [None if p.candidates is None else _candidate_set(p.candidates) for _, p in members]
            prep = llm.prepare([p.case for _, p in members], cands)
            spans.append((llm, members, prep, len(requests)))
            requests += prep.requests
        if requests:
            try:
                results = spans[0][0].generate(requests, BatchStats())
            except Exception as exc:  # the engine failed the whole batch
                failed = BackendFailed(f"the model failed: {_short(exc)}", where="backend")
                for _, members, _, _ in spans:
                    for i, _ in members:
                        plans[i] = failed
                spans = []
            for llm, members, prep, start in spans:
                records = llm.finish([p.case for _, p in members], prep,
                                     results[start:start + len(prep.requests)])
                for (i, p), rec in zip(members, records):
                    if rec.get("error"):
                        plans[i] = BackendFailed(f"the model failed: {rec['error']}", where="backend")
                    else:
                        p.result = self._result(p, rec)
        self._explain([p for p in plans if isinstance(p, _Plan) and p.query.explain and p.result])
        seconds = round(time.perf_counter() - t0, 3)
        out: list[dict[str, Any] | RecllmError] = []
        for p in plans:
            if isinstance(p, _Plan):
                p.result["seconds"] = seconds
                out.append(p.result)
            else:
                out.append(p)
        return out

    def _plan(self, q: Query) -> _Plan:
        n = len(self.dataset.catalog)
        if not 1 <= q.k <= n:
            raise RecllmError(f"k must be within 1..{n} (the catalog's size), got {q.k}", where="k")
        if not q.history and not q.history_ids:
            raise RecllmError("the history is empty", where="history",
                              hint="give at least one title (or history_ids)")
        history, unmatched = self.ground_history(q)
        plan = _Plan(q, history, unmatched)
        if not history:
            plan.result = self._envelope(plan, [], None, note="no history title matched the catalog; "
                                         "nothing to recommend from (see `unmatched`)")
            return plan
        ids = [h["item_id"] for h in history]
        shown = ids[-self.settings.max_history:]
        plan.case = UserCase(q.user, tuple(shown), (), (), target="", target_timestamp=0,
                             truncated=len(ids) - len(shown), seen=frozenset(ids))
        if q.candidates is not None:
            cands = []
            for i, c in enumerate(q.candidates):
                if c not in self.dataset.catalog:
                    raise RecllmError(f"item id {c!r} is not in the catalog", where=f"candidates[{i}]")
                if c not in plan.case.seen and c not in cands:
                    cands.append(c)
            if not cands:
                raise RecllmError("every candidate is in the history", where="candidates",
                                  hint="give candidates the person has not had")
            plan.candidates, plan.source = tuple(cands), "given candidates"
        elif self.settings.mode == "score":
            top = self.retriever().rank([plan.case], self.settings.n_candidates, exclude_history=True)[0]
            if not top:
                raise RecllmError("the retriever found no candidates for this history", where="history")
            plan.candidates, plan.source = tuple(top), f"retriever {self.settings.retriever}"
        return plan

    def _result(self, plan: _Plan, rec: dict[str, Any]) -> dict[str, Any]:
        seen, k = plan.case.seen, plan.query.k
        ranked = [i for i in rec["ranked"] if i not in seen][:k]
        scores = rec.get("scores") or {}
        written = {}
        for title, item_id in zip(rec.get("parsed") or [], rec.get("matched") or []):
            if item_id is not None:
                written.setdefault(item_id, title)
        items = []
        for rank, item_id in enumerate(ranked, 1):
            row = {"rank": rank, **self.item(item_id), "score": scores.get(item_id), "reason": None}
            if self.settings.mode == "score":
                row["grounding"] = {"method": "scored", "source": plan.source}
            else:
                text = written.get(item_id)
                found = self.matcher.match_one(text) if text else None
                same = found is not None and found.item_id == item_id
                row["grounding"] = {"method": found.method if same else "candidates", "written": text,
                                    "similarity": round(float(found.score), 1) if same else None}
            items.append(row)
        raw = rec.get("raw") or []
        return self._envelope(plan, items, rec.get("validity"), raw=raw[0] if raw else None)

    def _envelope(self, plan: _Plan, items: list, validity: dict | None, *, raw: str | None = None,
                  note: str | None = None) -> dict[str, Any]:
        out = {"items": items, "k": plan.query.k,
               "history": {"matched": plan.history, "unmatched": plan.unmatched},
               "validity": validity, "candidates": {"source": plan.source, "count": len(plan.candidates or ())},
               "raw": raw, **self.identity}
        if note:
            out["note"] = note
        return out

    def _explain(self, plans: list[_Plan]) -> None:
        """One short reason per recommended item, in one backend call; a failure leaves the
        reasons empty and says why (the list itself stands)."""
        if not plans:
            return
        from recllm.backends import SamplingParams
        from recllm.prompting import render_prompt

        params = SamplingParams(max_tokens=self.settings.explain_tokens, temperature=0.0)
        requests, slots = [], []
        for p in plans:
            for row in p.result["items"]:
                r = render_prompt(self.explain_template, p.case, self.dataset, k=1, candidates=[row["item_id"]])
                requests.append(r.to_request(params, key=f"{p.query.user}:why:{row['item_id']}"))
                slots.append(row)
        if not requests:
            return
        try:
            results = self.backend.generate(requests)
        except Exception as exc:
            for p in plans:
                p.result["explain_error"] = _short(exc)
            return
        for row, res in zip(slots, results):
            row["reason"] = None if res.error else first_line(res.text)


def constrains(settings: RecommendSettings) -> bool:
    """Whether generation is constrained: as asked, else on for the engines that enforce it."""
    if settings.constrain is not None:
        return settings.constrain
    from recllm.backends import BACKENDS

    return BACKENDS.canonical(settings.backend) in CONSTRAINING


def first_line(text: str) -> str | None:
    """A reason as shown: the first non-empty line, without list numbering or quotes, capped."""
    for line in (text or "").splitlines():
        line = _NUMBERING.sub("", line).strip().strip('"').strip()
        if line:
            return line[:MAX_REASON_CHARS]
    return None


def _candidate_set(items: tuple[str, ...]):
    from recllm.evaluate.candidates import CandidateSet

    return CandidateSet(items, None)


def _short(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, RecllmError) else f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0][:300] if text else type(exc).__name__


def load_catalog(source: str, **options: Any) -> RecDataset:
    """A named dataset, a dataset folder or file (`load_dataset`, loader options), or a table of
    items alone (id, title, optional year/genres/description columns): a catalog with no
    interactions (generate mode, or score mode with given candidates)."""
    from recllm.data import load_dataset

    path = Path(str(source)).expanduser()
    if path.is_file():
        catalog_only = _catalog_only(path, options)
        if catalog_only is not None:
            return catalog_only
    return load_dataset(source, **options)


def _catalog_only(path: Path, options: dict[str, Any]) -> RecDataset | None:
    from recllm.data.build import make_interactions
    from recllm.data.options import LoadOptions
    from recllm.data.schema import plural_noun
    from recllm.data.table import TABLE_SUFFIXES, USER_COLS, _catalog_table, pick, read_table

    if path.suffix.lower() not in TABLE_SUFFIXES:
        return None
    opts = LoadOptions.parse(options, where="catalog options")
    if opts.user_col:
        return None  # an interactions table: load_dataset reads it
    frame = read_table(path, opts)
    if pick(frame, None, USER_COLS, "user", path, required=False):
        return None
    domain = opts.domain or "item"
    catalog, notes = _catalog_table(path, opts, "item_id", domain, frame)  # read once
    inter = make_interactions([], [], None, None).drop(columns="_order")
    return RecDataset(path.stem, inter, catalog, domain=domain,
                      domain_plural=opts.domain_plural or plural_noun(domain), source=str(path),
                      meta={"catalog_only": True, **notes})
