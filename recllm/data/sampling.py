"""Seeded, deterministic choice of evaluation users: a count, or a list of user ids."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from recllm.data.readers import iter_lines
from recllm.data.schema import UserCase
from recllm.errors import RecllmError


def read_user_ids(path: str | Path) -> list[str]:
    """One user id per line; blank lines and `#` comments are skipped; the first field of a
    comma- or tab-separated line is the id."""
    path = Path(path)
    ids = []
    for _, line in iter_lines(path):
        text = line.split("#", 1)[0].strip()
        if text:
            ids.append(text.replace("\t", ",").split(",", 1)[0].strip())
    if not ids:
        raise RecllmError("no user ids in this file", where=str(path))
    return ids


def sample_users(cases: Sequence[UserCase], n: int | None = None, seed: int = 0,
                 user_ids: Iterable[str] | str | Path | None = None) -> list[UserCase]:
    """The cases of `user_ids` (if given), then `n` of them drawn without replacement.

    The draw depends only on `seed` and the set of user ids (cases are sorted by id first),
    and the result keeps the order of `cases`. `n` at least the number of cases keeps all.
    """
    chosen = list(cases)
    if user_ids is not None:
        where = str(user_ids) if isinstance(user_ids, (str, Path)) else None
        wanted = read_user_ids(user_ids) if isinstance(user_ids, (str, Path)) else [str(u) for u in user_ids]
        have = {c.user_id for c in chosen}
        missing = [u for u in dict.fromkeys(wanted) if u not in have]
        if missing:
            shown = ", ".join(map(repr, missing[:5])) + (" ..." if len(missing) > 5 else "")
            raise RecllmError(f"{len(missing)} of {len(set(wanted))} user ids have no evaluation case: {shown}",
                              where=where, hint="check the ids against the dataset (users may have been "
                              "filtered out or have too little history)")
        keep = set(wanted)
        chosen = [c for c in chosen if c.user_id in keep]
    if n is None or n >= len(chosen):
        return chosen
    if n < 0:
        raise RecllmError(f"cannot sample {n} users")
    by_id = sorted(range(len(chosen)), key=lambda i: chosen[i].user_id)
    picked = np.random.default_rng(seed).choice(len(chosen), size=n, replace=False)
    keep_idx = sorted(by_id[i] for i in picked)
    return [chosen[i] for i in keep_idx]
