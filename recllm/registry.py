"""Name -> implementation maps for every extension point, imported lazily, open to plugins.

Built-ins are `"module:attr"` strings (lm-evaluation-harness `models/__init__.py` style), so a
registry costs nothing to import (or the objects themselves, where they are already loaded). A separate package adds an entry without touching recllm by
declaring an entry point in its own pyproject.toml (simonw/llm's plugin hooks are the anchor):

    [project.entry-points."recllm.baselines"]
    mymodel = "my_package.mymodel:MyBaseline"

Groups: `recllm.backends`, `recllm.baselines`, `recllm.loaders`, `recllm.metrics`,
`recllm.templates`. A plugin cannot replace a built-in of the same name (built-ins win, so an
installed package never silently changes what a documented name computes).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from functools import cached_property
from importlib import metadata
from typing import Any

from recllm.errors import RecllmError, unknown


class Registry:
    """Lazily imported named objects of one kind, built-ins first, then entry points."""

    def __init__(self, kind: str, group: str, builtins: dict[str, Any],
                 aliases: dict[str, str] | None = None):
        self.kind, self.group = kind, group
        self.builtins, self.aliases = dict(builtins), dict(aliases or {})
        self._loaded: dict[str, Any] = {}

    @cached_property
    def plugins(self) -> dict[str, str]:
        """Entry points of this group from installed packages (name -> "module:attr")."""
        found = {ep.name: ep.value for ep in metadata.entry_points(group=self.group)}
        return {k: v for k, v in found.items() if k not in self.builtins}

    def paths(self) -> dict[str, Any]:
        return {**self.builtins, **self.plugins}

    def names(self) -> list[str]:
        return list(self.paths())

    def canonical(self, name: str) -> str:
        return self.aliases.get(name, name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) in self.paths()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> Any:
        """The object registered under `name` (or an alias); unknown names get a did-you-mean."""
        key = self.canonical(name)
        if key in self._loaded:
            return self._loaded[key]
        paths = self.paths()
        if key not in paths:
            raise unknown(self.kind, name, paths)
        if not isinstance(paths[key], str):  # a built-in given as the object itself
            return paths[key]
        module_name, _, attr = paths[key].partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            where = "plugin" if key in self.plugins else "built-in"
            raise RecllmError(f"{self.kind} {key!r} ({where} {paths[key]}) cannot be loaded: {exc}",
                              hint="install what it needs, or check the entry point") from None
        self._loaded[key] = obj
        return obj
