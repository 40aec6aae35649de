"""Where recllm keeps downloaded data, converted models and caches (never inside the repo)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """`$RECLLM_HOME`, default `~/.cache/recllm`; created on first use."""
    root = Path(os.environ.get("RECLLM_HOME") or Path.home() / ".cache" / "recllm").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def subdir(name: str) -> Path:
    """A named folder under `home()`: 'datasets', 'models', 'responses' ..."""
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
