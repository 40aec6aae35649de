"""Bounds on what one template render may cost: steps, seconds, and the size of any value.

Jinja's sandbox stops a template from reaching Python internals, not from spending the
machine: `'x' * 10**10`, `9 ** (9 ** 9)`, a recursive macro, or nested loops over
`range(100000)` all hang or exhaust memory. Here, without a thread or process per render:

- operators `*`, `**`, `+`, `%` go through `call_binop`, which refuses a result that would be
  too large *before* computing it (a C-level big-int power cannot be interrupted later).
  Intercepting them also stops Jinja folding them at compile time, so `{{ 9 ** 9 ** 9 }}`
  does not hang `parse_template` either;
- every loop iteration and every call (macros, methods, `loop()`) is a step; a render may
  take MAX_STEPS steps and MAX_SECONDS seconds (the clock is read every CLOCK_EVERY steps);
- strings and lists built by an operator, call, growing filter (GROWING_FILTERS), `~` or
  namespace assignment, and the rendered text itself, are refused beyond MAX_CHARS; integer arguments beyond MAX_CHARS
  (they could only size an allocation past it) and integers beyond MAX_INT_BITS too.

A refusal is a `RenderLimit` (a `jinja2.sandbox.SecurityError`), reported by the template as
one line naming the limit.
"""

from __future__ import annotations

import contextvars
import functools
import math
import operator
import re
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from jinja2 import filters as jinja_filters
from jinja2 import nodes, pass_context, pass_eval_context
from jinja2.sandbox import SecurityError
from jinja2.utils import Namespace

MAX_CHARS = 1 << 21  # 2 Mi characters (~500k tokens): beyond any model's context window
BLOCK = 128  # output pieces joined between size checks
MAX_INT_BITS = 1 << 16
MAX_STEPS = 1_000_000
MAX_SECONDS = 5.0
CLOCK_EVERY = 1024
STEPS_FILTER, CONCAT_FILTER = "_recllm_steps", "_recllm_concat"


class RenderLimit(SecurityError):
    """A template went past one of the bounds above."""


_WIDE_FORMAT = re.compile(r"\d{7,}")  # a width or precision of a million or more in a format string


