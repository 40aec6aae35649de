"""Templates: every shipped one renders against the fixture; sandboxing; errors; determinism."""

from __future__ import annotations

import textwrap

import pytest

from recllm.backends.base import GenerationRequest, SamplingParams
from recllm.data.schema import UserCase
from recllm.errors import RecllmError
from recllm.prompting import (VARIABLES, build_context, builtin_dir, check_paths, list_templates,
                              load_template, parse_template, render_prompt)

SHIPPED = ["completion", "cross-domain", "explain", "generate", "generate-json", "generate-ratings", "rank-icl",
           "rank-recency", "rank-sequential", "score-cross-domain", "score-next"]


def case_for(dataset, user: str) -> UserCase:
    """Leave-one-out by hand (the split module belongs to the data layer)."""
    rows = dataset.interactions[dataset.interactions.user_id == user]
    items, ts, ratings = list(rows.item_id), list(rows.timestamp), list(rows.rating)
    return UserCase(user, tuple(items[:-1]), tuple(ratings[:-1]), tuple(int(t) for t in ts[:-1]),
                    target=items[-1], target_timestamp=int(ts[-1]))


def write(tmp_path, name: str, text: str):
    path = tmp_path / f"{name}.jinja"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


HEADER = """\
{{#
name: {name}
description: test
mode: {mode}
chat: {chat}
#}}
"""


def test_builtin_dir_holds_the_shipped_templates():
    assert builtin_dir() is not None
    assert SHIPPED == [t.name for t in list_templates()]


def test_check_passes_for_every_shipped_template():
    results = check_paths()
    assert {r.name for r in results} == set(SHIPPED)
    assert all(r.ok for r in results), [r.problems for r in results if not r.ok]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_template_renders_in_its_declared_form(name, tiny_dataset):
    template = load_template(name)
    case = case_for(tiny_dataset, "u1")  # history 1, 2, 3, 4 (Toy Story .. Heat); target 7
    cands = ["8", "7", "11"] if template.header.mode == "rank" else []
    out = render_prompt(template, case, tiny_dataset, candidates=cands)
    assert (out.messages is not None) == template.header.chat
    assert (out.prompt is not None) == (not template.header.chat)
    if out.messages:
        assert [m["role"] for m in out.messages][-1] == "user"
        assert all(m["content"] == m["content"].strip() and m["content"] for m in out.messages)
    text = out.text
    assert "Heat (1995)" in text  # the most recent history item is always shown
    assert "{{" not in text.replace("{{ config }}", "") and "{%" not in text
    shows = bool(cands) and "candidates" in template.variables  # score-next keeps them out
    if not shows:
        assert "Star Wars" not in text  # the target (item 7) is never in a prompt without candidates
    if cands:
        assert out.candidates == ("8", "7", "11") and ("Fargo (1996)" in text) == shows
    assert out.history_used == 4 and out.history_cut == 0
    assert out.template == name and len(out.template_hash) == 64


@pytest.mark.parametrize("name", SHIPPED)
def test_titles_are_data_never_template_code(name, tiny_dataset):
    """Item 12 is titled '{{ config }} {% raw %}': printed verbatim, as the last history item."""
    template = load_template(name)
    case = UserCase("u3", ("1", "7", "5", "6", "12"), (3.0, 4.0, 5.0, 1.0, 2.0),
                    (100, 100, 200, 300, 400), target="8", target_timestamp=500)
    cands = ["12", "2"] if template.header.mode == "rank" else []
    text = render_prompt(template, case, tiny_dataset, candidates=cands).text
    assert "{{ config }} {% raw %} (2001)" in text
    assert "Environment" not in text and "<" not in text


def test_sandbox_refuses_unsafe_attribute_access(tmp_path, tiny_dataset):
    path = write(tmp_path, "evil", HEADER.format(name="evil", mode="generate", chat="false")
                 + "{{ history.__class__.__mro__ }} {{ k }}\n")
    with pytest.raises(RecllmError, match="evil.jinja"):
        render_prompt(load_template(path), case_for(tiny_dataset, "u1"), tiny_dataset)


