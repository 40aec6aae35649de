"""Templates that would hang or exhaust memory (at compile time or at render time) are one
RecllmError, fast; `prompts check` and `render` agree about top-level `{% set %}`.

Before the bounds, each bomb below hung the process or ran it out of memory: the pytest
timeout marks turn such a hang into a failure instead of a stuck suite."""

from __future__ import annotations

import pytest

from recllm.cli import main
from recllm.errors import RecllmError
from recllm.prompting import bounds, check_template, parse_template, render_prompt
from recllm.data.schema import UserCase
from conftest import make_dataset

HEADER = "{#\nname: probe\ndescription: d\nmode: generate\nchat: false\n#}\n"
CASE = UserCase("u1", ("1", "2", "3"), (4.0, 3.0, 5.0), (10, 20, 30), target="4", target_timestamp=40)

BOMBS = {
    "repeat": "{{ 'x' * 10**10 }}",
    "repeat-list": "{{ (['x' * 2000000] * 1000) | join }}",
    "power": "{{ 9 ** (9 ** 9) }}",
    "recursive-macro": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "nested-loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "loop-output": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "center": "{{ 'x' | center(1000000000) }}",
    "str-method": "{{ 'x'.ljust(1000000000) }}",
    "format-width": "{{ '%0999999999d' | format(1) }}",
    "str-format-width": "{{ '{:>999999999}'.format(1) }}",
    "percent-width": "{{ '%0999999999d' % 1 }}",
    "replace": "{{ ('x' * 1000000) | replace('x', 'x' * 1000) }}",
    "join": "{{ range(100000) | join('x' * 1000000) }}",
    "concat": "{% set a = 'x' * 2000000 %}{{ a ~ a ~ a ~ a ~ a ~ a }}",
    "namespace-doubling": "{% set ns = namespace(s='xx') %}{% for i in range(60) %}"
                          "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
    "indent": "{{ ('a\n' * 1000000) | indent(1000) }}",
    "expandtabs": "{{ ('\t' * 1000).expandtabs(100000) }}",
}


def render(body: str):
    return render_prompt(parse_template(HEADER + body + " {{ k }}\n"), CASE, make_dataset())


@pytest.mark.timeout(20)
@pytest.mark.parametrize("body", BOMBS.values(), ids=BOMBS.keys())
def test_bombs_are_one_error(body):
    with pytest.raises(RecllmError) as info:
        render(body)
    assert info.value.where.startswith("<template probe>")


@pytest.mark.timeout(20)
@pytest.mark.parametrize("body", ["{{ 9 ** (9 ** 9) }}", "{{ ('x' * 10**10) | length }}",
                                  "{{ 'x' | center(1000000000) }}"])
def test_constant_expressions_are_not_folded_at_compile_time(body):
    template = parse_template(HEADER + body + "\n")  # Jinja folded these while compiling: a hang
    with pytest.raises(RecllmError, match="render limit"):
        render_prompt(template, CASE, make_dataset())


def test_compile_errors_are_one_error():
    for body in ["{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "{{ " + "9" * 5000 + " }}"]:
        with pytest.raises(RecllmError, match="cannot be compiled"):
            parse_template(HEADER + body + "\n")


def test_exponential_macro_hits_the_step_limit(monkeypatch):
    monkeypatch.setattr(bounds, "MAX_STEPS", 20_000)
    body = "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    with pytest.raises(RecllmError, match="20,000 loop iterations and calls"):
        render(body)


def test_deadline_is_checked_between_steps(monkeypatch):
    monkeypatch.setattr(bounds, "MAX_SECONDS", -1.0)  # already past: the first clock check stops it
    with pytest.raises(RecllmError, match="longer than"):
        render("{% for i in range(5000) | list %}{% endfor %}")
    render("{% for i in range(10) %}{% endfor %}")  # a short loop never reads the clock


def test_output_size_is_bounded(monkeypatch):
    monkeypatch.setattr(bounds, "MAX_CHARS", 1000)
    with pytest.raises(RecllmError, match="longer than 1,000 characters"):
        render("{% for i in range(500) %}{{ i }} {% endfor %}")
    assert len(render("{% for i in range(50) %}{{ i }} {% endfor %}").prompt) < 1000


def test_ordinary_templates_are_untouched():
    out = render("{% set ns = namespace(n=0) %}{% for item in history %}{% set ns.n = ns.n + 1 %}"
                 "{{ loop.index }}/{{ loop.length }} {{ item.title * 2 }}{{ '%g' | format(item.rating) }}"
                 "{{ item.genres | join('|') }} {% endfor %}{{ ns.n ** 2 }} {{ '%5.1f' % 3.14159 }}"
                 "{{ 'a-b' | replace('-', '+') }}{{ ['x', 'y'] | join(', ') }}{{ 'ab' ~ 1 }}")
    assert out.prompt == ("1/3 Toy StoryToy Story4Animation|Children's|Comedy 2/3 JumanjiJumanji3"
                          "Adventure|Children's|Fantasy 3/3 The Usual SuspectsThe Usual Suspects5"
                          "Crime|Thriller 9   3.1a+bx, yab1 10")


def test_cli_render_of_a_bomb_is_one_error_line(tmp_path, capsys, monkeypatch):
    import recllm.data

    monkeypatch.setattr(recllm.data, "load_dataset", lambda name, **kw: make_dataset())
    path = tmp_path / "bomb.jinja"
    path.write_text(HEADER.replace("probe", "bomb") + "{{ 'x' * 10**10 }}{{ k }}\n")
    assert main(["prompts", "render", str(path), "--dataset", "tiny", "--user", "u1"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and "render limit" in err
    assert len([line for line in err.splitlines() if not line.startswith("  hint:")]) == 1, err


CHAT = "{#\nname: %s\ndescription: d\nmode: generate\n#}\n"
SET_FIRST = "{% set noun = domain_plural %}\n{% block user %}Recommend {{ k }} {{ noun }}.{% endblock %}\n"
SET_AFTER = "{% block user %}Recommend {{ k }} {{ noun }}.{% endblock %}\n{% set noun = domain_plural %}\n"


def test_check_and_render_agree_on_top_level_set():
    first = parse_template(CHAT % "first" + SET_FIRST)
    assert check_template(first).ok and "noun" not in first.variables
    assert render_prompt(first, CASE, make_dataset()).messages[0]["content"] == "Recommend 10 movies."
    after = parse_template(CHAT % "after" + SET_AFTER)  # used before it is set: both refuse it
    assert not check_template(after).ok and "'noun' is undefined" in check_template(after).problems[0]
    with pytest.raises(RecllmError, match="'noun' is undefined"):
        render_prompt(after, CASE, make_dataset())


def test_set_inside_a_block_is_still_local_to_it():
    t = parse_template(CHAT % "inner" + "{% block system %}{% set noun = 'x' %}{% endblock %}"
                       "{% block user %}{{ noun }} {{ k }}{% endblock %}\n")
    assert "noun" in t.variables and not check_template(t).ok
