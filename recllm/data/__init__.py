"""The data layer: load any dataset into interactions + catalog, filter it, split it per user.

    from recllm.data import load_dataset, leave_one_out
    ds = load_dataset("ml-1m")                  # fetched on first use, cached as Arrow after
    split = leave_one_out(ds, max_history=50)   # split.test[i].history / .target

Nothing here imports torch or transformers.
"""

from recllm.data.download import Fetched, fetch
from recllm.data.load import load_dataset
from recllm.data.options import LoadOptions
from recllm.data.registry import DATASETS, DatasetSpec
from recllm.data.sampling import read_user_ids, sample_users
from recllm.data.schema import Catalog, RecDataset, UserCase
from recllm.data.splits import Split, leave_one_out, temporal_split
from recllm.data.titles import TitleParts, split_title, title_key, title_keys

__all__ = [
    "DATASETS", "Catalog", "DatasetSpec", "Fetched", "LoadOptions", "RecDataset", "Split",
    "TitleParts", "UserCase", "fetch", "leave_one_out", "load_dataset", "read_user_ids",
    "sample_users", "split_title", "temporal_split", "title_key", "title_keys",
]
