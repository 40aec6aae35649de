"""Shared fixtures: a tiny in-memory movie dataset, and a cache dir that never touches ~/.cache."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recllm.data import build
from recllm.data.schema import Catalog, RecDataset

MOVIES = {
    "1": ("Toy Story (1995)", ["Animation", "Children's", "Comedy"]),
    "2": ("Jumanji (1995)", ["Adventure", "Children's", "Fantasy"]),
    "3": ("Usual Suspects, The (1995)", ["Crime", "Thriller"]),
    "4": ("Heat (1995)", ["Action", "Crime", "Thriller"]),
    "5": ("Cité des enfants perdus, La (1995)", ["Adventure", "Sci-Fi"]),
    "6": ("Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)", ["Drama"]),
    "7": ("Star Wars (1977)", ["Action", "Adventure", "Sci-Fi"]),
    "8": ("Fargo (1996)", ["Crime", "Drama", "Thriller"]),
    "9": ("Heat (1986)", ["Action"]),
    "10": ("Godfather, The (1972)", ["Action", "Crime", "Drama"]),
    "11": ("Braveheart (1995)", ["Action", "Drama", "War"]),
    "12": ("{{ config }} {% raw %} (2001)", ["Drama"]),  # a title that looks like template code
}

# user -> [(item, timestamp, rating)], deliberately unsorted, with a timestamp tie for u3.
HISTORIES = {
    "u1": [("3", 30, 5), ("1", 10, 4), ("2", 20, 3), ("4", 40, 4), ("7", 50, 5)],
    "u2": [("8", 5, 4), ("10", 6, 5), ("11", 7, 3), ("4", 8, 2)],
    "u3": [("1", 100, 3), ("7", 100, 4), ("5", 200, 5), ("6", 300, 1), ("12", 400, 2)],
    "u4": [("2", 1, 5), ("3", 2, 4), ("8", 3, 4)],
}


def make_catalog(movies: dict[str, tuple[str, list[str]]] = MOVIES) -> Catalog:
    catalog, _ = build.make_catalog(
        list(movies), [raw for raw, _ in movies.values()], where="tests/conftest.py",
        domain="movie", genres=[genres for _, genres in movies.values()])
    return catalog


def make_dataset(histories: dict = HISTORIES, movies: dict = MOVIES) -> RecDataset:
    rows = [(u, i, t, float(r)) for u, events in histories.items() for i, t, r in events]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    inter["timestamp"] = inter["timestamp"].astype("int64")
    inter = inter.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    return RecDataset("tiny-movies", inter, make_catalog(movies), domain="movie",
                      domain_plural="movies", source="tests/conftest.py")


def eval_configs() -> list[Path]:
    """The shipped eval/configs/*.yaml that configure a run (one with an `alias` key configures
    `recllm tune` instead)."""
    folder = Path(__file__).resolve().parents[1] / "eval" / "configs"
    return sorted(p for p in folder.glob("*.yaml") if "\nalias:" not in "\n" + p.read_text())


@pytest.fixture
def tiny_dataset() -> RecDataset:
    return make_dataset()


@pytest.fixture(autouse=True)
def recllm_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty RECLLM_HOME, so nothing leaks into ~/.cache."""
    home = tmp_path_factory.mktemp("recllm_home")
    monkeypatch.setenv("RECLLM_HOME", str(home))
    return home