class Budget:
    """Steps and a deadline for one render; `step()` is cheap (a decrement)."""

    __slots__ = ("left", "used", "deadline")

    def __init__(self) -> None:
        self.left, self.used, self.deadline = CLOCK_EVERY, 0, time.monotonic() + MAX_SECONDS

    def step(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.refill()

    def charge(self, n: int) -> None:
        self.left -= n
        if self.left <= 0:
            self.refill()

    def refill(self) -> None:
        """Count the steps since the last refill (`left` is <= 0 here), then check the limits."""
        self.used += CLOCK_EVERY - self.left
        self.left = CLOCK_EVERY
        if self.used > MAX_STEPS:
            raise RenderLimit(f"template ran more than {MAX_STEPS:,} loop iterations and calls")
        if time.monotonic() > self.deadline:
            raise RenderLimit(f"template took longer than {MAX_SECONDS:g} s to render")


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("recllm_budget", default=None)


def budget() -> Budget:
    """The budget of the render in progress (a fresh one outside a render, e.g. compile time)."""
    return _BUDGET.get() or Budget()


def start() -> contextvars.Token:
    return _BUDGET.set(Budget())


def stop(token: contextvars.Token) -> None:
    _BUDGET.reset(token)


def size(value: Any) -> int:
    """Characters of a string, or items plus the characters of the strings in a list/tuple."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return len(value) + sum(len(v) for v in value if isinstance(v, str))
    if isinstance(value, (range, dict, set, frozenset)):  # joined or mapped item by item
        return len(value)
    return 0


def check_size(value: Any, what: str = "a value") -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise RenderLimit(f"{what}: an integer of more than {MAX_INT_BITS:,} bits")
    if size(value) > MAX_CHARS:
        raise RenderLimit(f"{what} would exceed {MAX_CHARS:,} characters")
    return value


def check_args(args: Iterable[Any], what: str) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_CHARS:
            raise RenderLimit(f"{what}: argument {arg} is larger than {MAX_CHARS:,}")
        check_size(arg, what)


def check_binop(op: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too large, before computing it."""
    if op == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and size(seq) * max(n, 0) > MAX_CHARS:
                raise RenderLimit(f"'*' would build more than {MAX_CHARS:,} characters")
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise RenderLimit(f"'*' would build an integer of more than {MAX_INT_BITS:,} bits")
    elif op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if right * math.log2(abs(left)) > MAX_INT_BITS:
                raise RenderLimit(f"'**' would build an integer of more than {MAX_INT_BITS:,} bits")
    elif op == "%" and isinstance(left, str):
        check_format(left, right if isinstance(right, tuple) else (right,), "'%'")


def check_format(fmt: str, args: Iterable[Any], what: str) -> None:
    if _WIDE_FORMAT.search(fmt):
        raise RenderLimit(f"{what}: a field width or precision of a million or more")
    check_args(args, what)


BINOPS = {"*": operator.mul, "**": operator.pow, "+": operator.add, "%": operator.mod}


def binop(op: str, left: Any, right: Any) -> Any:
    check_binop(op, left, right)
    return check_size(BINOPS[op](left, right), f"{op!r}")


def call(obj: Any, args: tuple, kwargs: dict) -> None:
    """Checks before any call from a template (the sandbox's safety checks come after)."""
    budget().step()
    if not args and not kwargs:
        return
    what = f"call of {getattr(obj, '__name__', type(obj).__name__)}"
    check_args(args, what)
    check_args(kwargs.values(), what)
    owner = getattr(obj, "__self__", None)
    if isinstance(owner, str):  # str methods that multiply sizes, as the filters do
        name = getattr(obj, "__name__", "")
        if name == "expandtabs":
            raise RenderLimit("str.expandtabs is not available in templates")
        if name == "replace" and len(args) >= 2:
            _pre_replace(None, owner, *args[:3])
        elif name == "join" and args:
            _pre_join(None, args[0], owner)


def _refuse_growth(what: str) -> None:
    raise RenderLimit(f"filter {what} could build more than {MAX_CHARS:,} characters")


def _pre_replace(eval_ctx, s, old, new, count=None):
    if isinstance(s, str) and isinstance(old, str) and isinstance(new, str):
        hits = s.count(old) if old else len(s) + 1
        if len(s) + min(hits, count if isinstance(count, int) and count >= 0 else hits) * len(new) > MAX_CHARS:
            _refuse_growth("replace")


def _pre_join(eval_ctx, value, d="", attribute=None):
    n = len(value) if isinstance(value, (list, tuple, range, dict, set, frozenset)) else 0
    if n * len(str(d)) + size(value) > MAX_CHARS:
        _refuse_growth("join")


@pass_eval_context
def join(eval_ctx, value, d="", attribute=None) -> str:
    """Jinja's `join` (its sync form: this environment is never async), bounded; an item's
    genres (a short tuple, a short separator) skip the size sums."""
    if not (type(value) is tuple and len(value) <= 16 and type(d) is str and len(d) <= 64):
        _pre_join(eval_ctx, value, d, attribute)
    return _checked(jinja_filters.sync_do_join(eval_ctx, value, d, attribute), "join")


def format(value, *args, **kwargs) -> str:  # noqa: A001 (the filter's name)
    """Jinja's `format`, bounded; `"%g" | format(rating)` skips the checks."""
    if type(value) is not str or len(value) > 6 or kwargs or len(args) != 1 or type(args[0]) is not float:
        _pre_format(value, *args, **kwargs)
    return _checked(jinja_filters.do_format(value, *args, **kwargs), "format")


def _checked(result: str, name: str) -> str:
    if len(result) > MAX_CHARS:
        raise RenderLimit(f"filter {name} built more than {MAX_CHARS:,} characters")
    return result


def _pre_center(value, width=80):
    check_args((width,), "filter center")


def _pre_indent(s, width=4, first=False, blank=False):
    per_line = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    if isinstance(s, str) and len(s) + (s.count("\n") + 1) * per_line > MAX_CHARS:
        _refuse_growth("indent")


def _pre_wordwrap(environment, s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True):
    if isinstance(s, str) and len(s) * (1 + len(str(wrapstring or ""))) > MAX_CHARS:
        _refuse_growth("wordwrap")


def _pre_format(value, *args, **kwargs):
    if isinstance(value, str):
        check_format(value, (*args, *kwargs.values()), "filter format")


# Filters whose result can outgrow their input (the others map, select or shorten it): `join`
# and `format` (used by the shipped templates, per item) above, the rest wrapped with a check
# of their arguments that runs first.
GROWING_FILTERS = {"replace": _pre_replace, "center": _pre_center, "indent": _pre_indent,
                   "wordwrap": _pre_wordwrap}
BOUNDED_FILTERS = {"join": join, "format": format}


def bounded_filter(func, check):
    """`func` with `check(*args, **kwargs)` before it and its result's size checked after."""

    @functools.wraps(func)  # keeps Jinja's pass_context / pass_eval_context marker
    def wrapper(*args, **kwargs):
        check(*args, **kwargs)
        return _checked(func(*args, **kwargs), func.__name__.removeprefix("do_"))

    return wrapper


@pass_context
def steps(context, iterable: Iterable[Any]) -> Iterable[Any]:
    """A loop's iterable (wrapped around every `{% for %}` at parse time): a list, tuple or
    range is charged its length up front and passed on unchanged (so `loop.length` and the
    output stay exactly as Jinja makes them); anything else is charged one step per item."""
    counter = budget()
    if isinstance(iterable, (list, tuple, range, dict, str)):
        counter.charge(len(iterable))
        return iterable
    return _counted(counter, iterable)


def _counted(counter: Budget, iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        counter.step()
        yield item


@pass_context
def concat(context, parts: tuple) -> str:
    """`a ~ b ~ c`, refused before joining when the result would be too large."""
    texts = [str(p) for p in parts]
    if sum(map(len, texts)) > MAX_CHARS:
        raise RenderLimit(f"'~' would build more than {MAX_CHARS:,} characters")
    return "".join(texts)


class BoundedNamespace(Namespace):
    """`namespace()` whose attributes cannot grow past the size limit (loops accumulate there)."""

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, check_size(value, f"namespace attribute {name!r}"))


def guard_ast(ast: nodes.Template) -> nodes.Template:
    """Count loop iterations and bound `~`: wrap every For's iterable and every Concat."""
    for node in ast.find_all(nodes.For):
        node.iter = nodes.Filter(node.iter, STEPS_FILTER, [], [], None, None, lineno=node.iter.lineno)
    for node in list(ast.find_all(nodes.Concat)):
        parts = nodes.Tuple(node.nodes, "load", lineno=node.lineno)
        node.nodes = [nodes.Filter(parts, CONCAT_FILTER, [], [], None, None, lineno=node.lineno)]
    return ast


def join_bounded(pieces: Iterable[str], what: str) -> str:
    """"".join(pieces), refused once the text passes MAX_CHARS (checked every BLOCK pieces:
    a per-piece check cost more than the rest of the bounds together)."""
    out, total, it = [], 0, iter(pieces)
    while True:
        block = list(islice(it, BLOCK))
        text = "".join(block)
        total += len(text)
        if total > MAX_CHARS:
            raise RenderLimit(f"{what} is longer than {MAX_CHARS:,} characters")
        out.append(text)
        if len(block) < BLOCK:
            return text if len(out) == 1 else "".join(out)
