"""The run directory: config.yaml, samples.jsonl (one line per finished user), results.json.

samples.jsonl is append-only: each finished batch is written, flushed and fsynced, so a run
killed at any instant loses at most the batch in flight. A half-written last line (SIGKILL
mid-write) is cut off on resume. `events.jsonl` holds what varies between identical runs
(timings, cache hits), so samples.jsonl itself is byte-identical for the same config and seed.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from recllm.errors import RecllmError

CONFIG, SAMPLES, RESULTS, EVENTS = "config.yaml", "samples.jsonl", "results.json", "events.jsonl"
FINGERPRINT = "fingerprint.json"


def read_records(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """Every complete line of a JSONL file. A final fragment without its newline (a crash
    mid-write) is dropped, and with `repair` cut from the file; a bad complete line is an error."""
    if not path.exists():
        return []
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1          # everything after the last newline is unfinished
    records: list[dict[str, Any]] = []
    for n, line in enumerate(data[:good_end].split(b"\n")[:-1]):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            raise RecllmError(f"line {n + 1} is not valid JSON", where=str(path),
                              hint="the file was edited or damaged; move it away to start over"
                              ) from None
    if repair and good_end < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
            fh.flush()
            os.fsync(fh.fileno())
    return records


def cut_torn_tail(path: Path) -> None:
    """Cut a final line left without its newline (a crash mid-write), so the next append
    starts on a line of its own instead of gluing onto the fragment."""
    if not path.exists():
        return
    with open(path, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if not size:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        fh.seek(0)
        data = fh.read()
        fh.truncate(data.rfind(b"\n") + 1)
        fh.flush()
        os.fsync(fh.fileno())


class JsonlAppender:
    """Appends records and makes them durable (flush + fsync) per `write` call; a torn last
    line from an earlier crash is cut first."""

    def __init__(self, path: Path):
        self.path = path
        cut_torn_tail(path)
        self.fh = open(path, "a", encoding="utf-8")

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        self.write_lines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)

    def write_lines(self, lines: Iterable[str]) -> None:
        """Append already-serialized lines (each ending in a newline) in one durable write."""
        text = "".join(lines)
        if text:
            try:
                self.fh.write(text)
                self.fh.flush()
                os.fsync(self.fh.fileno())
            except OSError as exc:  # e.g. the disk is full: what was written before is kept
                raise RecllmError(f"cannot append to this file: {exc.strerror or exc}",
                                  where=str(self.path), hint="free some space, then rerun with "
                                  "--resume (finished users are kept)") from None

    def close(self) -> None:
        self.fh.close()


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)


def make_dir(path: Path, what: str = "output folder") -> Path:
    """mkdir -p with a one-line error when the path is a file or not writable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.touch()
        probe.unlink()
    except FileExistsError:
        raise RecllmError(f"the {what} is a file, not a folder", where=str(path),
                          hint="pass --output with a folder path") from None
    except OSError as exc:
        raise RecllmError(f"cannot write the {what}: {exc.strerror or exc}", where=str(path),
                          hint="pass a writable folder (--output)") from None
    return path


def prepare(run_dir: Path, config_yaml: str, config_hash: str, resume: bool) -> None:
    """Create the run directory, or check that a resumed one was made by the same config."""
    cfg = run_dir / CONFIG
    if cfg.exists():
        old = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
        old_hash = (old.get("_meta") or {}).get("config_hash")
        has_samples = (run_dir / SAMPLES).exists() and (run_dir / SAMPLES).stat().st_size > 0
        if not resume and has_samples:
            raise RecllmError("this run directory already holds samples", where=str(run_dir),
                              hint="pass --resume to finish it, or --output NEW_DIR to start over")
        if resume and old_hash != config_hash:
            raise RecllmError(
                f"the config changed since this run started (hash {old_hash} -> {config_hash})",
                where=str(cfg), hint="resume with the same config, or pass --output NEW_DIR")
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = cfg.with_suffix(".tmp")
    tmp.write_text(config_yaml + yaml.safe_dump({"_meta": {"config_hash": config_hash}}),
                   encoding="utf-8")
    os.replace(tmp, cfg)


def check_fingerprint(run_dir: Path, what: str, value: Any, *, has_samples: bool) -> None:
    """Refuse to add to samples made from other data or another model: `value` (the dataset's
    fingerprint, the model's identity) must equal what the run recorded when it started.
    The first session (or a run made before fingerprints existed) records it."""
    path = run_dir / FINGERPRINT
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except ValueError:
        recorded = {}
    value = json.loads(json.dumps(value, default=str))  # compare as it is stored
    if has_samples and what in recorded and recorded[what] != value:
        raise RecllmError(f"the {what} changed since this run started: {_changed(recorded[what], value)}",
                          where=str(run_dir), hint="resume with the same data and model, or pass "
                          "--output NEW_DIR to start over")
    if recorded.get(what) != value:
        write_json_atomic(path, {**recorded, what: value})


def _changed(old: Any, new: Any, path: str = "") -> str:
    """The first difference between two JSON values, as 'field: old -> new'."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key) != new.get(key):
                return _changed(old.get(key), new.get(key), f"{path}{key}.")
    where = path.rstrip(".") or "fingerprint"
    return f"{where}: {old!r} -> {new!r}"


class RunLock:
    """An exclusive lock on a run folder for as long as a run writes it, so two runs never
    both answer every user (twice the API cost) and a --retry-failed rewrite never drops
    another run's appends. `flock` ends with its process, so a crashed holder never blocks;
    the file names the holder (pid, host) for the message, and a note says when a lock left
    by a dead process was taken over."""

    NAME = ".lock"

    def __init__(self, run_dir: Path, log=print):
        self.path, self.log, self.fh = run_dir / self.NAME, log, None

    def __enter__(self) -> "RunLock":
        import fcntl
        import socket

        make_dir(self.path.parent)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RecllmError(f"another run is writing this folder ({holder})",
                              where=str(self.path.parent),
                              hint="wait for it to finish, or pass --output NEW_DIR") from None
        fh.seek(0)
        previous = fh.read().strip()
        if previous:
            self.log(f"note: took over the lock of a run that ended without releasing it ({previous})")
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
        fh.flush()
        self.fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self.fh is not None:
            self.fh.seek(0)
            self.fh.truncate()   # empty = released cleanly
            self.fh.close()      # closing releases the flock
            self.fh = None


def load_run_config(run_dir: Path) -> dict[str, Any]:
    cfg = run_dir / CONFIG
    if not cfg.exists():
        raise RecllmError("not a run directory (no config.yaml)", where=str(run_dir),
                          hint="pass a folder written by `recllm eval`")
    data = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
    data.pop("_meta", None)
    return data


def git_hash() -> str | None:
    """The commit of the recllm source tree, with '+dirty' when it has local changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    """Package versions and hardware, for results.json."""
    from importlib import metadata

    versions = {}
    for pkg in ("recllm", "numpy", "pandas", "scipy", "rapidfuzz", "jinja2", "torch",
                "transformers", "vllm", "datasets"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    hw: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                          "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    if "torch" in sys.modules:  # only report a GPU when torch is already loaded by a backend
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            hw["gpu"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"versions": versions, "hardware": hw, "git": git_hash(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
