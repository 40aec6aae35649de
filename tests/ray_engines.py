"""Engines for the Ray executor tests, importable by Ray's worker processes (PYTHONPATH)."""

from __future__ import annotations

import os
from pathlib import Path

from recllm.backends.scripted import ScriptedBackend, ScriptedOptions


class CrashOnceOptions(ScriptedOptions):
    crash_file: str          # exists once the crash happened (shared by every actor)
    crash_key: str           # the request whose batch kills its actor, the first time


class CrashOnce(ScriptedBackend):
    """Scripted answers; the first actor handed `crash_key` dies on the spot (os._exit), as a
    lost node or an OOM kill would, so Ray must restart it and retry that block."""

    Options = CrashOnceOptions

    def generate(self, requests):
        marker = Path(self.options.crash_file)
        if any(r.key == self.options.crash_key for r in requests) and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
        return super().generate(requests)