def test_template_runtime_error_names_the_line(tmp_path):
    path = write(tmp_path, "oops", HEADER.format(name="oops", mode="generate", chat="false")
                 + "{{ k }}\n{{ k / 0 }}\n")
    with pytest.raises(RecllmError, match=r"oops.jinja:8: render failed: ZeroDivisionError"):
        load_template(path).render({"k": 1})


def test_rendering_is_deterministic(tiny_dataset):
    case = case_for(tiny_dataset, "u3")
    for name in SHIPPED:
        t = load_template(name)
        cands = ["8", "2", "3"] if t.header.mode == "rank" else []
        a = render_prompt(t, case, tiny_dataset, candidates=cands)
        b = render_prompt(load_template(name), case, tiny_dataset, candidates=cands)
        assert a == b and a.template_hash == b.template_hash


def test_candidate_order_is_kept_as_given(tiny_dataset):
    t = load_template("rank-sequential")
    case = case_for(tiny_dataset, "u1")
    text = render_prompt(t, case, tiny_dataset, candidates=["11", "8", "9"]).text
    assert text.index("1. Braveheart") < text.index("2. Fargo") < text.index("3. Heat (1986)")


def test_cross_domain_nouns(tiny_dataset):
    t = load_template("cross-domain")
    out = render_prompt(t, case_for(tiny_dataset, "u2"), tiny_dataset, domain="book")
    assert "I have watched these movies" in out.text
    assert "recommend 10 books I would like to read" in out.text
    same = render_prompt(t, case_for(tiny_dataset, "u2"), tiny_dataset)
    assert "that I have not watched yet" in same.text and "both" not in same.text


def test_context_variables_match_the_declared_list(tiny_dataset):
    ctx = build_context(case_for(tiny_dataset, "u1"), tiny_dataset, k=5, candidates=["8"])
    assert set(ctx.window(2)) == set(VARIABLES)
    first = ctx.history[0]
    assert (first.title, first.year, first.rating, first.position) == ("Toy Story", 1995, 4.0, 1)
    assert first.label == "Toy Story (1995)" and first.genres[0] == "Animation"
    assert first.date is None  # timestamp 10 is row order, not a time
    window = ctx.window(2)
    assert [i.position for i in window["history"]] == [1, 2] and window["history_cut"] == 2


def test_to_request_uses_template_stop_unless_given(tiny_dataset):
    out = render_prompt(load_template("completion"), case_for(tiny_dataset, "u1"), tiny_dataset)
    req = out.to_request(SamplingParams(max_tokens=64))
    assert isinstance(req, GenerationRequest) and req.prompt == out.prompt and req.messages is None
    assert req.params.stop == ("\n\n",) and req.params.max_tokens == 64 and req.key == "u1"
    assert out.to_request(SamplingParams(stop=("END",)), key="x").params.stop == ("END",)
    chat = render_prompt(load_template("generate"), case_for(tiny_dataset, "u1"), tiny_dataset)
    assert chat.to_request().messages == chat.messages
    assert chat.to_dict()["messages"][0]["role"] == "system"


# --- errors -------------------------------------------------------------------------------

def test_unknown_template_suggests_the_closest_name():
    with pytest.raises(RecllmError, match="did you mean 'rank-recency'"):
        load_template("rank-recent")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(RecllmError, match="template file not found"):
        load_template(tmp_path / "nope.jinja")


def test_undeclared_variable_is_rejected_by_the_check(tmp_path):
    path = write(tmp_path, "bad", HEADER.format(name="bad", mode="generate", chat="false")
                 + "{{ user_age }} {{ k }}\n")
    [result] = check_paths([path])
    assert not result.ok and "user_age" in result.problems[0]


