"""Finding templates: built-in ones shipped with recllm, user folders, or a file path.

Search order for a bare name (first hit wins, so a user folder can shadow a built-in):
  1. folders in `$RECLLM_PROMPTS` (os.pathsep-separated) and any passed as `dirs=`,
  2. the built-in `prompts/` folder: next to the package in a source checkout or editable
     install, or `<sys.prefix>/share/recllm/prompts` in a wheel install,
  3. folders that installed packages declare in the `recllm.templates` entry-point group
     (`mypkg = "my_pkg.prompts"`: that package's folder; or `"my_pkg:TEMPLATES_DIR"`: a path).
     They come after the built-ins, so a plugin adds names but never changes what a built-in
     name renders (a user's own folder, set on purpose, may).
A name that contains a path separator or ends in `.jinja`/`.j2` is read as a file.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from recllm.errors import RecllmError, unknown
from recllm.prompting.template import PromptTemplate, parse_template
from recllm.registry import Registry

PLUGIN_FOLDERS = Registry("template folder", "recllm.templates", {})

SUFFIXES = (".jinja", ".j2")
DEFAULT_TEMPLATE = "generate"


def builtin_dir() -> Path | None:
    """The `prompts/` folder shipped with recllm, or None when this install has none."""
    here = Path(__file__).resolve().parent.parent.parent  # repo root in a checkout
    for candidate in (here / "prompts", Path(sys.prefix) / "share" / "recllm" / "prompts"):
        if candidate.is_dir():
            return candidate
    return None


def template_dirs(dirs: Iterable[str | Path] = ()) -> list[Path]:
    """Folders searched for templates, highest priority first."""
    env = [p for p in os.environ.get("RECLLM_PROMPTS", "").split(os.pathsep) if p]
    found = [Path(p).expanduser() for p in [*env, *dirs]]
    builtin = builtin_dir()
    return [*found, *([builtin] if builtin else []), *plugin_dirs()]


def plugin_dirs() -> list[Path]:
    """Template folders from the `recllm.templates` entry points, in name order."""
    return [_plugin_dir(name, value) for name, value in sorted(PLUGIN_FOLDERS.plugins.items())]


def _plugin_dir(name: str, value: str) -> Path:
    module_name, _, attr = value.partition(":")
    try:
        found = importlib.import_module(module_name)
        # a package (namespace packages have no __file__: their first folder), or an attribute
        found = getattr(found, attr) if attr else (Path(found.__file__).parent if found.__file__
                                                   else next(iter(found.__path__)))
    except (ImportError, AttributeError, TypeError) as exc:
        raise RecllmError(f"template folder {name!r} ({value}) cannot be loaded: {exc}",
                          hint="check the package's recllm.templates entry point") from None
    if not isinstance(found, (str, os.PathLike)) or not Path(found).is_dir():
        raise RecllmError(f"template folder {name!r} ({value}) is not a folder: {found!r}",
                          hint="the entry point names a package, or a str/Path attribute holding a folder")
    return Path(found)


def template_files(dirs: Iterable[str | Path] = ()) -> dict[str, Path]:
    """name -> file, first folder wins."""
    files: dict[str, Path] = {}
    for folder in template_dirs(dirs):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix in SUFFIXES and path.is_file():
                files.setdefault(path.stem, path)
    return files


def is_path(name_or_path: str | Path) -> bool:
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or os.sep in text or "/" in text or text.endswith(SUFFIXES)


def load_template(name_or_path: str | Path, *, dirs: Iterable[str | Path] = ()) -> PromptTemplate:
    """A template by name (see the search order above) or by file path."""
    if is_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise RecllmError(f"template file not found: {path}",
                              hint="pass a .jinja file, or a name from `recllm prompts list`")
        return _load(path.resolve())
    files = template_files(dirs)
    if name_or_path not in files:
        raise unknown("template", str(name_or_path), files)
    return _load(files[name_or_path])


def list_templates(*, dirs: Iterable[str | Path] = ()) -> list[PromptTemplate]:
    """Every template that can be loaded by name, sorted by name."""
    return [_load(path) for _, path in sorted(template_files(dirs).items())]


def _load(path: Path) -> PromptTemplate:
    stat = path.stat()
    return _load_cached(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _load_cached(path: Path, mtime_ns: int, size: int) -> PromptTemplate:
    """Parsing is cached per file version (mtime and size), so edits are picked up."""
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecllmError(f"template is not UTF-8 text: {exc}", where=str(path)) from None
    template = parse_template(source, path)
    if template.name != path.stem:
        raise RecllmError(f"header name {template.name!r} differs from the file name {path.stem!r}",
                          where=f"{path} (header)", hint=f"set `name: {path.stem}` or rename the file")
    return template
