"""A data format: `.demo` files, one interaction a line, `user|item|timestamp|title`."""

from pathlib import Path

from recllm.data.build import Loaded, make_catalog, make_interactions
from recllm.data.formats import DataFormat
from recllm.errors import RecllmError


def read_demo(path: Path, options) -> Loaded:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            parts = line.split("|")
            if len(parts) != 4:
                raise RecllmError("expected user|item|timestamp|title", where=f"{path}:{n}")
            rows.append(parts)
    users, items, times, titles = (list(col) for col in zip(*rows))
    inter = make_interactions(users, items, [int(t) for t in times], None)
    first = dict(zip(items, titles))  # one title per item
    catalog, notes = make_catalog(list(first), list(first.values()), where=str(path), domain="movie")
    return Loaded(inter, catalog, "movie", "movies", [path], {"format": "demo", **notes})


FORMAT = DataFormat("demo", "demo lines: user|item|timestamp|title", lambda p: p.suffix == ".demo", read_demo,
                    detected_by="`x.demo`")
