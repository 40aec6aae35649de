"""RecDataset <-> datasets.DatasetDict round trip, and bad DatasetDicts."""

from __future__ import annotations

import pandas as pd
import pytest

from recllm.data import leave_one_out
from recllm.data.schema import RecDataset
from recllm.errors import RecllmError


def test_round_trip_keeps_interactions_catalog_and_nouns(tiny_dataset, tmp_path):
    from datasets import load_from_disk

    dd = tiny_dataset.to_hf()
    assert set(dd) == {"interactions", "catalog"} and dd["interactions"].num_rows == len(tiny_dataset.interactions) == 17
    dd.save_to_disk(str(tmp_path / "hf"))
    back = RecDataset.from_hf(load_from_disk(str(tmp_path / "hf")))
    pd.testing.assert_frame_equal(back.interactions, tiny_dataset.interactions[back.interactions.columns])
    assert dict(back.catalog) == dict(tiny_dataset.catalog)
    assert back.catalog.item("6")["alternates"] == tiny_dataset.catalog.item("6")["alternates"]
    assert back.catalog.item("3")["year"] == 1995 and back.catalog.item("12")["genres"] == ["Drama"]
    assert (back.name, back.domain, back.domain_plural) == ("tiny-movies", "movie", "movies")
    assert [c.target for c in leave_one_out(back).test] == [c.target for c in leave_one_out(tiny_dataset).test]


def test_bad_dataset_dicts_are_one_line_errors(tiny_dataset):
    from datasets import Dataset, DatasetDict

    dd = tiny_dataset.to_hf()
    with pytest.raises(RecllmError, match="no 'catalog' split"):
        RecDataset.from_hf(DatasetDict({"interactions": dd["interactions"]}))
    with pytest.raises(RecllmError, match="lack the column.*rating"):
        RecDataset.from_hf(DatasetDict({"interactions": dd["interactions"].remove_columns("rating"),
                                        "catalog": dd["catalog"]}))
    with pytest.raises(RecllmError, match="item_id and title"):
        RecDataset.from_hf(DatasetDict({"interactions": dd["interactions"],
                                        "catalog": Dataset.from_dict({"name": ["x"]})}))
