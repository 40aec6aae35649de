"""KEY=VALUE flags (`recllm eval --set/--backend-option`, `recllm generate --option`) read alike."""

import pytest

from recllm.cli import main
from recllm.commands._args import parse_assignment
from recllm.errors import RecllmError


@pytest.mark.parametrize("item,expected", [
    ("batch_size=8", ("batch_size", 8)),
    ("cache=false", ("cache", False)),
    ("ks=[1, 5]", ("ks", [1, 5])),
    ("base_url=http://127.0.0.1:8000/v1", ("base_url", "http://127.0.0.1:8000/v1")),
    ("stop=", ("stop", None)),
])
def test_values_read_as_yaml(item, expected):
    assert parse_assignment(item, "--set") == expected


@pytest.mark.parametrize("item", ["batch_size", "=8"])
def test_not_an_assignment_names_the_flag(item):
    with pytest.raises(RecllmError, match="is not KEY=VALUE") as err:
        parse_assignment(item, "--option")
    assert err.value.where == "--option"


def test_generate_option_without_value_is_a_clear_error(capsys):
    assert main(["generate", "--backend", "scripted", "--option", "path"]) == 2
    assert "--option: 'path' is not KEY=VALUE" in capsys.readouterr().err
