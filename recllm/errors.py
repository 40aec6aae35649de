"""One error type for everything a user can fix, with a hint that says what to do next."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RecllmError(Exception):
    """An error caused by input or setup, shown to the user without a traceback.

    `where` names the file, line or field at fault; `hint` says what to do about it.
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message, self.where, self.hint = message, where, hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text}\n  hint: {self.hint}" if self.hint else text


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> RecllmError:
    """An 'unknown X' error that suggests the closest known name and lists them all."""
    choices = sorted(choices)
    return RecllmError(
        f"unknown {kind} {name!r}{did_you_mean(name, choices)}",
        hint=f"known {kind}s: {', '.join(choices)}" if choices else None,
    )
