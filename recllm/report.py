"""Reading run directories back: comparison tables (markdown / JSON), paired tests, plots.

A run directory is what `recllm eval` writes; a sweep folder holds one per sub-run. Runs
without results.json (interrupted) are summarized from samples.jsonl and marked partial.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recllm.errors import RecllmError
from recllm.evaluate import rundir



@dataclass
class Run:
    path: Path
    results: dict[str, Any]
    partial: bool = False

    @property
    def label(self) -> str:
        return self.path.name if self.path.name else str(self.path)

    @property
    def config(self) -> dict[str, Any]:
        return self.results.get("config", {})


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Each path itself if it is a run directory, else the run directories below it."""
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / rundir.CONFIG).exists():
            out.append(p)
            continue
        found = sorted(c.parent for c in p.rglob(rundir.CONFIG)) if p.is_dir() else []
        if not found:
            raise RecllmError("no run directory here (no config.yaml)", where=str(p),
                              hint="pass a folder written by `recllm eval`")
        out.extend(found)
    return out


def load_runs(paths: Iterable[str | Path], *, missing_ok: bool = False) -> list[Run]:
    """Runs with their results (recomputed from samples where results.json is missing)."""
    paths = [Path(p) for p in paths]
    runs = []
    for d in find_run_dirs(paths):
        # a sub-run of a named sweep folder that has not started yet is left out, not an error
        missing_ok_here = missing_ok or d not in paths
        res = d / rundir.RESULTS
        if res.exists():
            import json
            runs.append(Run(d, json.loads(res.read_text(encoding="utf-8"))))
            continue
        if not (d / rundir.SAMPLES).exists() or not (d / rundir.SAMPLES).stat().st_size:
            if missing_ok_here:
                continue
            raise RecllmError("no results.json and no samples.jsonl", where=str(d))
        from recllm.evaluate.runner import recompute
        config = rundir.load_run_config(d)
        runs.append(Run(d, {**recompute(d), "config": config, "name": d.name,
                            "protocol": {"name": config.get("protocol")}}, partial=True))
    return runs


def _fmt_ci(m: dict[str, float] | None) -> str:
    if not m:
        return "-"
    return f"{m['mean']:.4f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def rows(runs: Sequence[Run], ks: Sequence[int] = (10,)) -> list[dict[str, Any]]:
    """One row per (run, system): protocol, template, users, metrics with intervals, validity."""
    out = []
    for run in runs:
        res, cfg = run.results, run.config
        proto = res.get("protocol", {})
        for name, sysres in res.get("systems", {}).items():
            llm = sysres.get("kind") == "llm"
            row: dict[str, Any] = {
                "run": run.label + (" (partial)" if run.partial else ""),
                "protocol": proto.get("name"),
                "system": name,
                "template": cfg.get("template") if llm else "-",
                "max_history": cfg.get("max_history"),
                "users": next(iter(sysres["metrics"].values()))["n"] if sysres["metrics"] else 0,
            }
            for k in ks:
                for j, metric in enumerate(_columns("ranking")):  # the first with its interval
                    m = sysres["metrics"].get(f"{metric.name}@{k}")
                    row[f"{metric.column}@{k}"] = m if j == 0 or m is None else m["mean"]
            val = sysres.get("validity") or {}
            for metric in _columns("validity"):
                row[metric.column] = (val.get(metric.name) or {}).get("mean")
            row["errors"] = len(sysres.get("failures", [])) if llm else None
            beyond = sysres.get("beyond_accuracy", {})
            for metric in _columns("beyond-accuracy"):
                # coverage is stored at the run's k ("coverage@10"), the others as they are
                v = beyond.get(metric.name, next((x for key, x in beyond.items()
                                                  if key.startswith(f"{metric.name}@")), None))
                row[metric.column] = v["mean"] if isinstance(v, dict) else v
            out.append(row)
    return out


def _columns(kind: str):
    from recllm.evaluate.metrics import metrics_of
    return sorted((m for m in metrics_of(kind) if m.column), key=lambda m: not m.headline)


def markdown_table(runs: Sequence[Run], ks: Sequence[int] = (10,)) -> str:
    """The comparison table people read: LLM rows next to baseline rows, per run."""
    ks = [10] if 10 in ks else [max(ks)]
    table = rows(runs, ks)
    if not table:
        return "(no finished runs)"
    cols = list(table[0].keys())

    def cell(v: Any) -> str:
        if isinstance(v, dict):
            return _fmt_ci(v)
        if isinstance(v, float):
            return f"{v:.3f}"
        return "-" if v is None else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in table]
    return "\n".join(lines)


def json_summary(runs: Sequence[Run]) -> list[dict[str, Any]]:
    return [{"path": str(r.path), "partial": r.partial, **{k: v for k, v in r.results.items()
             if k in ("name", "protocol", "users", "config_hash", "systems", "position_bias",
                      "model", "timings")}} for r in runs]


# --- paired comparison ---------------------------------------------------------------------

def per_user(run_dir: Path, system: str | None, metric: str) -> tuple[str, dict[str, float]]:
    """One system's per-user values of `metric`, recomputed from samples.jsonl."""
    from recllm.evaluate.metrics import ranking_metrics, relevant_items

    samples = rundir.read_records(Path(run_dir) / rundir.SAMPLES)
    if not samples:
        raise RecllmError("no samples to compare", where=str(run_dir))
    names = list(samples[0]["systems"])
    if system is None:
        system = next((n for n in names if samples[0]["systems"][n].get("kind") == "llm"), names[0])
    if system not in names:
        from recllm.errors import unknown
        raise unknown("system", system, names)
    name, _, k = metric.partition("@")
    if not k.isdigit():
        raise RecllmError(f"metric {metric!r} needs a cutoff, e.g. ndcg@10", where="--metric")
    ranked = [s["systems"][system]["ranked"] for s in samples]
    rel = [relevant_items(s) for s in samples]
    table = ranking_metrics(ranked, rel, [int(k)])
    if metric not in table:
        raise RecllmError(f"unknown metric {metric!r}",
                          hint="one of hit, recall, ndcg, mrr, precision, map with @K")
    return system, {s["user"]: float(v) for s, v in zip(samples, table[metric])}


def compare(a: str, b: str, metric: str = "ndcg@10", seed: int = 0) -> dict[str, Any]:
    """Paired test of B against A on the same users. A and B are RUN_DIR or RUN_DIR:SYSTEM
    (default system: the LLM). Users must be the same in both (same config and seed)."""
    from recllm.evaluate.stats import paired_test

    (pa, sa), (pb, sb) = (_split_ref(a), _split_ref(b))
    sa, va = per_user(pa, sa, metric)
    sb, vb = per_user(pb, sb, metric)
    if set(va) != set(vb):
        raise RecllmError(f"the runs evaluated different users ({len(va)} vs {len(vb)}, "
                          f"{len(set(va) & set(vb))} shared)",
                          hint="compare runs with the same dataset, users and seed")
    users = sorted(va)
    test = paired_test(np.array([va[u] for u in users]), np.array([vb[u] for u in users]), seed=seed)
    return {"metric": metric, "a": f"{pa}:{sa}", "b": f"{pb}:{sb}", **test}


def _split_ref(ref: str) -> tuple[Path, str | None]:
    path = Path(ref)
    if path.exists():
        return path, None
    head, sep, tail = ref.rpartition(":")
    if sep and Path(head).exists():
        return Path(head), tail
    raise RecllmError("no such run directory", where=ref, hint="pass RUN_DIR or RUN_DIR:SYSTEM")
