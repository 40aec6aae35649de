"""One prompt template: a Jinja file whose first lines are a YAML header in a Jinja comment.

    {#
    name: generate
    version: 1
    description: Recommend k items from the user's history, no candidates.
    mode: generate          # generate (open, full catalog) | rank (order the given candidates)
    output: numbered_list   # numbered_list | json
    chat: true              # true: {% block system %} / {% block user %} messages; false: raw prompt
    k: 10
    stop: []
    #}
    {% block system %}You recommend {{ domain_plural }}.{% endblock %}
    {% block user %}...{% endblock %}

The header is a Jinja comment, so the file stays valid Jinja and error line numbers are the
file's own. Chat templates write one `{% block %}` per message, named by role (`system`,
`user`, `assistant`, optionally suffixed `_1`, `_2` ... for few-shot turns) in the order they
appear; text outside blocks must be whitespace. Completion templates (`chat: false`) render the
whole file as one raw prompt for base models. Rendering runs in Jinja's immutable sandbox with
StrictUndefined: values such as titles are data and are never parsed as template code.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from pydantic import Field

from recllm.errors import RecllmError
from recllm.prompting import bounds
from recllm.prompting.context import ITEM_FIELDS, VARIABLES, PromptItem
from recllm.options import StrictOptions

Message = dict[str, str]
ROLE_BLOCK = re.compile(r"^(system|user|assistant)(?:_\w+)?$")
_HEADER = re.compile(r"\A\s*\{#-?(.*?)-?#\}", re.DOTALL)


class TemplateHeader(StrictOptions):
    """The YAML header at the top of every template file (unknown keys are errors)."""

    name: str
    version: int | str = 1
    description: str
    mode: Literal["generate", "rank"]
    output: Literal["numbered_list", "json"] = "numbered_list"
    chat: bool = True
    k: int = Field(10, ge=1)
    stop: list[str] = Field(default_factory=list)


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, bounded (recllm.prompting.bounds: steps, seconds, sizes), with one
    shortcut: a declared field of a PromptItem (plain data: str, int, float, tuple of str or
    None) is read directly, without the sandbox's per-read safety checks, which were a third
    of the render time with ~140 item reads per prompt. Any other attribute, of a PromptItem
    or of anything else, takes the sandbox's full path."""

    intercepted_binops = frozenset(bounds.BINOPS)  # also keeps Jinja from folding them at compile time

    def __init__(self, **options: Any):
        super().__init__(**options)
        for name, check in bounds.GROWING_FILTERS.items():
            self.filters[name] = bounds.bounded_filter(self.filters[name], check)
        self.filters.update(bounds.BOUNDED_FILTERS)
        self.filters[bounds.STEPS_FILTER] = bounds.steps
        self.filters[bounds.CONCAT_FILTER] = bounds.concat
        self.globals["namespace"] = bounds.BoundedNamespace
        self.globals.pop("lipsum", None)  # random text, and sized by its argument

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is PromptItem and attribute in ITEM_FIELDS:
            return getattr(obj, attribute)
        return super().getattr(obj, attribute)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return bounds.guard_ast(super()._parse(source, name, filename))

    def wrap_str_format(self, value: Any):
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:  # '{:>999999999}'.format(1): refuse the width before formatting
            bounds.check_format(value.__self__, (), "str.format")
        return wrapped

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        return bounds.binop(operator, left, right)

    def call(__self, __context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        bounds.call(__obj, args, kwargs)
        return bounds.check_size(super().call(__context, __obj, *args, **kwargs), "a call's result")


def make_environment() -> ImmutableSandboxedEnvironment:
    """The one Jinja environment: sandboxed, immutable, bounded, undefined names are errors, no
    escaping (prompts are plain text), tidy block whitespace."""
    return PromptEnvironment(
        undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=False,
    )


_ENV = make_environment()


@dataclass(frozen=True, eq=False)
class PromptTemplate:
    """A parsed, compiled template. `sha256` hashes the file's exact text, for results."""

    header: TemplateHeader
    source: str
    path: Path | None = None

    def __post_init__(self):
        where = self.where
        token = bounds.start()  # compile-time constant folding runs filters: bound it too
        try:
            ast = _ENV.parse(self.source, name=self.header.name, filename=where)
            compiled = _ENV.from_string(ast)  # the public API; from the parsed (guarded) AST
            preludes = _preludes(ast) if self.header.chat else {}
        except TemplateSyntaxError as exc:
            raise RecllmError(f"template syntax error: {exc.message}", where=f"{where}:{exc.lineno}",
                              hint="fix the Jinja markup at that line") from None
        except (RecursionError, MemoryError) as exc:
            raise RecllmError(f"template cannot be compiled: {_describe(exc)}", where=where,
                              hint="simplify the template's expressions") from None
        except (ValueError, SecurityError) as exc:  # e.g. an integer literal of 5,000 digits
            raise RecllmError(f"template cannot be compiled: {exc}", where=where) from None
        finally:
            bounds.stop(token)
        object.__setattr__(self, "_ast", ast)
        object.__setattr__(self, "_compiled", compiled)
        object.__setattr__(self, "_prelude", preludes)
        self._check_layout(ast)

    @property
    def name(self) -> str:
        return self.header.name

    @property
    def where(self) -> str:
        return str(self.path) if self.path else f"<template {self.header.name}>"

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    @cached_property
    def variables(self) -> frozenset[str]:
        """Every name the template reads from its context (loop variables and sets excluded).

        Jinja's analysis treats each block as its own scope, so it counts a name set at the top
        level (`{% set noun = domain_plural %}` before the blocks) as read from outside; render
        runs the top level first and the blocks see it, so such names are template-local here
        too (`prompts check` and `render` agree; a set placed after its use still fails the
        check's fixture render, as it fails rendering)."""
        return frozenset(meta.find_undeclared_variables(self._ast)) - _top_level_names(self._ast)

    @property
    def roles(self) -> tuple[str, ...]:
        """Message block names in order (empty for completion templates)."""
        return tuple(self._compiled.blocks) if self.header.chat else ()

    def render(self, variables: Mapping[str, Any]) -> tuple[Message, ...] | str:
        """Chat messages (empty ones dropped) or the raw prompt; errors name file and line."""
        token = bounds.start()
        try:
            try:
                if self.header.chat:
                    captured = self._render_blocks(dict(variables))
                else:
                    outside = bounds.join_bounded(self._compiled.generate(variables), "the rendered text")
            except Exception:  # let Jinja map the traceback to template lines, then re-raise
                _ENV.handle_exception(self.source)
        except UndefinedError as exc:
            attr = re.search(r"has no attribute '(\w+)'", exc.message or "")
            what = (f"reads a field that does not exist: {attr.group(1)!r}" if attr else
                    f"uses a variable that was not provided: {exc.message}")
            raise self._error(exc, what,
                              f"templates may read {', '.join(VARIABLES)}; items have "
                              f"{', '.join(ITEM_FIELDS)}") from None
        except bounds.RenderLimit as exc:
            raise self._error(exc, f"render limit: {exc}", "templates are bounded in steps, seconds and "
                              "characters (recllm/prompting/bounds.py); simplify the template") from None
        except SecurityError as exc:
            raise self._error(exc, f"unsafe operation refused by the sandbox: {exc}", None) from None
        except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
            raise self._error(exc, f"render failed: {type(exc).__name__}: {exc}", None) from None
        except (RecursionError, MemoryError) as exc:
            raise self._error(exc, f"render failed: {_describe(exc)}",
                              "a macro or block that calls itself needs a condition that ends it") from None
        finally:
            bounds.stop(token)
        if not self.header.chat:
            text = outside.strip()
            if not text:
                raise RecllmError("template renders an empty prompt", where=self.where,
                                  hint="check the conditions around its text")
            return text
        messages = tuple({"role": ROLE_BLOCK.match(b).group(1), "content": c.strip()}
                         for b, c in captured.items() if c.strip())
        if not any(m["role"] == "user" for m in messages):
            raise RecllmError("template renders no user message (every user block is empty)",
                              where=self.where, hint="a chat template needs a non-empty {% block user %}")
        return messages

    def _render_blocks(self, variables: dict[str, Any]) -> dict[str, str]:
        """Each message block's text, through Jinja's public `Template.blocks` and `new_context`.

        A block with only blocks before it at the top level renders as it is. Otherwise the top
        level up to the block runs first as its prelude (see `_preludes`): whether execution
        reaches the block (a block inside a false `{% if %}` is no message) and which names the
        `{% set %}`s before it exported, which the block then sees, as when Jinja renders the
        whole file."""
        out: dict[str, str] = {}
        plain = None  # one context for every block without a prelude
        for name, func in self._compiled.blocks.items():
            prelude = self._prelude.get(name)
            if prelude is None:
                ctx = plain = plain or self._compiled.new_context(variables)
            else:
                module = prelude.make_module(variables)
                if _REACHED not in str(module):
                    continue
                ctx = self._compiled.new_context(
                    {**variables, **{n: getattr(module, n) for n in self._exports if hasattr(module, n)}})
            out[name] = bounds.join_bounded(func(ctx), f"block {name!r}")
        return out

    @cached_property
    def _exports(self) -> frozenset[str]:
        """Names a prelude may export: top-level sets and imports, and macros (those defined
        inside blocks or other macros are not exported, and `hasattr` leaves them out)."""
        return frozenset(_top_level_names(self._ast)) | {m.name for m in self._ast.find_all(nodes.Macro)}

    def _error(self, exc: Exception, message: str, hint: str | None) -> RecllmError:
        return RecllmError(message, where=f"{self.where}:{_template_line(exc)}", hint=hint)

    def _check_layout(self, ast: nodes.Template) -> None:
        blocks = [b.name for b in ast.find_all(nodes.Block)]
        if not self.header.chat:
            if blocks:
                raise RecllmError(f"completion template (chat: false) has blocks {blocks}",
                                  where=self.where, hint="remove the blocks or set `chat: true`")
            return
        bad = [b for b in blocks if not ROLE_BLOCK.match(b)]
        if bad or not blocks:
            raise RecllmError(
                f"chat template needs message blocks named system / user / assistant[_N]; "
                f"found {blocks or 'none'}", where=self.where,
                hint="write {% block system %}...{% endblock %} and {% block user %}...{% endblock %}")
        for node in ast.body:  # text outside blocks would be silently lost: refuse it
            if isinstance(node, nodes.Output) and any(
                not (isinstance(n, nodes.TemplateData) and not n.data.strip()) for n in node.nodes
            ):
                raise RecllmError("chat template has text outside its message blocks",
                                  where=f"{self.where}:{node.lineno}",
                                  hint="move it inside a {% block ... %} or into a {# comment #}")


def _top_level_names(ast: nodes.Template) -> set[str]:
    """Names assigned by `{% set %}` (or `{% import %}`) in the template's top-level scope:
    outside blocks, macros and loops, whose assignments do not reach the top level."""
    names: set[str] = set()
    scoped = (nodes.Block, nodes.Macro, nodes.CallBlock, nodes.For, nodes.FilterBlock, nodes.Scope)
    stack = list(ast.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (nodes.Assign, nodes.AssignBlock)):
            targets = [node.target, *node.target.find_all(nodes.Name)]  # a name, or a tuple of them
            names.update(n.name for n in targets if isinstance(n, nodes.Name) and n.ctx == "store")
        elif isinstance(node, (nodes.Import, nodes.FromImport)):
            names.update([node.target] if isinstance(node, nodes.Import) else
                         [n if isinstance(n, str) else n[1] for n in node.names])
        elif not isinstance(node, scoped):
            stack.extend(node.iter_child_nodes())
    return names


_REACHED = "\x00reached\x00"
_DROP_OUTPUT_IN = (nodes.Template, nodes.If, nodes.For, nodes.With, nodes.Scope,
                   nodes.ScopedEvalContextModifier)  # not macros or {% set %} blocks: their text is a value


def _preludes(ast: nodes.Template) -> dict[str, Any]:
    """Per block: None when only blocks (and whitespace) come before it at the top level; else
    a template of the top level up to the block (recllm's copy of the AST, cut there, other
    blocks and message-less output dropped), which writes a marker where the block would
    render."""
    preludes: dict[str, Any] = {}
    for block in ast.find_all(nodes.Block):
        index = next((i for i, n in enumerate(ast.body) if n is block), None)
        if index is not None and all(isinstance(n, nodes.Block) or _blank(n) for n in ast.body[:index]):
            preludes[block.name] = None
            continue
        body = copy.deepcopy(ast)
        _cut(body, block.name)
        preludes[block.name] = _ENV.from_string(body)
    return preludes


def _blank(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Output) and all(
        isinstance(n, nodes.TemplateData) and not n.data.strip() for n in node.nodes)


def _cut(node: nodes.Node, name: str) -> bool:
    """In place: keep what runs before block `name`, a marker at the block, nothing after;
    True when the block was found under `node`."""
    for field in node.fields:
        value = getattr(node, field, None)
        if not isinstance(value, list):
            continue
        kept: list = []
        for child in value:
            if isinstance(child, nodes.Block) and child.name == name:
                kept.append(nodes.Output([nodes.TemplateData(_REACHED)], lineno=child.lineno))
                setattr(node, field, kept)
                _drop_fields_after(node, field)
                return True
            if isinstance(child, nodes.Block) or (isinstance(child, nodes.Output) and isinstance(node, _DROP_OUTPUT_IN)):
                continue
            if isinstance(child, _DROP_OUTPUT_IN) and _cut(child, name):
                kept.append(child)
                setattr(node, field, kept)
                _drop_fields_after(node, field)
                return True
            kept.append(child)
        setattr(node, field, kept)
    return False


def _drop_fields_after(node: nodes.Node, field: str) -> None:
    """What follows the block in `node` never runs before it (else branches, later elifs)."""
    later = node.fields[node.fields.index(field) + 1:]
    for name in later:
        if isinstance(getattr(node, name, None), list):
            setattr(node, name, [])


def _describe(exc: BaseException) -> str:
    return ("nested too deeply (recursion)" if isinstance(exc, RecursionError)
            else "out of memory" if isinstance(exc, MemoryError) else str(exc))


def _template_line(exc: Exception) -> int | str:
    """The template line of a render error, from the traceback Jinja rewrites to the template
    (`Environment.from_string` templates are all named "<template>"; one renders at a time)."""
    line: int | str = "?"
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def parse_template(source: str, path: Path | None = None) -> PromptTemplate:
    """Split off and validate the header, compile the body."""
    where = str(path) if path else "<template>"
    match = _HEADER.match(source)
    if not match:
        raise RecllmError("template has no header", where=where,
                          hint="start the file with a {# ... #} comment holding YAML: name, "
                               "description, mode (generate|rank), output, chat, k, stop")
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1 + source[: match.start(1)].count(chr(10))}" if mark else ""
        raise RecllmError(f"malformed template header: {getattr(exc, 'problem', exc)}",
                          where=where + line, hint="the header is YAML inside {# ... #}") from None
    if not isinstance(data, dict):
        raise RecllmError("malformed template header: expected YAML `key: value` lines",
                          where=where, hint="e.g. `name: generate` and `mode: generate`")
    if path is not None:
        data.setdefault("name", path.stem)
    header = TemplateHeader.parse(data, where=f"{where} (header)")
    return PromptTemplate(header=header, source=source, path=path)
