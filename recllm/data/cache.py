"""Loaded tables cached as Arrow IPC files under `RECLLM_HOME/tables/<key>/`.

The key hashes everything that changes the result: the dataset name or resolved path, every
loader option, each source file's path, size and modification time, a format version and the
data layer's code.
Parsing ML-1M's text takes seconds; memory-mapping its Arrow table takes a fraction of one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from recllm import paths
from recllm.data.schema import Catalog, RecDataset
from recllm.errors import writing_to

CACHE_VERSION = 2  # bump when loaders change what they produce for the same files
_LIST_COLUMNS = ("genres", "alternates")


def fingerprint(files: list[Path]) -> list[list]:
    """(path, size, mtime) of each source file: cheap, and changes whenever the file does."""
    out = []
    for f in sorted({Path(p).resolve() for p in files}):
        st = f.stat()
        out.append([str(f), st.st_size, st.st_mtime_ns])
    return out


@functools.cache
def loader_code() -> str:
    """SHA-256 of the data layer's source (recllm/data/*.py): a loader fixed or changed makes
    new tables, without anybody having to remember to bump CACHE_VERSION (a cached catalog
    built by older code once hid a fix to Book-Crossing's alternate titles)."""
    h = hashlib.sha256()
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def table_key(source: str, options: dict[str, Any], files: list[Path]) -> str:
    payload = {"v": CACHE_VERSION, "code": loader_code(), "source": source, "options": options,
               "files": fingerprint(files)}
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def home_hint() -> str:
    """RECLLM_HOME as configured, without creating it (for error messages)."""
    return os.environ.get("RECLLM_HOME") or str(Path.home() / ".cache" / "recllm")


def cache_dir(key: str) -> Path:
    with writing_to(home_hint(), " (or load with --no-cache)"):
        return paths.home() / "tables" / key


def load_cached(key: str) -> RecDataset | None:
    """The cached dataset, or None when there is none (or it cannot be read)."""
    import pyarrow as pa

    folder = cache_dir(key)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        with pa.memory_map(str(folder / "interactions.arrow")) as src:
            inter = pa.ipc.open_file(src).read_all().to_pandas()
        with pa.memory_map(str(folder / "catalog.arrow")) as src:
            table = pa.ipc.open_file(src).read_all().to_pandas()
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return None
    for column in _LIST_COLUMNS:
        if column in table:
            table[column] = [None if v is None else [str(x) for x in v] for v in table[column]]
    return RecDataset(meta["name"], inter, Catalog(table), domain=meta["domain"],
                      domain_plural=meta["domain_plural"], source=meta["source"],
                      meta={**meta["meta"], "cache": str(folder)})


def save_cached(key: str, dataset: RecDataset) -> Path:
    """Write atomically: a half-written cache entry is never read."""
    folder = cache_dir(key)
    with writing_to(folder.parent, " (or load with --no-cache)"):
        return _save(folder, key, dataset)


def _save(folder: Path, key: str, dataset: RecDataset) -> Path:
    import pyarrow as pa

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{key}-"))
    try:
        _write_arrow(tmp / "interactions.arrow", pa.Table.from_pandas(dataset.interactions, preserve_index=False))
        _write_arrow(tmp / "catalog.arrow", pa.Table.from_pandas(dataset.catalog.table, preserve_index=True))
        meta = {"name": dataset.name, "domain": dataset.domain, "domain_plural": dataset.domain_plural,
                "source": dataset.source, "meta": {k: v for k, v in dataset.meta.items() if k != "cache"}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _write_arrow(path: Path, table) -> None:
    import pyarrow as pa

    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def clear(key: str | None = None) -> None:
    """Remove one cached entry, or all of them."""
    shutil.rmtree(cache_dir(key) if key else paths.home() / "tables", ignore_errors=True)

