"""Chat templates render each message block through Jinja's public API (Template.blocks,
new_context, make_module), with the semantics of rendering the whole file: a block sees the
top-level sets made before it, a block Jinja would not reach is no message, macros work."""

from __future__ import annotations

from pathlib import Path

import pytest

from recllm.data.schema import UserCase
from recllm.errors import RecllmError
from recllm.prompting import parse_template, render_prompt
from tests.test_prompts_bounds import make_dataset

CASE = UserCase("u1", ("1", "2", "3"), (4.0, 3.0, 5.0), (10, 20, 30), target="4", target_timestamp=40)
HEAD = "{#\nname: t\ndescription: d\nmode: generate\n#}\n"


def messages(body: str) -> list[tuple[str, str]]:
    out = render_prompt(parse_template(HEAD + body), CASE, make_dataset())
    return [(m["role"], m["content"]) for m in out.messages]


def test_a_set_between_blocks_reaches_only_the_later_block():
    body = ("{% block system %}S {{ noun | default('none') }}{% endblock %}\n{% set noun = domain_plural %}\n"
            "{% block user %}U {{ noun }}{% endblock %}\n")
    assert messages(body) == [("system", "S none"), ("user", "U movies")]


@pytest.mark.parametrize(("test", "roles"), [("history | length > 10", ["user"]),
                                             ("history | length > 1", ["system", "user"])])
def test_a_block_inside_an_if_is_a_message_only_when_reached(test, roles):
    body = (f"{{% if {test} %}}\n{{% set tone = 'brief' %}}\n{{% block system %}}Be {{{{ tone }}}}.{{% endblock %}}\n"
            "{% else %}{% set tone = 'long' %}{% endif %}\n{% block user %}Go {{ tone }}.{% endblock %}\n")
    got = messages(body)
    assert [r for r, _ in got] == roles
    assert got[-1][1] == ("Go brief." if "system" in roles else "Go long.")


def test_top_level_macros_and_set_blocks_serve_the_blocks():
    body = ("{% macro show(x) %}[{{ x }}]{% endmacro %}\n{% set intro %}I like {{ domain_plural }}{% endset %}\n"
            "{% block user %}{{ intro }} {{ show(domain) }}{% endblock %}\n")
    assert messages(body) == [("user", "I like movies [movie]")]


def test_an_error_in_the_top_level_names_its_line():
    body = "{% block system %}s{% endblock %}\n{% set x = 1 %}\n{% set y = missing_name ~ 'a' %}\n{% block user %}u{% endblock %}\n"
    with pytest.raises(RecllmError) as err:
        messages(body)
    assert err.value.where.endswith(":8") and "missing_name" in err.value.message


def test_no_private_jinja_api_in_prompting():
    source = "\n".join(p.read_text() for p in (Path(__file__).parents[1] / "recllm" / "prompting").glob("*.py"))
    for private in ("root_render_func", "from_code", "ctx.blocks", "context.blocks", "template_class"):
        assert private not in source, private



def test_prompting_imports_no_backend():
    """Prompting builds requests from the core module recllm.requests, not from backends."""
    for path in (Path(__file__).parents[1] / "recllm" / "prompting").glob("*.py"):
        assert "recllm.backends" not in path.read_text(), path.name
