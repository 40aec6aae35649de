"""`recllm report --transfer RUN...`: one table across transfer runs.

Rows are systems; columns are (source -> target, regime): where the prompt's demonstrations
came from ("zero-shot" without any), the evaluated dataset, and the share of the target's
training data the baselines saw. Each cell is the metric with its interval; the last rows give
each LLM's lift over popularity in that column, the figure a transfer claim stands on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recllm.errors import RecllmError
from recllm.report import Run, _fmt_ci


def column_of(run: Run) -> dict[str, Any]:
    """The (source, target, regime, protocol) a run stands for, from results.json."""
    res, cfg = run.results, run.config
    tr = res.get("transfer") or {}
    regime = tr.get("regime") or {}
    fraction = regime.get("train_fraction", cfg.get("train_fraction", 1.0))
    users = regime.get("train_users", cfg.get("train_users"))
    source = tr.get("demos_from", cfg.get("demos_from")) or "zero-shot"
    return {"source": source, "target": tr.get("target") or (res.get("dataset") or {}).get("name"),
            "train_fraction": fraction, "train_users": users,
            "protocol": (res.get("protocol") or {}).get("name", cfg.get("protocol"))}


def _label(col: dict[str, Any], with_protocol: bool) -> str:
    regime = f"train {col['train_fraction']:.0%}".replace(".0%", "%")
    if col["train_users"] is not None:
        regime += f", <= {col['train_users']} users"
    text = f"{col['source']} -> {col['target']}, {regime}"
    return f"{text} ({col['protocol']})" if with_protocol else text


def transfer_table(runs: Sequence[Run], metric: str = "ndcg@10") -> dict[str, Any]:
    """{"metric", "columns": [label], "rows": {system: {label: interval}},
    "lift": {system: {label: {"delta", "ratio"}}}} over finished runs."""
    if not runs:
        raise RecllmError("name at least one run directory", hint="recllm report --transfer runs/bx-*")
    cols = [column_of(r) for r in runs]
    with_protocol = len({c["protocol"] for c in cols}) > 1
    # zero-shot first, then by source and target; within each, the most training data first
    order = sorted(range(len(runs)), key=lambda i: (
        cols[i]["source"] != "zero-shot", str(cols[i]["source"]), str(cols[i]["target"]),
        str(cols[i]["protocol"]), -float(cols[i]["train_fraction"] or 1.0),
        -(cols[i]["train_users"] or float("inf"))))
    runs, cols = [runs[i] for i in order], [cols[i] for i in order]
    labels: list[str] = []
    rows: dict[str, dict[str, Any]] = {}
    kinds: dict[str, str] = {}
    for run, col in zip(runs, cols):
        label = _label(col, with_protocol)
        if label not in labels:
            labels.append(label)
        for name, sysres in run.results.get("systems", {}).items():
            value = sysres.get("metrics", {}).get(metric)
            if value is None:
                continue
            kinds[name] = sysres.get("kind", "baseline")
            rows.setdefault(name, {}).setdefault(label, value)  # baselines repeat across runs
    if not rows:
        raise RecllmError(f"no run reports {metric!r}", hint="pick --metric from results.json, "
                          "e.g. ndcg@10")
    lift: dict[str, dict[str, Any]] = {}
    for name in (n for n, k in kinds.items() if k == "llm"):
        for label, value in rows[name].items():
            pop = rows.get("popularity", {}).get(label)
            if pop is None or pop.get("mean") is None or value.get("mean") is None:
                continue
            delta = value["mean"] - pop["mean"]
            ratio = value["mean"] / pop["mean"] if pop["mean"] else None
            lift.setdefault(name, {})[label] = {"delta": delta, "ratio": ratio}
    order = sorted(rows, key=lambda n: (kinds[n] != "llm", n))
    return {"metric": metric, "columns": labels, "rows": {n: rows[n] for n in order},
            "lift": lift}


def transfer_markdown(table: dict[str, Any]) -> str:
    cols = table["columns"]
    lines = [f"| system ({table['metric']}) | " + " | ".join(cols) + " |",
             "|" + "|".join("---" for _ in range(len(cols) + 1)) + "|"]
    for name, cells in table["rows"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt_ci(cells.get(c)) for c in cols) + " |")
    for name, cells in table["lift"].items():
        def cell(c: str) -> str:
            v = cells.get(c)
            if v is None:
                return "-"
            ratio = f" (x{v['ratio']:.2f})" if v["ratio"] is not None else ""
            return f"{v['delta']:+.4f}{ratio}"
        lines.append(f"| {name} lift over popularity | " + " | ".join(cell(c) for c in cols) + " |")
    return "\n".join(lines)
