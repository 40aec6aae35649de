"""A disk cache of fitted models, so a sweep, a resume or a rerun does not retrain.

The key is SHA-256 over everything that changes the fitted parameters: the baseline's name and
code version, its options, the seed, and `TrainData.fingerprint()` (the dataset, the split and
which targets were held out). A fitted model is a dict of numpy arrays, stored with
`np.savez` (no pickle) under `$RECLLM_HOME/fitted/<name>-<key>.npz`, written to a temporary
file and renamed, so a crashed or diverged fit leaves nothing behind. A file that does not
load is a miss (refitted and overwritten).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from recllm import paths

State = dict[str, np.ndarray]


def fit_key(baseline, version: str) -> str:
    parts = {"name": baseline.name, "version": version, "seed": baseline.seed,
             "options": baseline.options.model_dump(mode="json"),
             "train": baseline.train.fingerprint()}
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cached_fit(baseline, version: str, fit: Callable[[], tuple[State, dict]],
               cache: bool = True) -> State:
    """The fitted arrays of `baseline`: from the cache, or `fit()` -> (arrays, info) then
    stored, `info` holding at least "device" (JSON values: epochs, validation score ...).
    Sets `baseline.fit_info` (fit_seconds, device, cached, key ...) for results.json."""
    key = fit_key(baseline, version)
    path = paths.subdir("fitted") / f"{baseline.name}-{key}.npz"
    if cache and path.is_file():
        state = _load(path)
        if state is not None:
            meta = json.loads(str(state.pop("__meta__")))
            baseline.fit_info = {**meta, "cached": True, "key": key}
            return state
    t0 = time.perf_counter()
    state, info = fit()
    meta = {"fit_seconds": round(time.perf_counter() - t0, 3), **info, "code_version": version}
    baseline.fit_info = {**meta, "cached": False, "key": key}
    if cache:
        _save(path, {**state, "__meta__": np.array(json.dumps(meta))})
    return state


def _load(path: Path) -> State | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _save(path: Path, state: State) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **state)
        os.replace(tmp, path)
    except OSError:                # a read-only or full cache folder only costs a refit later
        tmp.unlink(missing_ok=True)
