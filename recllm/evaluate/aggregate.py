"""samples.jsonl -> the metrics in results.json, from the samples alone.

Per-user ranking metrics are recomputed from each system's ranked list and the target (the
stored per-user values are only a convenience for people reading samples), so `recompute`
checks that results.json says what its samples say.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recllm.evaluate.metrics import coverage, gini_exposure, ranking_metrics, relevant_items
from recllm.evaluate.stats import bootstrap_means, bootstrap_ratio

# Validity counters every LLM answer carries (ints per user); rates are defined below.
VALIDITY_FIELDS = ("asked", "parsed", "matched", "out_of_catalog", "out_of_candidates", "duplicates",
                   "history_repeats", "shortfall", "parse_failure", "error")


def ordered(samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Samples in evaluation order, one per user (the last write wins on duplicates)."""
    by_user = {s["user"]: s for s in samples}
    return sorted(by_user.values(), key=lambda s: s["i"])


def system_names(samples: Sequence[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for s in samples:
        for name in s["systems"]:
            if name not in names:
                names.append(name)
    return names


def validity_rates(counts: dict[str, np.ndarray], k: int, *, resamples: int, seed: int
                   ) -> dict[str, dict[str, float]]:
    """How far answers fell short, each with a bootstrap interval over users:

    - parse_failure_rate = users whose answer yielded no title / users
    - error_rate = users whose request failed in the backend / users
    - out_of_catalog_rate = titles matching no catalog item / titles parsed (hallucinations)
    - out_of_candidates_rate = titles in the catalog but not among the candidates / titles parsed
    - duplicate_rate = titles repeating an earlier one / titles parsed
    - history_repeat_rate = matched items already in the user's history / items matched
    - shortfall_rate = sum over users of max(0, k_u - items scored) / sum of k_u, where k_u is
      what user u's prompt asked for (k, or the number of candidates)
    """
    n = len(counts["parsed"])
    ones = np.ones(n)
    spec = {
        "parse_failure_rate": (counts["parse_failure"], ones),
        "error_rate": (counts["error"], ones),
        "out_of_catalog_rate": (counts["out_of_catalog"], counts["parsed"]),
        "out_of_candidates_rate": (counts["out_of_candidates"], counts["parsed"]),
        "duplicate_rate": (counts["duplicates"], counts["parsed"]),
        "history_repeat_rate": (counts["history_repeats"], counts["matched"]),
        "shortfall_rate": (counts["shortfall"], np.where(counts["asked"] > 0, counts["asked"], k)),
    }
    out = {name: bootstrap_ratio(num, den, resamples=resamples, seed=seed)
           for name, (num, den) in spec.items()}
    out["titles_per_answer"] = bootstrap_means({"x": counts["parsed"]}, resamples=resamples,
                                               seed=seed)["x"]
    return out


def aggregate(samples: Sequence[dict[str, Any]], *, ks: Sequence[int], k: int,
              resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Every system's metrics (means with 95% bootstrap intervals), computed from samples."""
    samples = ordered(samples)
    out: dict[str, Any] = {"users": len(samples), "systems": {}}
    bias_values: dict[str, np.ndarray] = {}
    if not samples:
        return out
    n_items = max(int(s.get("n_items") or 0) for s in samples)
    targets = [relevant_items(s) for s in samples]
    names = system_names(samples)
    llm_first = sorted(names, key=lambda n: samples[0]["systems"].get(n, {}).get("kind") != "llm")
    for name in llm_first:
        recs = [s["systems"].get(name) for s in samples]
        ranked = [r["ranked"] if r else [] for r in recs]
        per_user = ranking_metrics(ranked, targets, ks)
        metrics = bootstrap_means(per_user, resamples=resamples, seed=seed)
        bias_values[name] = per_user[f"ndcg@{max(ks)}"]
        pops = np.array([r.get("popularity") for r in recs if r and r.get("popularity") is not None],
                        dtype=float)
        novel = np.array([r.get("novelty") for r in recs if r and r.get("novelty") is not None],
                         dtype=float)
        extra = bootstrap_means({"popularity_percentile": pops, "novelty": novel},
                                resamples=resamples, seed=seed) if len(pops) else {}
        # intra-list diversity: only where the run had item embeddings (see pipeline)
        ild = np.array([r["diversity"] for r in recs if r and r.get("diversity") is not None], float)
        if len(ild):
            extra.update(bootstrap_means({"intra_list_diversity": ild}, resamples=resamples, seed=seed))
        system: dict[str, Any] = {
            "kind": recs[0].get("kind", "baseline") if recs[0] else "baseline",
            "metrics": metrics,
            "beyond_accuracy": {f"coverage@{k}": coverage(ranked, n_items, k),
                                f"gini@{k}": gini_exposure(ranked, n_items, k), **extra},
        }
        if any(r and "validity" in r for r in recs):
            counts = {f: np.array([(r or {}).get("validity", {}).get(f, 0) for r in recs], float)
                      for f in VALIDITY_FIELDS}
            system["validity"] = validity_rates(counts, k, resamples=resamples, seed=seed)
            system["failures"] = [{"user": s["user"], "error": r["error"]}
                                  for s, r in zip(samples, recs) if r and r.get("error")]
            system["tokens"] = {
                "prompt": int(sum((r or {}).get("prompt_tokens") or 0 for r in recs)),
                "completion": int(sum((r or {}).get("completion_tokens") or 0 for r in recs)),
            }
        out["systems"][name] = system
    if any(s.get("candidates") for s in samples):
        kmax = f"ndcg@{max(ks)}"
        out["position_bias"] = {"metric": kmax, "by_position": position_bias(
            [s.get("target_position") for s in samples], bias_values)}
    return out


def position_bias(positions: Sequence[int | None], values: dict[str, np.ndarray]
                  ) -> dict[str, dict[str, dict[str, float]]]:
    """Mean of each system's per-user metric by the 0-based position the target was shown at
    ("missing" = not among the candidates): a flat profile means no position bias."""
    keys = np.array(["missing" if p is None else str(p) for p in positions], dtype=object)
    groups = sorted(set(keys.tolist()), key=_pos_key)
    return {name: {g: {"mean": float(vec[keys == g].mean()), "n": int((keys == g).sum())}
                   for g in groups}
            for name, vec in values.items()}


def _pos_key(pos: str) -> tuple[int, int]:
    return (1, 0) if pos == "missing" else (0, int(pos))
