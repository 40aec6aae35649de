"""One error type for everything a user can fix, with a hint that says what to do next."""

from __future__ import annotations

import difflib
import errno
import os
from collections.abc import Iterable
from contextlib import contextmanager


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


# OSError numbers that mean "this folder cannot take the data", not "the input is bad".
_STORAGE_ERRNOS = frozenset(getattr(errno, n) for n in ("EACCES", "EPERM", "ENOSPC", "EROFS", "EDQUOT",
                                                         "ENOTDIR", "EEXIST") if hasattr(errno, n))


def is_storage_error(exc: BaseException) -> bool:
    """Also for errors that carry only the text (pyarrow's IO errors have no errno)."""
    return isinstance(exc, OSError) and (exc.errno in _STORAGE_ERRNOS or (
        exc.errno is None and any(os.strerror(n) in str(exc) for n in _STORAGE_ERRNOS)))


@contextmanager
def writing_to(folder: object, hint: str = ""):
    """Turn a full or unwritable folder (ENOSPC, EACCES, EROFS ...) into one RecllmError naming
    the file or folder at fault (`folder` when the OSError names none)."""
    try:
        yield
    except OSError as exc:
        if not is_storage_error(exc):
            raise
        where = exc.filename or folder
        full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)) or (
            os.strerror(errno.ENOSPC) in str(exc))
        raise RecllmError(
            f"cannot write here: {exc.strerror or exc}", where=str(where),
            hint=("free some space there, or " if full else "")
            + "set RECLLM_HOME to a writable folder with room for the data" + hint,
        ) from None
