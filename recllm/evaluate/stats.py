"""Uncertainty: bootstrap confidence intervals for means, and paired tests between two runs.

Users are the unit of resampling: every user's metric values move together, so metrics of
one run share resamples and intervals are comparable. All randomness is seeded.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

DEFAULT_RESAMPLES = 1000


def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_means(values: Mapping[str, np.ndarray], *, resamples: int = DEFAULT_RESAMPLES,
                    seed: int = 0, level: float = 0.95) -> dict[str, dict[str, float]]:
    """Mean and percentile-bootstrap interval of each per-user metric vector.

    The same resampled user sets are used for every metric. Returns
    {"ndcg@10": {"mean": m, "ci_low": lo, "ci_high": hi, "n": users}, ...}; with fewer than
    two users the interval is the mean itself.
    """
    out: dict[str, dict[str, float]] = {}
    n = len(next(iter(values.values()))) if values else 0
    idx = _indices(n, resamples, seed) if n >= 2 and resamples > 0 else None
    alpha = (1.0 - level) / 2.0
    for name, vec in values.items():
        vec = np.asarray(vec, dtype=float)
        mean = float(vec.mean()) if n else float("nan")
        if idx is not None:
            means = vec[idx].mean(axis=1)
            lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
        else:
            lo = hi = mean
        out[name] = {"mean": mean, "ci_low": float(lo), "ci_high": float(hi), "n": int(n)}
    return out


def bootstrap_ratio(num: np.ndarray, den: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES,
                    seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """sum(num) / sum(den) with a bootstrap interval over users (micro-averaged rates).

    Used for rates whose denominator differs per user, e.g. out-of-catalog titles over titles
    parsed. A resample with a zero denominator contributes 0.
    """
    num, den = np.asarray(num, float), np.asarray(den, float)
    n = len(num)
    total = den.sum()
    value = float(num.sum() / total) if total > 0 else 0.0
    if n < 2 or resamples <= 0:
        return {"mean": value, "ci_low": value, "ci_high": value, "n": n}
    idx = _indices(n, resamples, seed)
    d = den[idx].sum(axis=1)
    r = np.divide(num[idx].sum(axis=1), d, out=np.zeros(resamples), where=d > 0)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(r, [alpha, 1.0 - alpha])
    return {"mean": value, "ci_low": float(lo), "ci_high": float(hi), "n": n}


def paired_test(a: np.ndarray, b: np.ndarray, *, resamples: int = 10000, seed: int = 0,
                level: float = 0.95) -> dict[str, float]:
    """Compare two systems on the same users: delta = mean(b - a).

    - interval: percentile bootstrap of the mean per-user delta;
    - p_value: two-sided paired permutation (sign-flip) test: under H0 each user's delta is
      equally likely to have either sign, so p = P(|mean(s * d)| >= |mean(d)|), s in {-1, +1};
    - t, p_t: the paired t-test on the deltas (scipy when installed), for reference.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs the same users: {a.shape} vs {b.shape}")
    d = b - a
    n = len(d)
    rng = np.random.default_rng(seed)
    mean = float(d.mean()) if n else float("nan")
    out = {"n": n, "mean_a": float(a.mean()) if n else float("nan"),
           "mean_b": float(b.mean()) if n else float("nan"), "delta": mean}
    if n < 2:
        return {**out, "ci_low": mean, "ci_high": mean, "p_value": 1.0, "t": float("nan"),
                "p_t": float("nan")}
    alpha = (1.0 - level) / 2.0
    boots = d[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    signs = rng.choice(np.array([-1.0, 1.0]), size=(resamples, n))
    null = np.abs((signs * d).mean(axis=1))
    # +1 in numerator and denominator: the observed assignment is one of the permutations.
    p = float((np.sum(null >= abs(mean) - 1e-12) + 1) / (resamples + 1))
    sd = d.std(ddof=1)
    t = float(mean / (sd / np.sqrt(n))) if sd > 0 else float("nan")
    from scipy import stats as sps

    p_t = float(2 * sps.t.sf(abs(t), df=n - 1)) if sd > 0 else float("nan")
    if sd == 0:  # all deltas equal: no evidence beyond the (possibly zero) constant shift
        p = 1.0 if mean == 0 else p
    return {**out, "ci_low": float(lo), "ci_high": float(hi), "p_value": p, "t": t, "p_t": p_t}
