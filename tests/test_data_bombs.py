"""Archives, gzip files and the data folder: bounded, and bad cases are one RecllmError.

Limits are lowered through their environment variables (and the ratio floor) so the bombs
here are kilobytes, not gigabytes."""

from __future__ import annotations

import errno
import gzip
import zipfile
from pathlib import Path

import pytest

from recllm.cli import main
from recllm.data import cache, limits, load_dataset
from recllm.data import download as fetch_mod
from recllm.errors import RecllmError

DATA = Path(__file__).parent / "data"
ROWS = b"user_id,item_id,timestamp\n" + b"u1,a,1\nu1,b,2\nu2,a,3\n"


def zeros_zip(path: Path, size: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data/ratings.csv", ROWS + b"0" * size)
    return path


def test_zip_over_the_size_limit_is_refused_before_extracting(tmp_path, monkeypatch):
    monkeypatch.setenv(limits.BYTES_VAR, "1K")
    with pytest.raises(RecllmError) as info:
        load_dataset(zeros_zip(tmp_path / "bomb.zip", 5000))
    assert "1,024 bytes" in info.value.message and limits.BYTES_VAR in info.value.hint
    assert not any((Path(fetch_mod.paths.home()) / "extracted").glob("bomb-*"))


def test_zip_with_a_bomb_ratio_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "RATIO_FLOOR", 0)
    with pytest.raises(RecllmError) as info:
        load_dataset(zeros_zip(tmp_path / "bomb.zip", 1_000_000))
    assert "compression ratio above 200" in info.value.message and limits.RATIO_VAR in info.value.hint
    monkeypatch.setenv(limits.RATIO_VAR, "100000")  # raising the limit lets it through to the loader
    with pytest.raises(RecllmError, match="malformed row"):  # the extracted file's own error
        load_dataset(zeros_zip(tmp_path / "bomb2.zip", 1_000_000))


def test_gzip_bomb_is_refused_while_streaming(tmp_path, monkeypatch):
    path = tmp_path / "r.csv.gz"
    path.write_bytes(gzip.compress(ROWS + b"0" * 3_000_000))
    monkeypatch.setenv(limits.BYTES_VAR, "1000000")
    with pytest.raises(RecllmError, match="more than 1,000,000 bytes") as info:
        load_dataset(path)
    assert info.value.where == str(path)
    monkeypatch.delenv(limits.BYTES_VAR)
    monkeypatch.setattr(limits, "RATIO_FLOOR", 0)
    with pytest.raises(RecllmError, match="compression ratio"):
        load_dataset(path)


def test_gzipped_table_still_loads(tmp_path):
    path = tmp_path / "r.csv.gz"
    path.write_bytes(gzip.compress(ROWS))
    assert len(load_dataset(path).interactions) == 3


def test_bad_limit_value_says_so(tmp_path, monkeypatch):
    path = tmp_path / "r.csv.gz"
    path.write_bytes(gzip.compress(ROWS))
    monkeypatch.setenv(limits.BYTES_VAR, "lots")
    with pytest.raises(RecllmError, match="not a size"):
        load_dataset(path)


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_while_caching_names_the_folder(monkeypatch):
    monkeypatch.setattr(cache, "_write_arrow", full_disk)
    with pytest.raises(RecllmError) as info:
        load_dataset(DATA / "ml-100k")
    assert "tables" in info.value.where and "free some space" in info.value.hint
    assert "RECLLM_HOME" in info.value.hint and "--no-cache" in info.value.hint
    assert len(load_dataset(DATA / "ml-100k", cache=False).interactions)  # without the cache it loads


def test_full_disk_while_extracting(tmp_path, monkeypatch):
    monkeypatch.setattr(zipfile.ZipFile, "extractall", full_disk)
    with pytest.raises(RecllmError, match="cannot write here"):
        load_dataset(zeros_zip(tmp_path / "ok.zip", 10))


def test_unwritable_home_for_cache_and_fetch(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("RECLLM_HOME", str(blocker / "home"))  # a folder below a file: ENOTDIR
    with pytest.raises(RecllmError, match="cannot write here") as info:
        load_dataset(DATA / "ml-100k")
    assert "RECLLM_HOME" in info.value.hint
    with pytest.raises(RecllmError, match="cannot write here"):
        fetch_mod.fetch("ml-100k", log=lambda m: None)


def test_cli_prints_one_error_line_and_no_traceback(tmp_path, monkeypatch, capsys):
    cases = []
    (tmp_path / "dup.csv").write_text("user_id,user_id,item_id\nu,u,a\n")
    cases.append([str(tmp_path / "dup.csv")])
    (tmp_path / "bad.csv.gz").write_bytes(b"garbage")
    cases.append([str(tmp_path / "bad.csv.gz")])
    (tmp_path / "r.csv").write_text("user_id,item_id,timestamp\nu,a,1\nu,b,inf\n")
    cases.append([str(tmp_path / "r.csv")])
    cases.append([str(tmp_path / "r.csv"), "--items", str(tmp_path / "nope.csv")])
    for argv in cases:
        assert main(["data", "stats", *argv]) != 0
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, (argv, err)
        assert len([line for line in err.splitlines() if not line.startswith("  hint:")]) == 1, err