def test_missing_variable_at_render_names_file_line_and_variable(tmp_path):
    path = write(tmp_path, "gap", HEADER.format(name="gap", mode="generate", chat="false")
                 + "Recommend {{ k }}\n{{ user_age }}\n")
    t = load_template(path)
    with pytest.raises(RecllmError) as err:
        t.render({"k": 3})
    assert "gap.jinja:8" in str(err.value) and "user_age" in str(err.value)


def test_unknown_item_field_is_caught_by_the_check(tmp_path):
    path = write(tmp_path, "field", HEADER.format(name="field", mode="generate", chat="false")
                 + "{% for i in history %}{{ i.director }}{% endfor %}{{ k }}\n")
    [result] = check_paths([path])
    assert not result.ok and "director" in result.problems[0]


def test_empty_render_is_an_error(tmp_path, tiny_dataset):
    path = write(tmp_path, "empty", HEADER.format(name="empty", mode="generate", chat="false")
                 + "{% if k > 100 %}many{% endif %}\n")
    with pytest.raises(RecllmError, match="empty prompt"):
        render_prompt(load_template(path), case_for(tiny_dataset, "u1"), tiny_dataset)
    chat = write(tmp_path, "nouser", HEADER.format(name="nouser", mode="generate", chat="true")
                 + "{% block system %}hi{% endblock %}{% block user %}{% if k > 99 %}x{% endif %}"
                 "{% endblock %}\n")
    with pytest.raises(RecllmError, match="no user message"):
        render_prompt(load_template(chat), case_for(tiny_dataset, "u1"), tiny_dataset)


@pytest.mark.parametrize("header, match", [
    ("no header here {{ k }}", "has no header"),
    ("{#\nname: [unclosed\n#}\n{{ k }}", "malformed template header"),
    ("{#\njust text\n#}\n{{ k }}", "malformed template header"),
    ("{#\nname: h\ndescription: d\nmode: generate\nchat: false\nstops: []\n#}\n{{ k }}",
     "did you mean 'stop'"),
    ("{#\nname: h\ndescription: d\nmode: retrieve\n#}\n{{ k }}", "mode"),
])
def test_malformed_header(header, match):
    with pytest.raises(RecllmError, match=match):
        parse_template(header)


def test_header_name_must_match_file(tmp_path):
    path = write(tmp_path, "one", HEADER.format(name="two", mode="generate", chat="false") + "x\n")
    with pytest.raises(RecllmError, match="differs from the file name"):
        load_template(path)


def test_chat_layout_errors():
    base = "{#\nname: c\ndescription: d\nmode: generate\n#}\n"
    with pytest.raises(RecllmError, match="outside its message blocks"):
        parse_template(base + "stray text\n{% block user %}u{% endblock %}")
    with pytest.raises(RecllmError, match="message blocks named"):
        parse_template(base + "{% block intro %}u{% endblock %}")
    with pytest.raises(RecllmError, match="syntax error"):
        parse_template(base + "{% block user %}{{ k }{% endblock %}")


def test_user_folder_shadows_builtin_and_adds_templates(tmp_path, monkeypatch):
    write(tmp_path, "generate", HEADER.format(name="generate", mode="generate", chat="false")
          + "mine {{ k }}\n")
    write(tmp_path, "extra", HEADER.format(name="extra", mode="generate", chat="false") + "x\n")
    monkeypatch.setenv("RECLLM_PROMPTS", str(tmp_path))
    assert load_template("generate").path.parent == tmp_path
    assert "extra" in [t.name for t in list_templates()]


def test_few_shot_turns_and_top_level_sets():
    t = parse_template(
        "{#\nname: f\ndescription: d\nmode: generate\n#}\n{% set noun = domain_plural %}\n"
        "{% block system %}S {{ noun }}{% endblock %}\n{% block user_1 %}example{% endblock %}\n"
        "{% block assistant_1 %}1. X (2000){% endblock %}\n{% block user %}now {{ k }}{% endblock %}\n")
    out = t.render({"domain_plural": "movies", "k": 3})
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"] == "S movies" and out[-1]["content"] == "now 3"
