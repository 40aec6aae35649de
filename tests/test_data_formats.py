"""The formats registry: detection asks specific formats first, plugins before the catch-all
table, and a registered format is accepted by `format=` everywhere."""

from __future__ import annotations

import pytest

from recllm.data import LoadOptions, load_dataset
from recllm.data.build import Loaded
from recllm.data.detect import detect
from recllm.data.formats import FORMATS, DataFormat, detection_order
from recllm.errors import RecllmError


def _read(path, options) -> Loaded:
    from recllm.data.table import load_table

    loaded = load_table(path, options)
    loaded.meta["format"] = "special"
    return loaded


SPECIAL = DataFormat("special", "CSV files named *.special.csv", lambda p: p.name.endswith(".special.csv"), _read)


@pytest.fixture
def with_plugin(monkeypatch):
    monkeypatch.setitem(FORMATS.__dict__, "plugins", {"special": SPECIAL})  # as an entry point would


def test_a_plugin_format_is_asked_before_the_table_fallback(with_plugin, tmp_path):
    assert [f.name for f in detection_order()] == ["movielens", "atomic", "amazon", "bookcrossing", "special", "table"]
    for name in ("x.special.csv", "x.csv"):
        (tmp_path / name).write_text("user_id,item_id,timestamp\nu,a,1\nu,b,2\n")
    assert detect(tmp_path / "x.special.csv", LoadOptions()).format == "special"
    assert detect(tmp_path / "x.csv", LoadOptions()).format == "table"
    ds = load_dataset(tmp_path / "x.csv", format="special", cache=False)
    assert ds.meta["format"] == "special" and len(ds.interactions) == 2


def test_unknown_and_broken_formats_are_one_error(monkeypatch, tmp_path):
    with pytest.raises(RecllmError, match="unknown format 'special'"):
        LoadOptions.parse({"format": "special"})
    monkeypatch.setitem(FORMATS.__dict__, "plugins", {"bad": object()})
    (tmp_path / "x.csv").write_text("user_id,item_id\nu,a\n")
    with pytest.raises(RecllmError, match="data format 'bad' is registered as object, not a DataFormat"):
        load_dataset(tmp_path / "x.csv", format="bad")
