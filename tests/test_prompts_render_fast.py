"""The render fast paths change nothing: exact text for a fixture, the same output as Jinja's
plain immutable sandbox for every shipped template, and the sandbox still guards everything but
an item's declared fields."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

import recllm.prompting.template as template_module
from recllm.data.schema import UserCase
from recllm.errors import RecllmError
from recllm.prompting import (ITEM_FIELDS, PromptItem, build_context, list_templates, load_template,
                              parse_template, render_prompt)
from recllm.prompting.context import _placed
from recllm.prompting.render import render_context

CASE = UserCase("u3", ("1", "7", "5", "6", "12"), (3.0, 4.0, 5.0, 1.0, 2.0),
                (100, 100, 200, 300, 400), target="8", target_timestamp=500)

RANK_SEQUENTIAL = """\
I've watched the following movies in the past in order:
1. Toy Story (1995)
2. Star Wars (1977)
3. La Cité des enfants perdus (1995)
4. Shanghai Triad (1995)
5. {{ config }} {% raw %} (2001)

Now there are 3 candidate movies that I can watch next:
1. {{ config }} {% raw %} (2001)
2. Jumanji (1995)
3. Fargo (1996)
Please rank these 3 movies by measuring the possibilities that I would like to watch next most, \
according to my history.
Please show me your ranking results with order numbers. Split your output with line break. You \
MUST rank the given candidate movies. You can not generate movies that are not in the given \
candidate list."""

GENERATE_RATINGS_LAST_3 = """\
Movies I have watched, oldest first, with my rating:
- La Cité des enfants perdus (1995) [Adventure, Sci-Fi]: 5
- Shanghai Triad (1995) [Drama]: 1
- {{ config }} {% raw %} (2001) [Drama]: 2

Recommend 10 different movies that I have not watched yet, most like the ones I rated highly.
Give one movie per line, numbered 1 to 10, with its release year in parentheses."""


def test_rendered_text_is_exactly_as_before(tiny_dataset):
    """Texts recorded before the fast paths existed (titles-as-data included)."""
    out = render_prompt(load_template("rank-sequential"), CASE, tiny_dataset,
                        candidates=["12", "2", "8"])
    assert out.messages == ({"role": "user", "content": RANK_SEQUENTIAL},)
    out = render_prompt(load_template("generate-ratings"), CASE, tiny_dataset, max_history=3)
    assert out.messages[1] == {"role": "user", "content": GENERATE_RATINGS_LAST_3}
    assert out.history_used == 3 and out.history_cut == 2


def _reference(template):
    """The same template compiled by Jinja's stock immutable sandbox (no shortcut)."""
    stock = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                                          trim_blocks=True, lstrip_blocks=True,
                                          keep_trailing_newline=False)
    mp = pytest.MonkeyPatch()
    mp.setattr(template_module, "_ENV", stock)
    try:
        return parse_template(template.source, template.path)
    finally:
        mp.undo()


@pytest.mark.parametrize("template", list_templates(), ids=lambda t: t.name)
def test_every_shipped_template_renders_as_the_stock_sandbox_does(template, tiny_dataset):
    stock = _reference(template)
    assert not isinstance(stock._compiled.environment, template_module.PromptEnvironment)
    cands = ["12", "2", "8", "7"] if template.header.mode == "rank" else []
    for domain, plural in ((None, None), ("book", "books")):
        context = build_context(CASE, tiny_dataset, k=template.header.k, candidates=cands,
                                domain=domain, domain_plural=plural)
        for keep in (5, 3, 1, 0):
            fast = render_context(template, context, keep)
            assert fast.messages == render_context(stock, context, keep).messages
            assert fast.prompt == render_context(stock, context, keep).prompt


def test_items_are_built_as_dataclasses_replace_would():
    assert [f.name for f in fields(PromptItem)] == [
        "id", "title", "year", "genres", "description", "rating", "time", "position"], \
        "a new PromptItem field must be copied by context._placed"
    base = PromptItem("9", "Heat", 1986, ("Action",), "A heist.")
    assert _placed(base, 3, 4.5, 900_000_000) == replace(base, position=3, rating=4.5,
                                                         time=900_000_000)
    assert _placed(base, 2) == replace(base, position=2)


def test_context_items_carry_per_user_fields(tiny_dataset):
    ctx = build_context(CASE, tiny_dataset, candidates=["2", "8"])
    assert [(i.id, i.position, i.rating, i.time) for i in ctx.history] == [
        ("1", 1, 3.0, 100), ("7", 2, 4.0, 100), ("5", 3, 5.0, 200), ("6", 4, 1.0, 300),
        ("12", 5, 2.0, 400)]
    assert [(i.id, i.position, i.rating, i.time) for i in ctx.candidates] == [
        ("2", 1, None, None), ("8", 2, None, None)]
    window = ctx.window(2)["history"]
    assert [(i.id, i.position, i.rating) for i in window] == [("6", 1, 1.0), ("12", 2, 2.0)]


@pytest.mark.parametrize("expr", [
    "history[0].__class__", "history[0].__dict__", "history[0].__init__.__globals__",
    "history[0].title.__class__.__mro__", "history[0]['__class__']",
])
def test_the_sandbox_still_guards_items(expr, tiny_dataset):
    t = parse_template("{#\nname: probe\ndescription: d\nmode: generate\nchat: false\n#}\n"
                       f"{{{{ {expr} }}}} {{{{ k }}}}\n")
    with pytest.raises(RecllmError, match="unsafe|not exist|not provided|render failed"):
        render_prompt(t, CASE, tiny_dataset)


def test_undeclared_item_fields_are_still_errors(tiny_dataset):
    for name in ("director", "items", "count", "index"):
        assert name not in ITEM_FIELDS
        t = parse_template("{#\nname: probe\ndescription: d\nmode: generate\nchat: false\n#}\n"
                           f"{{% for i in history %}}{{{{ i.{name} }}}}{{% endfor %}}{{{{ k }}}}\n")
        with pytest.raises(RecllmError, match=f"does not exist: '{name}'"):
            render_prompt(t, CASE, tiny_dataset)


def test_item_fields_still_read_through_the_sandbox(tiny_dataset):
    t = parse_template("{#\nname: probe\ndescription: d\nmode: generate\nchat: false\n#}\n"
                       "{% for i in history %}{{ i.position }}:{{ i.label }}|{{ i['year'] }}|"
                       "{{ i.genres | join('/') }}|{{ i.date }}\n{% endfor %}{{ k }}\n")
    out = render_prompt(t, CASE, tiny_dataset, max_history=2)
    assert out.prompt == ("1:Shanghai Triad (1995)|1995|Drama|None\n"
                          "2:{{ config }} {% raw %} (2001)|2001|Drama|None\n10")
