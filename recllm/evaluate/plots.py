"""PNG plots for `recllm report --plots DIR` (matplotlib, imported only here, Agg backend).

- metric_by_run.png: NDCG@k with 95% intervals for every (run, system), LLMs and baselines;
- metric_by_template.png / metric_by_history.png: LLM runs grouped by template / history length;
- position_bias.png: NDCG@k by the position the target was shown at (candidate protocols);
- validity.png: parse failures, out-of-catalog, duplicates, history repeats, shortfall per LLM run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from recllm.evaluate import rundir



def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _bars(ax, labels: Sequence[str], stats: Sequence[dict[str, float]], title: str, ylabel: str):
    xs = range(len(labels))
    means = [s["mean"] for s in stats]
    err = [[s["mean"] - s["ci_low"] for s in stats], [s["ci_high"] - s["mean"] for s in stats]]
    ax.bar(xs, means, yerr=err, capsize=3, color="#4c72b0")
    ax.set_xticks(list(xs), labels, rotation=30, ha="right", fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)


def _validity_names() -> list[str]:
    from recllm.evaluate.metrics import metrics_of
    return [m.name for m in metrics_of("validity")]


def write_plots(runs, out_dir: str | Path, k: int = 10) -> list[Path]:
    """Every plot that the given runs have data for; returns the files written."""
    plt = _plt()
    out = Path(out_dir)
    rundir.make_dir(out, "plots folder")
    metric = f"ndcg@{k}"
    written: list[Path] = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    entries = [(run, name, sysres) for run in runs
               for name, sysres in run.results.get("systems", {}).items()
               if metric in sysres.get("metrics", {})]
    llm = [(r, n, s) for r, n, s in entries if s.get("kind") == "llm"]
    if entries:
        save(_by_run(plt, entries, metric), "metric_by_run.png")
    for key, fname, title in (("template", "metric_by_template.png", "template"),
                              ("max_history", "metric_by_history.png", "history length")):
        fig = _by_setting(plt, llm, metric, key, title)
        if fig is not None:
            save(fig, fname)
    biased = [r for r in runs if r.results.get("position_bias")]
    if biased:
        save(_position_bias(plt, biased), "position_bias.png")
    valid = [(r, n, s) for r, n, s in llm if s.get("validity")]
    if valid:
        save(_validity(plt, valid), "validity.png")
    return written


def _by_run(plt, entries, metric: str):
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(entries) + 2), 4))
    _bars(ax, [f"{r.label}:{n}" for r, n, _ in entries], [s["metrics"][metric] for _, _, s in entries],
          f"{metric} by run and system", metric)
    return fig


def _protocol(run) -> str:
    return str(run.results.get("protocol", {}).get("name"))


def _by_setting(plt, llm, metric: str, key: str, title: str):
    """LLM runs by one config key, a line per protocol; None unless it varied in a protocol."""
    per_proto: dict[str, set[str]] = {}
    for r, _, _ in llm:
        per_proto.setdefault(_protocol(r), set()).add(str(r.config.get(key)))
    if not any(len(v) > 1 for v in per_proto.values()):
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for proto in sorted(per_proto):
        pts = [(str(r.config.get(key)), s["metrics"][metric]) for r, _, s in llm
               if _protocol(r) == proto]
        if key == "max_history":
            pts.sort(key=lambda p: float("inf") if p[0] == "None" else float(p[0]))
        ax.errorbar([p[0] for p in pts], [p[1]["mean"] for p in pts],
                    yerr=[[p[1]["mean"] - p[1]["ci_low"] for p in pts],
                          [p[1]["ci_high"] - p[1]["mean"] for p in pts]],
                    marker="o", capsize=3, label=proto)
    ax.set_title(f"{metric} by {title} (LLM runs)")
    ax.set_xlabel(title)
    ax.set_ylabel(metric)
    ax.legend(title="protocol", fontsize=8)
    return fig


def _position_bias(plt, biased):
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in biased:
        bias = r.results["position_bias"]
        for name, table in bias["by_position"].items():
            pos = [p for p in table if p != "missing"]
            ax.plot([int(p) + 1 for p in pos], [table[p]["mean"] for p in pos], marker=".",
                    label=f"{r.label}:{name}")
    ax.set_xlabel("position of the held-out item among the candidates (1 = first)")
    ax.set_ylabel(bias["metric"])
    ax.set_title("position bias")
    ax.legend(fontsize=7)
    return fig


def _validity(plt, valid):
    names = _validity_names()
    fig, ax = plt.subplots(figsize=(max(7, 1.2 * len(valid) + 4), 4))
    width = 0.8 / len(valid)
    for j, (r, n, s) in enumerate(valid):
        xs = [i + j * width for i in range(len(names))]
        ax.bar(xs, [s["validity"].get(v, {}).get("mean", 0.0) for v in names], width,
               label=f"{r.label}:{n}")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))],
                  [v.replace("_rate", "").replace("_", " ") for v in names],
                  rotation=20, fontsize=8)
    ax.set_ylabel("rate")
    ax.set_title("answer validity")
    ax.legend(fontsize=7)
    return fig
