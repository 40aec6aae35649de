"""The documented shape of what a run writes: one samples.jsonl line per user, and results.json.

These pydantic models are the schema: `docs/sample.schema.json` and `docs/results.schema.json`
are generated from them (`python -c "import recllm.evaluate.schema as s; s.write('docs')"`),
and a test validates every
run it makes against those files. `SCHEMA_VERSION` goes up when a field changes meaning or
goes away (adding an optional field does not bump it); readers check it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class _Open(BaseModel):
    # Systems and plugins may add fields; the documented ones must be there and well typed.
    model_config = ConfigDict(extra="allow")


class SystemSample(_Open):
    """One system's answer for one user."""

    kind: Literal["llm", "baseline"]
    ranked: list[str] = Field(description="item ids, best first, as scored")
    metrics: dict[str, float | int | None] = Field(
        description="per-user metrics: rank (1-based, null when no relevant item) and NAME@K")
    popularity: float | None = Field(None, description="mean popularity percentile of the top k")
    novelty: float | None = Field(None, description="mean self-information of the top k")
    diversity: float | None = Field(None, description="intra-list diversity of the top k "
                                    "(only with the embedding baseline's item vectors)")
    # LLM systems only
    prompt: list[dict[str, str]] | str | None = None
    raw: list[str] | None = Field(None, description="the answer text of every ask")
    parsed: list[str] | None = None
    matched: list[str | None] | None = None
    validity: dict[str, int] | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    asks: list[dict[str, Any]] | None = Field(None, description="re-asks: candidates and ranking each")


class SampleLine(_Open):
    """One line of samples.jsonl: a finished user."""

    schema_version: Literal[1] = SCHEMA_VERSION
    i: int = Field(description="the user's position in the run's evaluation order")
    user: str
    target: str
    targets: list[str] | None = Field(None, description="every held-out item, when more than one")
    history: list[str] = Field(description="item ids shown (oldest first, after max_history)")
    history_truncated: int
    n_items: int
    candidates: list[str] | None = None
    target_position: int | None = None
    systems: dict[str, SystemSample]


class Interval(_Open):
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


class SystemResult(_Open):
    kind: Literal["llm", "baseline"]
    metrics: dict[str, Interval]
    beyond_accuracy: dict[str, Any]
    validity: dict[str, Interval] | None = None
    failures: list[dict[str, str]] | None = None
    tokens: dict[str, int] | None = None


class Results(_Open):
    """results.json: metrics computed from samples.jsonl, and how to reproduce them."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str
    protocol: dict[str, Any]
    dataset: dict[str, Any]
    users: dict[str, Any]
    config_hash: str
    config: dict[str, Any]
    model: dict[str, Any] | None
    systems: dict[str, SystemResult]
    position_bias: dict[str, Any] | None = None
    timings: dict[str, Any]
    environment: dict[str, Any]
    transfer: dict[str, Any] | None = Field(
        None, description="target dataset and domain, the demonstrations' source, and the "
        "training regime the baselines saw (train_fraction, train_users, interactions)")


SCHEMAS = {"sample.schema.json": SampleLine, "results.schema.json": Results}


def json_schemas() -> dict[str, dict[str, Any]]:
    return {name: model.model_json_schema() for name, model in SCHEMAS.items()}


def write(folder: str | Path = "docs") -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        (out / name).write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out / name}")
