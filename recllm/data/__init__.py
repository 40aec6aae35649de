"""The data layer: load any dataset into interactions + catalog, filter it, split it per user.

    from recllm.data import load_dataset, leave_one_out
    ds = load_dataset("ml-1m")                  # fetched on first use, cached as Arrow after
    split = leave_one_out(ds, max_history=50)   # split.test[i].history / .target

Nothing here imports torch or transformers. Names are imported on first use (PEP 562), so
`recllm.data.options` (the CLI's flags) and `recllm.data.formats` load without pandas.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Fetched": "download", "fetch": "download", "load_dataset": "load", "LoadOptions": "options",
    "DATASETS": "registry", "DatasetSpec": "registry", "read_user_ids": "sampling", "sample_users": "sampling",
    "Catalog": "schema", "RecDataset": "schema", "UserCase": "schema", "Split": "splits",
    "leave_one_out": "splits", "temporal_split": "splits", "TitleParts": "titles", "split_title": "titles",
    "title_key": "titles", "title_keys": "titles",
}

__all__ = sorted(_WHERE, key=lambda n: (not n[0].isupper(), n))


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'recllm.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"recllm.data.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
