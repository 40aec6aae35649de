"""A tiny recllm plugin, installed only for tests/test_plugins.py (as a folder on PYTHONPATH
with its dist-info beside it): one file per extension point, each named by an entry point in
../recllm_demo_plugin-0.1.dist-info/entry_points.txt."""

from pathlib import Path

TEMPLATES = Path(__file__).parent / "prompts"  # the recllm.templates entry point
