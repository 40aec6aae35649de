"""The evaluation config: one typed model, YAML file < command-line flags, sweeps by lists.

Any of SWEEP_KEYS may be a list in the file (or a comma list on the command line); the run
then expands into the cross product, one sub-run each. The config hash covers everything that
changes what is computed, and nothing that does not (output folder, batch size, limits, cache).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from recllm.errors import RecllmError
from recllm.options import StrictOptions

SWEEP_KEYS = ("protocol", "template", "model", "max_history", "negatives", "mode", "demos",
              "train_fraction")
# Keys that do not change any sample, so a resumed run may change them.
UNHASHED = ("output", "limit", "batch_size", "workers", "cache", "progress", "name",
            "retry_failed", "export_requests", "import_answers", "executor", "executor_options")
# Keys added after runs were first written: hashed only when not at these neutral values, so
# the config hash (and resuming) of runs made before they existed is unchanged.
NEUTRAL_WHEN_ADDED = {"repetition_penalty": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0,
                      "mode": "generate", "score_norm": "mean", "constrain": "none",
                      "domain": None, "demos_from": None, "demos": 0, "demo_history": 5,
                      "demos_options": {}, "train_fraction": 1.0, "train_users": None,
                      "order": "auto", "order_seed": 0}
# Old key -> new key: still accepted, with a note. (`bootstrap` meant re-asks with shuffled
# candidates, not the statistical bootstrap that the intervals use.)
RENAMED = {"bootstrap": "reasks", "bootstrap_merge": "reasks_merge"}
Modes = Literal["generate", "score"]


class EvalConfig(StrictOptions):
    """Everything one evaluation run needs. See the README section "Config keys"."""

    name: str | None = None
    # data
    dataset: str = "ml-100k"
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    split: Literal["test", "valid"] = "test"
    users: int | str | None = 50          # sample size, or a file of user ids; None = all
    limit: int | None = None              # stop after this many users (resume later)
    min_history: int = 1
    max_history: int | None | list[int | None] = 50
    seed: int = 0
    # the order a split reads each user's items in: time, or (datasets without timestamps: auto)
    # a seeded synthetic order, by order_seed, not seed, so changing seed keeps the split
    order: Literal["auto", "time", "random"] = "auto"
    order_seed: int = 0
    # protocol
    protocol: str | list[str] = "full"
    k: int = 10                           # how many items the model is asked for
    ks: list[int] = Field(default_factory=lambda: [1, 5, 10, 20])
    negatives: int | list[int] = 19
    negative_sampling: Literal["uniform", "popularity"] = "uniform"
    negatives_exclude_seen: bool = True   # false = LLMRank's sampler (any item but the target)
    retriever: str = "popularity"         # the baseline whose top items are the candidates
    shuffle_candidates: bool = True
    reasks: int = Field(0, ge=0)          # extra asks with re-shuffled candidates
    reasks_merge: Literal["mrr", "borda"] = "mrr"
    exclude_history: bool = True
    # model
    model: str | None | list[str | None] = "smollm2-135m-instruct"
    backend: str | None = None
    backend_options: dict[str, Any] = Field(default_factory=dict)
    template: str | None | list[str | None] = None
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    # Repetition control (recllm.backends.SamplingParams): > 1 / > 0 discourage echoing the
    # prompt's history titles and looping on one title; 1 / 0 = off.
    repetition_penalty: float = Field(1.0, gt=0)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    # score: rank the candidates by the model's likelihood of each as the answer's first line
    # (recllm.evaluate.scoring); generate: parse the list the model writes.
    # A list sweeps; a mapping gives each protocol its own ({full: generate, candidates: score}).
    mode: Modes | list[Modes] | dict[str, Modes] = "generate"
    score_norm: Literal["sum", "mean", "pmi"] = "mean"
    # catalog: the model can only write catalog titles; candidates: only the shown ones
    # (recllm.backends.constrain; transformers, vLLM and llama.cpp enforce it)
    constrain: Literal["none", "catalog", "candidates"] = "none"
    max_prompt_tokens: int | None = None
    matcher: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = 8
    workers: int = 1                      # processes for render/parse/match/score (POSIX fork)
    cache: bool = True
    # transfer: the target domain's noun (None: the dataset's own), other users' (history ->
    # next) examples from a source dataset in the prompt (recllm.evaluate.demos), and a
    # cold-start regime for the baselines (seeded share / cap of the training data)
    domain: str | None = None
    demos_from: str | None = None
    demos_options: dict[str, Any] = Field(default_factory=dict)  # load options of demos_from
    demos: int | list[int] = 0
    demo_history: int = Field(5, ge=1)    # items shown per demonstration before its next item
    train_fraction: float | list[float] = 1.0
    train_users: int | None = Field(None, ge=1)
    # baselines and statistics
    baselines: list[str] = Field(default_factory=lambda: ["random", "popularity", "itemknn"])
    baseline_options: dict[str, dict[str, Any]] = Field(default_factory=dict)  # {name: {...}}
    ci_resamples: int = 1000
    # run
    output: str | None = None
    progress: bool = True
    retry_failed: bool = False
    # scale (docs/scale.md): write the requests as an OpenAI batch file and stop, or answer
    # them from a batch output file; generate in Ray Data actors instead of this process
    export_requests: str | None = None
    import_answers: str | None = None
    executor: Literal["local", "ray"] = "local"
    executor_options: dict[str, Any] = Field(default_factory=dict)  # recllm.executors.RayOptions

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """Old key names still work (a note says the new one); `knn_neighbors: N` is
        `baseline_options: {itemknn: {neighbors: N}}`."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in RENAMED.items():
            if old in data:
                _note(f"config key {old!r} is now {new!r}")
                data.setdefault(new, data.pop(old))
        if "knn_neighbors" in data:
            _note("config key 'knn_neighbors' is now baseline_options: {itemknn: {neighbors: N}}")
            opts = {k: dict(v) for k, v in (data.get("baseline_options") or {}).items()}
            opts.setdefault("itemknn", {}).setdefault("neighbors", data.pop("knn_neighbors"))
            data["baseline_options"] = opts
        return data

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, v: Any) -> Any:
        from recllm.evaluate.protocols import get_protocol
        for name in v if isinstance(v, list) else [v]:
            try:
                get_protocol(name)
            except RecllmError as exc:
                raise ValueError(exc.message) from None
        return v

    @field_validator("baseline_options", "baselines", "retriever")
    @classmethod
    def _baseline_names(cls, v: Any) -> Any:
        from recllm.baselines import BASELINES
        from recllm.errors import did_you_mean
        for name in [v] if isinstance(v, str) else v:
            if name not in BASELINES:
                raise ValueError(f"unknown baseline {name!r}{did_you_mean(name, BASELINES)}; "
                                 f"known: {', '.join(BASELINES.names())}")
        return v

    @field_validator("train_fraction")
    @classmethod
    def _fraction(cls, v: Any) -> Any:
        if any(not 0 < f <= 1 for f in (v if isinstance(v, list) else [v])):
            raise ValueError("train_fraction must be in (0, 1], e.g. [1.0, 0.1, 0.01]")
        return v

    @model_validator(mode="after")
    def _demos(self) -> "EvalConfig":
        counts = self.demos if isinstance(self.demos, list) else [self.demos]
        if any(n < 0 for n in counts):
            raise ValueError("demos must be 0 or more (examples per prompt)")
        if any(counts) and not self.demos_from:
            raise ValueError("demos: N needs demos_from: DATASET (whose users the examples come from)")
        if isinstance(self.mode, dict):
            from recllm.evaluate.protocols import get_protocol
            for name in self.mode:
                try:
                    get_protocol(name)
                except RecllmError as exc:
                    raise ValueError(f"mode: {exc.message}") from None
        return self

    @field_validator("ks")
    @classmethod
    def _ks(cls, v: list[int]) -> list[int]:
        if not v or any(k < 1 for k in v):
            raise ValueError("ks must be positive integers, e.g. [1, 5, 10, 20]")
        return sorted(set(v))

    @field_validator("users", mode="before")
    @classmethod
    def _users(cls, v: Any) -> Any:
        """'all' (or null) = every user; a digit string = a count; other text = a file of ids."""
        if isinstance(v, str):
            if v.strip().lower() in ("all", "none", "null", ""):
                return None
            if v.strip().isdigit():
                return int(v)
        if isinstance(v, int) and not isinstance(v, bool) and v < 1:
            raise ValueError("users must be at least 1 (or 'all')")
        return v

    @field_validator("model", "template", "max_history", mode="before")
    @classmethod
    def _none_words(cls, v: Any) -> Any:
        """'none' in YAML or on the command line means None (model: none = baselines only)."""
        def one(x: Any) -> Any:
            return None if isinstance(x, str) and x.strip().lower() in ("none", "null") else x
        return [one(x) for x in v] if isinstance(v, list) else one(v)

    @field_validator("k", "batch_size", "max_tokens")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be at least 1")
        return v

    def sweep(self) -> list[tuple[str, "EvalConfig"]]:
        """The cross product of list-valued SWEEP_KEYS: [(sub-run name, config)], or
        [("", self)] when nothing is swept."""
        axes = [(k, getattr(self, k)) for k in SWEEP_KEYS if isinstance(getattr(self, k), list)]
        if not axes:
            return [("", self._protocol_mode())]
        runs = []
        for values in itertools.product(*(v for _, v in axes)):
            update = dict(zip((k for k, _ in axes), values))
            point = self.model_copy(update=update)._protocol_mode()
            if point.mode == "score" and not point.protocol_spec.uses_candidates:
                _note(f"sweep point {update} skipped: score mode needs a candidate protocol")
                continue
            name = ",".join(f"{k}={_slug(v)}" for k, v in update.items())
            runs.append((name, point))
        return runs

    def _protocol_mode(self) -> "EvalConfig":
        """With `mode` as a mapping, this (single-protocol) point's own mode; `constrain`
        then applies to the generate points only (score mode writes nothing to constrain)."""
        if not isinstance(self.mode, dict) or isinstance(self.protocol, list):
            return self
        mode = self.mode.get(str(self.protocol), "generate")
        update: dict[str, Any] = {"mode": mode}
        if mode == "score":
            update["constrain"] = "none"
        return self.model_copy(update=update)

    @property
    def protocol_spec(self):
        """The `Protocol` object of this (single) protocol."""
        from recllm.evaluate.protocols import get_protocol
        return get_protocol(str(self.protocol))

    def resolved(self) -> "EvalConfig":
        """Fill defaults that depend on other keys (the template per protocol)."""
        if isinstance(self.mode, dict) and not isinstance(self.protocol, list):
            return self._protocol_mode().resolved()
        if any(isinstance(getattr(self, key), list) for key in ("protocol", "template", "mode")):
            raise RecllmError("resolve each sweep point separately", where="config")
        protocol = self.protocol_spec
        if self.mode == "score" and not protocol.uses_candidates:
            raise RecllmError(f"mode 'score' ranks shown candidates; protocol {self.protocol!r} "
                              "shows none", where="mode",
                              hint="use --protocol candidates (or retrieved) with --mode score")
        if self.constrain == "candidates" and not protocol.uses_candidates:
            raise RecllmError(f"constrain 'candidates' needs shown candidates; protocol "
                              f"{self.protocol!r} shows none", where="constrain",
                              hint="use constrain: catalog for the full protocol")
        if self.constrain != "none" and self.mode == "score":
            raise RecllmError("constrain applies to generated answers; score mode generates none",
                              where="constrain", hint="drop constrain, or use mode: generate")
        update: dict[str, Any] = {}
        if self.template is None and self.model is not None:
            # Score mode scores titles after a prompt without candidates (score-next); with a
            # demonstrations' source, the templates that show them, for every `demos` count
            # (0 included), so zero-shot and demo points differ by the demonstrations alone.
            update["template"] = protocol.default_template
            if self.mode == "score":
                update["template"] = "score-cross-domain" if self.demos_from else "score-next"
            elif self.demos_from:
                update["template"] = "cross-domain"
        # Lists are as long as what is asked for: k titles over the catalog, every candidate
        # otherwise; a cutoff beyond that would repeat the last one, so it is dropped.
        longest = protocol.list_length(self)
        ks = sorted({k for k in self.ks if k <= longest} | ({longest} if any(
            k > longest for k in self.ks) else set()))
        if ks != self.ks:
            update["ks"] = ks
        return self.model_copy(update=update) if update else self

    def public(self) -> dict[str, Any]:
        """The config as written to config.yaml / results.json and hashed: secrets (api_key,
        token, password ..., at any depth, and credentials inside URLs) replaced by '***' —
        they never change results (recllm.redact)."""
        from recllm.redact import redact

        return redact(self.model_dump(mode="json"))

    def hashed(self) -> dict[str, Any]:
        return {k: v for k, v in self.public().items()
                if k not in UNHASHED and not (k in NEUTRAL_WHEN_ADDED and v == NEUTRAL_WHEN_ADDED[k])}

    def hash(self) -> str:
        """sha256 over the keys that change results (not output, limit, batch size, cache)."""
        text = json.dumps(self.hashed(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.public(), sort_keys=False, allow_unicode=True)


def _note(text: str) -> None:
    import sys
    print(f"note: {text}", file=sys.stderr)


def _slug(value: Any) -> str:
    text = "none" if value is None else str(value)
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None,
                keep_none: list[str] | tuple[str, ...] = ()) -> EvalConfig:
    """Read a YAML config (optional) and apply command-line overrides on top. Overrides that
    are None are ignored unless named in `keep_none` (an explicit 'none' on the command line)."""
    from recllm.files import read_yaml_mapping

    data: dict[str, Any] = {}
    where = str(path) if path is not None else None
    if path is not None:
        data = read_yaml_mapping(path, what="config file", hint="pass an existing YAML file, "
                                 "e.g. eval/configs/demo.yaml")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None or k in keep_none})
    return EvalConfig.parse(data, where=where or "config")
