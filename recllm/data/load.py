"""`load_dataset`: a named dataset or a path in, a filtered, chronologically sorted RecDataset out.

    name or path ─resolve─▶ plan (format, files) ─cache?─▶ loader ─▶ filters ─▶ RecDataset ─▶ cache
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from recllm.data import cache
from recllm.data.build import Loaded
from recllm.data.detect import Plan, detect
from recllm.data.download import Log, extract_archive, fetch, stderr_log
from recllm.data.filters import apply_filters
from recllm.data.formats import get_format
from recllm.data.options import LoadOptions
from recllm.data.registry import DATASETS, get_spec
from recllm.data.schema import RecDataset

def load_dataset(name_or_path: str | Path, *, log: Log = stderr_log, **options: Any) -> RecDataset:
    """Load a named dataset ("ml-1m"; fetched on first use) or a dataset file/folder.

    `options` are `LoadOptions` fields (column mapping, encoding, min_rating, duplicates,
    k_core, ...); unknown keys are errors. Results are cached under `RECLLM_HOME/tables`.
    """
    opts = LoadOptions.parse(options, where="load_dataset")
    named, plan, source = _resolve(name_or_path, opts, log)
    if "merge_duplicates" not in opts.model_fields_set:  # the format's default (before the cache key)
        opts = opts.model_copy(update={"merge_duplicates": get_format(plan.format).merge_duplicates})
    key = cache.table_key(named or str(plan.path.resolve()), opts.model_dump(exclude={"cache"}), list(plan.files))
    if opts.cache:
        hit = cache.load_cached(key)
        if hit is not None:
            return hit
    started = time.perf_counter()
    loaded: Loaded = get_format(plan.format).read(plan.path, opts)
    name = named or (plan.path.stem if plan.path.is_file() else plan.path.name)
    if named:
        _apply_named(loaded, named, opts)
    if opts.merge_duplicates:  # one work, one id (recllm/data/dedupe.py)
        from recllm.data.dedupe import merge_duplicates

        loaded.meta["merged_duplicate_items"] = merge_duplicates(loaded)
    inter, counts = apply_filters(loaded.interactions, threshold=opts.min_rating,
                                  duplicates=opts.duplicates, k=opts.k_core, where=str(plan.path))
    meta = {**loaded.meta, **counts, "files": [str(f) for f in loaded.files or plan.files],
            "options": opts.model_dump(exclude_defaults=True), "load_seconds": round(time.perf_counter() - started, 3)}
    dataset = RecDataset(name, inter, loaded.catalog, domain=loaded.domain,
                         domain_plural=loaded.domain_plural, source=source or str(plan.path), meta=meta)
    if opts.cache:
        dataset.meta["cache"] = str(cache.save_cached(key, dataset))
    return dataset


def _resolve(name_or_path: str | Path, opts: LoadOptions, log: Log) -> tuple[str | None, Plan, str | None]:
    """(dataset name or None, load plan, where the files came from)."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if isinstance(name_or_path, Path) or path.exists() or text not in DATASETS and _looks_like_path(text):
        if path.suffix.lower() == ".zip" and path.is_file():
            path = extract_archive(path)
        return None, detect(path, opts), None
    spec = get_spec(text)  # unknown names get a did-you-mean here
    fetched = fetch(spec.name, log=log)
    plan = detect(fetched.path, opts.model_copy(update={"format": fetched.format}))
    return spec.name, plan, fetched.source


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or Path(text).suffix.lower() in (
        ".csv", ".tsv", ".jsonl", ".json", ".parquet", ".inter", ".gz", ".dat", ".data", ".txt", ".zip")


def _apply_named(loaded: Loaded, name: str, opts: LoadOptions) -> None:
    """Named datasets carry their domain nouns, and the mirror's id quirks are undone."""
    spec = get_spec(name)
    if spec.user_prefix:
        users = loaded.interactions["user_id"]
        if users.str.startswith(spec.user_prefix).all():
            loaded.interactions["user_id"] = users.str.removeprefix(spec.user_prefix)
    loaded.domain = opts.domain or spec.domain
    loaded.domain_plural = opts.domain_plural or spec.domain_plural
    loaded.catalog.table["domain"] = loaded.domain
