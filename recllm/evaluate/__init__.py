"""Evaluation: protocols, metrics, baselines side by side, resumable runs, sweeps.

    from recllm.evaluate import EvalConfig, run_eval, recompute
    dirs = run_eval(EvalConfig(dataset="ml-100k", protocol="candidates", users=50, output="runs/x"))

Importing this needs neither torch nor transformers; the LLM backend is loaded only for runs
that use one.
"""

from recllm.evaluate.config import SWEEP_KEYS, EvalConfig, load_config
from recllm.evaluate.metrics import RANKING_METRICS, ranking_metrics, user_metrics
from recllm.evaluate.candidates import CandidateSet, merge_rankings
from recllm.evaluate.protocols import PROTOCOLS, Protocol, get_protocol
from recllm.evaluate.runner import recompute, run_eval, run_one
from recllm.evaluate.stats import bootstrap_means, paired_test

__all__ = ["EvalConfig", "PROTOCOLS", "Protocol", "RANKING_METRICS", "SWEEP_KEYS", "CandidateSet",
           "bootstrap_means", "get_protocol", "load_config", "merge_rankings", "paired_test", "ranking_metrics",
           "recompute", "run_eval", "run_one", "user_metrics"]
